"""The `.keras` model is saved in Kedro's versioned layout, whole or not at all (issue #13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError, Version

from ml_lstm.model_registry import AtomicKerasModelDataset

pytestmark = pytest.mark.slow

# Saves a model of about 10 MB as version argv[2] of the dataset at argv[1].
SAVE_BIG_MODEL = """
import sys
import keras
from kedro.io import Version
from ml_lstm.model_registry import AtomicKerasModelDataset

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((1000,)), keras.layers.Dense(2500), keras.layers.Dense(1)])
dataset = AtomicKerasModelDataset(filepath=sys.argv[1], version=Version(None, sys.argv[2]))
print("saving", flush=True)
dataset.save(model)
"""

# A later run: it opens the model dataset (without loading Keras) and finds the latest.
NEXT_RUN = """
import sys
from kedro.io import Version
from ml_lstm.model_registry import AtomicKerasModelDataset
print(AtomicKerasModelDataset(filepath=sys.argv[1], version=Version(None, None))
      .resolve_load_version())
"""


def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def versioned(root: Path, load: str | None = None, save: str | None = None):
    return AtomicKerasModelDataset(filepath=str(root), version=Version(load, save))


def test_a_model_round_trips_in_kedros_versioned_layout(tmp_path):
    root = tmp_path / "lstm_model.keras"
    model = tiny_model()
    inputs = np.ones((1, 3), dtype="float32")

    previous = os.umask(0o022)
    try:
        versioned(root, save="2024-01-02T00.00.00.000Z").save(model)
        versioned(root, save="2024-01-03T00.00.00.000Z").save(model)
    finally:
        os.umask(previous)

    assert sorted(path.name for path in root.iterdir()) == [
        "2024-01-02T00.00.00.000Z",
        "2024-01-03T00.00.00.000Z",
    ]
    saved = root / "2024-01-03T00.00.00.000Z" / "lstm_model.keras"
    assert saved.stat().st_mode & 0o777 == 0o644 and saved.parent.stat().st_mode & 0o777 == 0o755
    latest = versioned(root)
    assert latest.resolve_load_version() == "2024-01-03T00.00.00.000Z"
    np.testing.assert_array_equal(latest.load().predict(inputs, verbose=0), model(inputs))
    with pytest.raises(DatasetError, match="must not exist"):
        versioned(root, save="2024-01-03T00.00.00.000Z").save(model)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_model_save_leaves_no_partial_version(tmp_path):
    root = tmp_path / "lstm_model.keras"
    versioned(root, save="2024-01-02T00.00.00.000Z").save(tiny_model())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVE_BIG_MODEL, str(root), "2024-01-03T00.00.00.000Z"],
        stdout=subprocess.PIPE,
        env=env,
    )

    # Killed the moment the model's file appears anywhere under the registry folder other
    # than the first version: at the start of writing it.
    assert saver.stdout is not None and saver.stdout.readline() == b"saving\n"
    deadline = time.monotonic() + 60
    while not _files_besides(root, "2024-01-02T00.00.00.000Z"):
        assert saver.poll() is None and time.monotonic() < deadline, "the save was not seen"
    saver.kill()
    assert saver.wait() == -signal.SIGKILL

    # What a loader sees: the first version only, whole; the killed save's temporary is
    # hidden, and removed by the next run's dataset.
    visible = sorted(path.name for path in root.iterdir() if not path.name.startswith("."))
    assert visible == ["2024-01-02T00.00.00.000Z"]
    leftovers = [path.name for path in root.iterdir() if path.name.startswith(".")]
    assert len(leftovers) == 1
    latest = versioned(root)
    assert latest.resolve_load_version() == "2024-01-02T00.00.00.000Z"
    latest.load()
    next_run = subprocess.run(
        [sys.executable, "-c", NEXT_RUN, str(root)], capture_output=True, text=True, check=False
    )
    assert next_run.stdout == "2024-01-02T00.00.00.000Z\n", next_run.stderr
    assert sorted(path.name for path in root.iterdir()) == visible


def _files_besides(root: Path, version: str) -> list[str]:
    try:
        return [
            file.name
            for folder in os.scandir(root)
            if folder.name != version and folder.is_dir()
            for file in os.scandir(folder.path)
        ]
    except FileNotFoundError:  # a temporary folder renamed or removed while scanning
        return []


def test_an_unversioned_model_dataset_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="versioned: true"):
        AtomicKerasModelDataset(filepath=str(tmp_path / "lstm_model.keras"))
