"""The universe (conf/base/universe.yml) as the instruments a run can enable, without code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import PROJECT_ROOT

from ml_lstm.cli import configured_instruments
from ml_lstm.instruments import (
    UniverseConfigLoader,
    enabled_instrument_names,
    set_active_instruments,
)
from ml_lstm.pipeline_registry import register_pipelines


def parameters(conf: Path, env: str | None = None, runtime: dict | None = None) -> dict:
    loader = UniverseConfigLoader(
        conf_source=str(conf),
        env=env,
        base_env="base",
        default_run_env="local",
        merge_strategy={"parameters": "soft"},
        runtime_params=runtime or {},
    )
    return loader["parameters"]


def test_the_shipped_universe_holds_us_stocks_and_etfs_all_off_but_nvda():
    instruments = parameters(PROJECT_ROOT / "conf")["instruments"]
    universe = yaml.safe_load((PROJECT_ROOT / "conf/base/universe.yml").read_text())
    us_listed = [
        name
        for name, spec in instruments.items()
        if spec["calendar"] == "XNYS" and spec["sec_type"] == "STK" and spec["currency"] == "USD"
    ]
    assert len(universe["instruments"]) >= 8 and set(universe["instruments"]) <= set(us_listed)
    assert {"spy", "qqq", "iwm"} <= set(us_listed)  # ETFs
    assert enabled_instrument_names(instruments) == ["nvda"]
    # Each entry is the defaults plus its own keys, nested keys merged.
    assert instruments["spy"]["primary_exchange"] == "ARCA"
    assert instruments["spy"]["synthetic"]["annual_volatility"] == 0.15
    assert instruments["spy"]["what_to_show"] == "TRADES"


def test_runtime_params_enable_a_universe_entry_and_it_becomes_a_namespace():
    instruments = parameters(
        PROJECT_ROOT / "conf", runtime={"instruments": {"aapl": {"enabled": True}}}
    )["instruments"]

    assert enabled_instrument_names(instruments) == ["nvda", "aapl"]
    assert instruments["aapl"]["symbol"] == "AAPL"
    set_active_instruments(instruments)
    try:
        namespaces = {node.namespace for node in register_pipelines()["__default__"].nodes}
    finally:
        set_active_instruments(None)
    assert namespaces == {"nvda", "aapl"}
    # The same view the `kedro run --namespaces aapl` check has.
    assert configured_instruments(
        PROJECT_ROOT, None, None, {"instruments": {"aapl": {"enabled": True}}}
    )["aapl"]["enabled"]


def test_parameters_and_environment_files_override_universe_entries(tmp_path):
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "local").mkdir()
    (conf / "base/parameters.yml").write_text("instruments:\n  abc:\n    exchange: ISLAND\n")
    (conf / "base/universe.yml").write_text(
        "defaults: {enabled: false, exchange: SMART, synthetic: {start_price: 10.0}}\n"
        "instruments:\n  abc: {symbol: ABC}\n  xyz: {symbol: XYZ, synthetic: {start_price: 5}}\n"
    )
    (conf / "local/universe.yml").write_text("instruments:\n  xyz: {enabled: true}\n")

    instruments = parameters(conf)["instruments"]

    assert instruments["abc"] == {
        "enabled": False, "exchange": "ISLAND", "symbol": "ABC", "synthetic": {"start_price": 10.0},
    }  # fmt: skip
    assert instruments["xyz"]["enabled"] is True
    assert instruments["xyz"]["synthetic"] == {"start_price": 5}
    assert list(instruments) == ["abc", "xyz"]  # declared instruments first


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("instrument:\n  abc: {symbol: ABC}\n", "expected the keys 'defaults'"),
        ("instruments:\n  a-b: {symbol: AB}\n", "instruments.a-b must be a mapping"),
        ("instruments:\n  abc: ABC\n", "instruments.abc must be a mapping"),
    ],
)
def test_a_malformed_universe_file_is_named_with_what_was_expected(tmp_path, content, expected):
    (tmp_path / "base").mkdir()
    (tmp_path / "base/parameters.yml").write_text("instruments: {}\n")
    (tmp_path / "base/universe.yml").write_text(content)

    with pytest.raises(ValueError, match=r"universe\.yml") as error:
        parameters(tmp_path, env="base")
    assert expected in str(error.value)
