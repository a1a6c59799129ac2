"""The registered pipelines: stages, namespaces per instrument, and a layer for every dataset."""

from __future__ import annotations

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from support import LAYERS, PROJECT_ROOT

from ml_lstm.instruments import enabled_instrument_names, set_active_instruments
from ml_lstm.pipeline_registry import SHARED_INPUTS, STAGES, for_instrument, register_pipelines


def test_stages_and_default_are_registered(project_parameters):
    set_active_instruments(project_parameters["instruments"])
    pipelines = register_pipelines()
    assert set(pipelines) >= {
        "ingestion",
        "data_processing",
        "modelling",
        "inference",
        "__default__",
    }
    default_nodes = {node.name for node in pipelines["__default__"].nodes}
    for stage in STAGES:
        assert {node.name for node in pipelines[stage].nodes} <= default_nodes


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
