"""`kedro viz build` from a fresh copy of the project: four pipelines, every dataset layered."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import LAYERS

pytestmark = pytest.mark.slow

STAGES = ["ingestion", "data_processing", "modelling", "inference"]
EXPECTED_LAYER = {
    "nvda.raw_minute_bars": "raw",
    "nvda.hourly_bars": "primary",
    "nvda.features": "feature",
    "nvda.lstm_model": "models",
    "nvda.served_model": "models",
    "nvda.predictions": "model_output",
    "nvda.test_range_forecasts": "model_output",
    "nvda.latest_prediction_plot": "reporting",
    "nvda.latest_prediction_chart": "reporting",
}


def backward_edges(graph: dict) -> list[str]:
    """Nodes that write a dataset of an earlier layer than one they read (a layer cycle)."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    rank = {layer: index for index, layer in enumerate(LAYERS)}
    reads: dict[str, list[dict]] = {}
    writes: dict[str, list[dict]] = {}
    for edge in graph["edges"]:
        source, target = nodes[edge["source"]], nodes[edge["target"]]
        if source["type"] == "data" and target["type"] == "task":
            reads.setdefault(target["name"], []).append(source)
        elif source["type"] == "task" and target["type"] == "data":
            writes.setdefault(source["name"], []).append(target)
    found = []
    for task, outputs in writes.items():
        for read in reads.get(task, []):
            for written in outputs:
                before = rank.get(written.get("layer"), len(LAYERS))
                if before < rank.get(read.get("layer"), -1):
                    found.append(
                        f"{task} reads {read['name']} ({read['layer']}) and writes "
                        f"{written['name']} ({written['layer']})"
                    )
    return found


def test_viz_build_has_the_four_pipelines_and_every_dataset_in_its_layer(project_copy):
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    build = project_copy / "build"
    assert (build / "index.html").is_file()
    graph = json.loads((build / "api" / "main").read_text())

    assert {p["id"] for p in graph["pipelines"]} >= {*STAGES, "__default__"}
    for stage in STAGES:
        staged = json.loads((build / "api" / "pipelines" / stage).read_text())
        tasks = [node for node in staged["nodes"] if node["type"] == "task"]
        assert tasks and all(stage in node["pipelines"] for node in tasks), stage

    datasets = {node["name"]: node for node in graph["nodes"] if node["type"] == "data"}
    unlayered = sorted(name for name, node in datasets.items() if node.get("layer") not in LAYERS)
    assert not unlayered, f"datasets without a known layer: {unlayered}"
    for name, layer in EXPECTED_LAYER.items():
        assert datasets[name]["layer"] == layer, name
    # No node writes a dataset of an earlier layer than one it reads.
    assert not backward_edges(graph), "; ".join(backward_edges(graph))
    # The first view a user sees (build/api/main, the __default__ pipeline with each
    # instrument's namespace collapsed) has every layer band, in order; so does each stage's.
    assert graph["layers"] == LAYERS
    for stage in STAGES:
        staged = json.loads((build / "api" / "pipelines" / stage).read_text())
        assert set(staged["layers"]) == set(LAYERS), stage
