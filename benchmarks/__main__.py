"""`python -m benchmarks [name ...]` runs every benchmarks/bench_*.py (or the named ones).

Each module exposes `main() -> list[dict]`; the rows are printed as they come and written
to benchmarks/results.json at the end.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    folder = Path(__file__).parent
    names = argv or sorted(path.stem.removeprefix("bench_") for path in folder.glob("bench_*.py"))
    rows = []
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        rows.extend(module.main())
    (folder / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
