"""The registered pipelines: stages, namespaces per instrument, and a layer for every dataset."""

from __future__ import annotations

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from support import LAYERS, PROJECT_ROOT

from ml_lstm.instruments import enabled_instrument_names, set_active_instruments
from ml_lstm.pipeline_registry import SHARED_INPUTS, STAGES, for_instrument, register_pipelines

STAGE_NODES = {
    "ingestion": {"plan_backfill", "fetch_minute_bars"},
    "data_processing": {
        "validate_minute_bars",
        "accept_minute_bars",
        "list_sessions",
        "locate_gaps",
        "analyse_gaps",
        "plot_gaps",
        "fill_gaps",
        "resample_to_session_bars",
        "add_features",
    },
    "modelling": {
        "split_by_time",
        "fit_scaler",
        "train_lstm",
        "plot_training_history",
        "forecast_test_split",
        "evaluate_forecasts",
        "plot_model_comparison",
        "build_manifest",
        "decide_promotion",
        "walk_forward_report",
    },
    "inference": {
        "check_served_model",
        "predict_next_close",
        "forecast_test_range",
        "plot_latest_prediction",
        "plot_test_range",
        "plot_training_curves",
    },
}


def test_each_stage_holds_its_nodes_and_default_runs_them_in_stage_order(project_parameters):
    set_active_instruments(project_parameters["instruments"])
    pipelines = register_pipelines()
    for stage, names in STAGE_NODES.items():
        assert {node.name for node in pipelines[stage].nodes} == {f"nvda.{n}" for n in names}
    # __default__ is the four stages and nothing else (retraining stays out of it) ...
    stage_of = {f"nvda.{n}": stage for stage, names in STAGE_NODES.items() for n in names}
    default = pipelines["__default__"].nodes
    assert {node.name for node in default} == set(stage_of)
    assert "nvda.retrain_lstm" not in stage_of
    # ... and, in the order Kedro runs them, no node of a stage comes before one of an
    # earlier stage: ingestion, then data_processing, modelling, inference.
    order = list(STAGE_NODES)
    positions = [order.index(stage_of[node.name]) for node in default]
    assert positions == sorted(positions)


def test_only_enabled_instruments_run_each_in_its_namespace(project_parameters):
    instruments = project_parameters["instruments"]
    assert enabled_instrument_names(instruments) == ["nvda"]
    set_active_instruments(instruments)
    assert {node.namespace for node in register_pipelines()["__default__"].nodes} == {"nvda"}

    with_silver = {**instruments, "xagusd": {**instruments["xagusd"], "enabled": True}}
    set_active_instruments(with_silver)
    try:
        namespaces = {node.namespace for node in register_pipelines()["__default__"].nodes}
    finally:
        set_active_instruments(instruments)
    assert namespaces == {"nvda", "xagusd"}


def test_instrument_parameters_map_to_its_own_block():
    pipeline = for_instrument(STAGES["ingestion"](), "aapl")
    inputs = pipeline.inputs()
    assert "params:instruments.aapl" in inputs
    assert "params:ingestion" in inputs
    assert all(name.startswith(("aapl.", "params:")) or name in SHARED_INPUTS for name in inputs)


def test_every_dataset_resolves_to_a_catalog_entry_with_a_layer(project_parameters):
    set_active_instruments(project_parameters["instruments"])
    pipeline = register_pipelines()["__default__"]
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base"
    )
    catalog = DataCatalog.from_config(loader["catalog"])
    resolver = catalog.config_resolver
    datasets = {name for name in pipeline.datasets() if not name.startswith("params:")}
    missing_layer = []
    for name in sorted(datasets):
        config = resolver.resolve_pattern(name)
        layer = (config.get("metadata") or {}).get("kedro-viz", {}).get("layer")
        if layer not in LAYERS:
            missing_layer.append((name, layer))
    assert not missing_layer, f"datasets without a kedro-viz layer: {missing_layer}"
