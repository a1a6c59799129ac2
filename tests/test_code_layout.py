"""The layout rules the code keeps: pipelines stay apart, infrastructure imports no pipeline."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from support import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "ml_lstm"
# Shared pieces that pipelines, the live loop and the tools build on: none may depend on
# a pipeline (ml_lstm.live and the update command call pipelines' node functions on
# purpose, so they are not listed).
INFRASTRUCTURE = [
    "atomic_files.py",
    "backfill.py",
    "bar_checks.py",
    "calendars.py",
    "datasets.py",
    "ib_client.py",
    "ib_connection.py",
    "ib_data.py",
    "model_registry.py",
    "pacing.py",
    "synthetic_market.py",
    "forecasting",
    "tws_simulator",
]


def imported_modules(path: Path) -> set[str]:
    """Absolute module names `path` imports (relative imports resolved in its package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            else:
                names.add(node.module)
    return names


def python_files(*relative: str) -> list[Path]:
    files = []
    for name in relative:
        target = PACKAGE / name
        files += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return files


def test_no_pipeline_imports_another_pipelines_modules():
    crossings = []
    for pipeline in sorted(p for p in (PACKAGE / "pipelines").iterdir() if p.is_dir()):
        own = f"ml_lstm.pipelines.{pipeline.name}"
        for path in sorted(pipeline.rglob("*.py")):
            for module in imported_modules(path):
                if module.startswith("ml_lstm.pipelines.") and not module.startswith(own):
                    crossings.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not crossings, crossings


def test_infrastructure_imports_no_pipeline():
    found = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in python_files(*INFRASTRUCTURE)
        for module in imported_modules(path)
        if module.startswith("ml_lstm.pipelines") or module == "ml_lstm.pipeline_registry"
    ]
    assert not found, found


def test_test_modules_have_unique_names():
    # pytest imports test modules by basename (no __init__.py): two equal names stop the
    # whole collection on a fresh checkout.
    names = Counter(path.name for path in (PROJECT_ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []


# What every `kedro` command pays before a node runs: registering the pipelines. Charts,
# TensorFlow, MLflow and Optuna are imported where a node or a tool needs them.
HEAVY_AT_REGISTRATION = ("matplotlib", "plotly", "tensorflow", "keras", "mlflow", "optuna")


def test_registering_the_pipelines_imports_no_chart_model_or_tracking_library():
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from kedro.framework.startup import bootstrap_project\n"
        f"bootstrap_project(Path({str(PROJECT_ROOT)!r}))\n"
        "from ml_lstm.pipeline_registry import register_pipelines\n"
        "assert len(register_pipelines()['__default__'].nodes) > 0\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_AT_REGISTRATION!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_every_node_functions_type_hints_resolve_as_kedro_resolves_them():
    """Kedro resolves each node function's type hints when it runs the node (to validate
    typed parameters) and logs a warning for every node whose hints name something not
    importable at run time, e.g. a type imported only for type checkers."""
    script = (
        "import json, typing\n"
        "from pathlib import Path\n"
        "from kedro.framework.startup import bootstrap_project\n"
        f"bootstrap_project(Path({str(PROJECT_ROOT)!r}))\n"
        "from ml_lstm.pipeline_registry import register_pipelines\n"
        "failed = set()\n"
        "for pipeline in register_pipelines().values():\n"
        "    for node in pipeline.nodes:\n"
        "        try:\n"
        "            typing.get_type_hints(node.func)\n"
        "        except Exception as error:\n"
        "            failed.add(f'{node.func.__module__}.{node.func.__name__}: {error}')\n"
        "print(json.dumps(sorted(failed)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
