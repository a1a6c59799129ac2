"""notebooks/exploration.ipynb runs headless (nbclient) against freshly generated data."""

from __future__ import annotations

import shutil

import nbformat
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from nbclient import NotebookClient
from support import PROJECT_ROOT, SMALL_RUN

pytestmark = pytest.mark.slow

NOTEBOOK = PROJECT_ROOT / "notebooks" / "exploration.ipynb"


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


def test_the_notebook_loads_catalog_datasets_and_plots_them(project_copy):
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, runtime_params=SMALL_RUN) as session:
        session.run()
    folder = project_copy / "notebooks"
    folder.mkdir()
    shutil.copy2(NOTEBOOK, folder / NOTEBOOK.name)
    notebook = nbformat.read(folder / NOTEBOOK.name, as_version=4)

    # Raises CellExecutionError, with the failing cell and traceback, if any cell fails.
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": folder}}
    ).execute()

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    printed = "".join(output.get("text", "") for output in outputs)
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    features = pd.read_csv(project_copy / "data/04_feature/nvda/features.csv")
    first = pd.Timestamp(features["timestamp"].iloc[0]).tz_convert("UTC")
    exported = pd.read_csv(project_copy / "data/07_model_output/nvda/test_range_forecasts.csv")
    assert f"{len(features)} bars from {first}" in printed
    assert f"{len(exported)} test bars, model {exported['model_version'].iloc[0]}" in printed
    assert len(images) == 2
