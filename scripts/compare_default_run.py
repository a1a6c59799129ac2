"""Does the default run still write the same files? Compares two versions of the code.

    python scripts/compare_default_run.py --reference <git revision> [--current <revision>]
        [--params k=v,...]

Runs `kedro run` (the built-in default: the TWS simulator, no broker) twice, each in a
throw-away copy of the project: once with the code and configuration at the reference
revision (`git archive`), once with the working tree (tracked and untracked, not ignored,
files) or, with `--current`, another revision. Then it compares every file under `data/`,
byte for byte, after taking out what differs by design between two runs:

- the run's version stamp (Kedro's save version, also the model version and run id): both
  runs get the same one, `FIXED_VERSION`, so that charts which print it compare too;
- the run's start time (the ledger's `fetched_at`) and the git commit in manifests;
- in a `.keras` zip, the save time (`metadata.json`'s `date_saved`) and Keras's
  `shared_object_id`s in `config.json`, which are Python object ids of the saving process.

Exit status 0 when every file matches, 1 otherwise (each difference is listed). Refactors
that must not change behaviour are checked with it (issue 14); `--keep DIR` leaves both
projects for a look.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Kedro save versions look like 2026-12-02T01.23.45.678Z.
VERSION = re.compile(rb"\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d\.\d{3}Z")
COMMIT = re.compile(rb"\b[0-9a-f]{40}(-dirty)?\b")
FETCHED_AT = re.compile(rb'"fetched_at": "[^"]*"')
SHARED_OBJECT_ID = re.compile(rb'"shared_object_id": \d+')
FIXED_VERSION = "2000-01-01T00.00.00.000Z"
# `kedro run` with Kedro's own session, whose save version is FIXED_VERSION.
RUN_WITH_FIXED_VERSION = f"""
import sys
import kedro.framework.session.session as session
session.generate_timestamp = lambda: {FIXED_VERSION!r}
from kedro.framework.cli.cli import main
sys.argv = ["kedro", "run", *sys.argv[1:]]
main()
"""


def export_revision(revision: str, target: Path) -> None:
    """The tree of `revision` written to `target`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def export_working_tree(target: Path) -> None:
    """Tracked and untracked (not ignored) files of the working tree, copied to `target`."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_default(project: Path, params: str | None) -> None:
    """`kedro run` in `project`, importing that project's own `src` first."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(project / "src"),
        "KEDRO_DISABLE_TELEMETRY": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [sys.executable, "-c", RUN_WITH_FIXED_VERSION]
    if params:
        command += ["--params", params]
    print(f"$ kedro run {' '.join(command[3:])}   (in {project})", flush=True)
    subprocess.run(command, cwd=project, env=environment, check=True)


def normalised_files(data: Path) -> dict[str, bytes]:
    """Every file under `data`, keyed by its path with version stamps taken out."""
    files = {}
    for path in sorted(data.rglob("*")):
        # .gitkeep marks empty folders; *.lock files are empty cross-process lock files.
        if path.is_file() and path.name != ".gitkeep" and path.suffix != ".lock":
            key = VERSION.sub(b"<version>", str(path.relative_to(data)).encode()).decode()
            files[key] = normalised_content(path)
    return files


def normalised_content(path: Path) -> bytes:
    content = path.read_bytes()
    if path.suffix == ".keras":
        return keras_members(content)
    if path.suffix in {".png", ".h5"}:
        return content
    content = FETCHED_AT.sub(b'"fetched_at": "<run start>"', content)
    return COMMIT.sub(b"<commit>", VERSION.sub(b"<version>", content))


def keras_members(content: bytes) -> bytes:
    """The zip's members in a fixed order, `metadata.json` without its save time."""
    parts = []
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for name in sorted(archive.namelist()):
            member = archive.read(name)
            if name == "metadata.json":
                metadata = json.loads(member)
                metadata.pop("date_saved", None)
                member = json.dumps(metadata, sort_keys=True).encode()
            if name == "config.json":
                member = SHARED_OBJECT_ID.sub(b'"shared_object_id": 0', member)
            parts.append(name.encode() + b"\0" + member)
    return b"\0\0".join(parts)


def compare(reference: dict[str, bytes], current: dict[str, bytes]) -> list[str]:
    problems = [
        f"only in the reference run: {name}" for name in sorted(reference.keys() - current.keys())
    ]
    problems += [f"only in this run: {name}" for name in sorted(current.keys() - reference.keys())]
    problems += [
        f"differs: {name}"
        for name in sorted(reference.keys() & current.keys())
        if reference[name] != current[name]
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="git revision to compare with")
    parser.add_argument("--current", help="git revision to check (default: the working tree)")
    parser.add_argument("--params", help="runtime params for both runs, as kedro run takes them")
    parser.add_argument("--keep", type=Path, help="leave both projects in this folder")
    args = parser.parse_args(argv)
    workspace = Path(args.keep or tempfile.mkdtemp(prefix="compare-default-run-"))
    reference_project, current_project = workspace / "reference", workspace / "current"
    for folder in (reference_project, current_project):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    export_revision(args.reference, reference_project)
    if args.current:
        export_revision(args.current, current_project)
    else:
        export_working_tree(current_project)
    for project in (reference_project, current_project):
        run_default(project, args.params)
    reference = normalised_files(reference_project / "data")
    current = normalised_files(current_project / "data")
    problems = compare(reference, current)
    print(f"{len(reference)} files in the reference run, {len(current)} in this run.")
    for problem in problems:
        print(f"  {problem}")
    print("IDENTICAL" if not problems else f"{len(problems)} DIFFERENCES")
    if not args.keep:
        shutil.rmtree(workspace, ignore_errors=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
