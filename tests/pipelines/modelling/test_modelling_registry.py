"""Champion/challenger promotion, the registry datasets and CLI, and warm-start retraining,
with really trained tiny models and real files under tmp_path."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset, Version
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.tensorflow import TensorFlowModelDataset
from modelling_support import synthetic_features, tiny

from ml_lstm.model_registry import (
    ChampionDataset,
    ChampionRecordDataset,
    registry_table,
)
from ml_lstm.pipelines.modelling import (
    create_pipeline,
    create_retraining_pipeline,
    nodes,
    promotion,
)

pytestmark = pytest.mark.slow


def as_champion(result: dict, version: str) -> dict:
    """What ChampionDataset loads, built from a trained result."""
    manifest = nodes.build_manifest(
        result["table"],
        result["scaler"],
        result["metrics"],
        result["history"],
        {"settings": {"rsi_window": 14}},
        tiny(),
        {"frequency": "60min"},
        {"run_id": version, "git_commit": None},
    )
    return {
        "record": {"version": version},
        "model": result["model"],
        "scaler": result["scaler"],
        "manifest": manifest,
    }


def decide(champion, challenger: dict, mode: str = "auto"):
    return promotion.decide_promotion(
        champion,
        challenger["forecasts"],
        challenger["table"],
        challenger["metrics"],
        tiny(promotion=mode),
        {"run_id": "challenger"},
    )


def test_first_model_is_promoted_when_there_is_no_champion(trained):
    decision, record = decide(None, trained)
    assert decision["promoted"] and decision["reason"] == "no champion yet"
    assert record["version"] == "challenger" and record["previous"] is None
    assert record["score"] == trained["metrics"]["lstm"]["mase"]


def test_an_equal_challenger_is_not_promoted(trained):
    champion = as_champion(trained, "old")
    decision, record = decide(champion, trained)
    assert decision["champion_score"] == pytest.approx(decision["challenger_score"])
    assert not decision["promoted"] and record == {"version": "old"}


def test_promotion_needs_a_lower_mase_on_the_same_test_rows(trained, trained_on_shuffled):
    skilled = as_champion(trained, "skilled")
    unskilled = as_champion(trained_on_shuffled, "unskilled")
    decision, record = decide(unskilled, trained)
    assert decision["promoted"] and record["previous"] == "unskilled"
    assert decision["challenger_score"] < decision["champion_score"]

    # The unskilled model as challenger on the same rows the skilled champion is scored on.
    forecasts = nodes.forecast_test_split(
        trained_on_shuffled["model"], trained["table"], trained_on_shuffled["scaler"], tiny()
    )
    challenger = {
        "forecasts": forecasts,
        "table": trained["table"],
        "metrics": nodes.evaluate_forecasts(forecasts, trained["table"], tiny()),
    }
    decision, record = decide(skilled, challenger)
    assert not decision["promoted"] and record["version"] == "skilled"
    assert decision["champion_score"] < decision["challenger_score"]


def test_runtime_mode_forces_or_skips_promotion(trained, trained_on_shuffled):
    skilled = as_champion(trained, "skilled")
    forced, record = decide(skilled, trained_on_shuffled, mode="force")
    assert forced["promoted"] and record["version"] == "challenger"
    skipped, record = decide(None, trained, mode="skip")
    assert not skipped["promoted"] and record == {}
    with pytest.raises(ValueError, match=r"modelling\.promotion is 'maybe'"):
        decide(None, trained, mode="maybe")


def test_incomparable_or_contaminated_champions_are_flagged(trained):
    champion = as_champion(trained, "old")
    other_horizon = copy.deepcopy(champion)
    other_horizon["manifest"]["horizon"] = 3
    decision, record = decide(other_horizon, trained)
    assert not decision["promoted"] and "not comparable" in decision["reason"]
    assert record == {"version": "old"}

    late = copy.deepcopy(champion)
    late["manifest"]["splits"]["validation"]["last"] = trained["metrics"]["evaluation"]["last"]
    decision, _ = decide(late, trained)
    assert decision["champion_saw_test_rows"] is True


def save_run(root, result: dict, version: str) -> None:
    """Writes one version's artefacts the way the catalog's versioned datasets do."""
    TensorFlowModelDataset(
        filepath=str(root / "lstm_model.keras"), version=Version(None, version)
    ).save(result["model"])
    JSONDataset(filepath=str(root / "scaler.json"), version=Version(None, version)).save(
        result["scaler"]
    )
    JSONDataset(filepath=str(root / "manifest.json"), version=Version(None, version)).save(
        as_champion(result, version)["manifest"]
    )


def test_registry_datasets_load_the_champion_and_write_champion_json_atomically(
    tmp_path, trained, trained_on_shuffled, project_copy
):
    root = tmp_path / "nvda"
    assert ChampionDataset(path=str(root)).load() is None
    save_run(root, trained, "2024-01-01T00.00.00.000Z")
    save_run(root, trained_on_shuffled, "2024-02-01T00.00.00.000Z")
    records = ChampionRecordDataset(path=str(root))
    records.save({})
    assert not (root / "champion.json").exists()
    records.save({"version": "2024-01-01T00.00.00.000Z", "metric": "mase", "score": 0.5})
    assert sorted(path.name for path in root.iterdir() if path.is_file()) == ["champion.json"]

    champion = ChampionDataset(path=str(root)).load()
    assert champion["record"]["version"] == "2024-01-01T00.00.00.000Z"
    assert champion["scaler"] == trained["scaler"]
    windows = np.zeros((3, 4, 2), dtype="float32")
    np.testing.assert_allclose(
        champion["model"].predict(windows, verbose=0),
        trained["model"].predict(windows, verbose=0),
        rtol=1e-6,
    )

    rows = registry_table(root)
    assert [row["champion"] for row in rows] == [True, False]
    assert rows[0]["lstm_mase"] == trained["metrics"]["lstm"]["mase"]
    printed = kedro_models_list(project_copy, "--instrument", "nvda", "--models-dir", str(tmp_path))
    assert "champion: 2024-01-01T00.00.00.000Z" in printed and "lstm_mase" in printed
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("version "))
    table_rows = lines[header + 1 : header + 1 + len(rows)]
    assert [line.split()[0] for line in table_rows] == [row["version"] for row in rows]
    printed = kedro_models_list(project_copy, "--models-dir", str(tmp_path), "--json")
    # Kedro's own start-up log line may come first on stdout.
    listing = json.loads(printed[printed.index("{\n") :])["nvda"]
    assert len(listing["versions"]) == 2 and listing["champion"]["score"] == 0.5

    records.save({"version": "2099-01-01T00.00.00.000Z"})
    with pytest.raises(DatasetError, match=r"names version '2099-01-01T00\.00"):
        ChampionDataset(path=str(root)).load()


def test_retraining_warm_starts_from_the_champion(trained):
    params = tiny(retraining={"window_bars": 500, "epochs": 1, "learning_rate": 1e-9})
    recent = nodes.select_recent_window(synthetic_features(), params)
    table = nodes.split_by_time(recent, params)
    scaler = nodes.fit_scaler(table, params)
    champion = as_champion(trained, "champ")
    model, history = nodes.retrain_lstm(champion, table, scaler, params)
    assert history["warm_start_from"] == "champ" and history["epochs_run"] == 1
    for ours, theirs in zip(model.get_weights(), trained["model"].get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)

    with pytest.raises(ValueError, match="there is none"):
        nodes.retrain_lstm(None, table, scaler, params)
    other = copy.deepcopy(champion)
    other["manifest"]["lookback"] = 9
    with pytest.raises(ValueError, match="lookback=9"):
        nodes.retrain_lstm(other, table, scaler, params)
    seen = copy.deepcopy(champion)
    seen["manifest"]["splits"]["validation"]["last"] = "2030-01-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="seen the test rows"):
        nodes.retrain_lstm(seen, table, scaler, params)


def run_catalog(root, features, version: str, params: dict) -> DataCatalog:
    """The registry and reporting datasets on disk under `root`, the rest in memory."""

    def versioned(cls, name):
        return cls(filepath=str(root / "models" / name), version=Version(None, version))

    catalog = DataCatalog(
        datasets={
            "features": MemoryDataset(features),
            "feature_list": MemoryDataset({"settings": {"rsi_window": 14}}),
            "lstm_model": versioned(TensorFlowModelDataset, "lstm_model.keras"),
            "scaler": versioned(JSONDataset, "scaler.json"),
            "model_manifest": versioned(JSONDataset, "manifest.json"),
            "champion": ChampionDataset(path=str(root / "models")),
            "champion_record": ChampionRecordDataset(path=str(root / "models")),
            "metrics": JSONDataset(filepath=str(root / "metrics.json")),
            "promotion": JSONDataset(filepath=str(root / "promotion.json")),
            "run_info": MemoryDataset({"run_id": version, "git_commit": "abc"}),
            "params:modelling": MemoryDataset(params),
            "params:data_processing": MemoryDataset({"frequency": "60min"}),
        }
    )
    return catalog


def test_pipelines_register_promote_and_retrain_through_kedro(tmp_path):
    params = tiny(retraining={"window_bars": 500, "epochs": 2, "learning_rate": 1e-3})
    features = synthetic_features()
    runner = SequentialRunner()
    runner.run(
        create_pipeline(), run_catalog(tmp_path, features, "2024-01-01T00.00.00.000Z", params)
    )
    promotion = json.loads((tmp_path / "promotion.json").read_text())
    assert promotion["promoted"] and promotion["reason"] == "no champion yet"

    runner.run(
        create_retraining_pipeline(),
        run_catalog(tmp_path, features, "2024-01-02T00.00.00.000Z", params),
    )
    promotion = json.loads((tmp_path / "promotion.json").read_text())
    assert promotion["champion_before"] == "2024-01-01T00.00.00.000Z"
    assert promotion["champion_score"] is not None
    manifests = registry_table(tmp_path / "models")
    assert [row["trained_by"] for row in manifests] == ["modelling", "retraining"]
    champion = json.loads((tmp_path / "models" / "champion.json").read_text())
    assert champion["version"] == promotion["champion_after"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"lstm", "persistence", "drift", "sma", "linear", "evaluation"} == set(metrics)


def test_a_damaged_registry_file_is_named(tmp_path):
    from ml_lstm.model_registry import read_json

    path = tmp_path / "manifest.json"
    path.write_text('{"version": "2024-01-01T00.00.00.000Z", "features": [')
    with pytest.raises(DatasetError, match=r"manifest\.json is not valid JSON \(line 1"):
        read_json(path)


def kedro_models_list(project: Path, *arguments: str) -> str:
    """`kedro models list ...` run as a user runs it, in a copy of the project."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "models", "list", *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
