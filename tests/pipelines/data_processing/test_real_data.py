"""The processing nodes on real bars from ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_processing_support import RUN_INFO, parameters, raw_table
from support import SHARED_DATA, requires_shared_data

from ml_lstm.pipelines.data_processing.nodes import (
    accept_minute_bars,
    add_features,
    analyse_gaps,
    fill_gaps,
    list_sessions,
    locate_gaps,
    resample_to_session_bars,
    validate_minute_bars,
)

pytestmark = [requires_shared_data, pytest.mark.shared_data]


def load(relative: str) -> pd.DataFrame:
    frame = pd.read_csv(SHARED_DATA / relative)
    frame = frame.rename(columns=str.lower).rename(
        columns={"datetime": "timestamp", "timestamp_utc": "timestamp"}
    )
    if relative.startswith("fxcm-fx-1min/6E"):
        frame["timestamp"] = frame["timestamp"] + "Z"  # documented as naive UTC
    return frame


def process(frame: pd.DataFrame, instrument: dict) -> dict:
    params = parameters(max_rejected_share=0.05)
    params["features"] = {**params["features"], "max_missing_sessions": 0}
    combined = raw_table(frame)
    valid, rejected, report = validate_minute_bars(combined, instrument, params, RUN_INFO)
    bars = accept_minute_bars(valid, rejected, report, params)
    sessions = list_sessions(bars, instrument, RUN_INFO)
    minute_gaps = locate_gaps(bars, sessions)
    gaps = analyse_gaps(minute_gaps, sessions, {"sessions": {}}, instrument, params)
    filled = fill_gaps(bars, minute_gaps, params)
    hourly = resample_to_session_bars(filled, sessions, params)
    features, listing = add_features(hourly, instrument, params)
    return {
        "validation": report,
        "rejected": rejected,
        "gaps": gaps,
        "hourly": hourly,
        "features": features,
        "listing": listing,
        "bars": bars,
    }


def check_bars(result: dict) -> None:
    hourly = result["hourly"]
    assert (hourly["high"] >= hourly[["open", "close"]].max(axis=1)).all()
    assert (hourly["low"] <= hourly[["open", "close"]].min(axis=1)).all()
    assert hourly["volume"].sum() == pytest.approx(result["bars"]["volume"].sum())
    assert not result["features"][result["listing"]["features"]].isna().any().any()


def test_alpaca_nvda_extended_hours_chunks_restart_features():
    nvda = {"symbol": "NVDA", "calendar": "XNYS", "extended_hours": True}
    result = process(load("alpaca-1min-chunks/NVDA_1min.csv"), nvda)
    check_bars(result)
    assert result["validation"]["rows_rejected"] == 0
    # Six chunks of sessions separated by months without data.
    assert len(result["gaps"]["missing_sessions"]) == 5
    assert result["listing"]["stretches"] == 6
    first_bar = result["hourly"].iloc[0]
    assert first_bar["timestamp"] == pd.Timestamp("2022-01-03 09:00", tz="UTC")  # 04:00 ET
    # Extended sessions open on the hour: each hourly bar is the plain aggregation of the
    # real prints of its clock hour, whatever minutes were filled around them.
    real = result["bars"]
    reference = real.groupby(real["timestamp"].dt.floor("60min")).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    hourly = result["hourly"].set_index("timestamp")[reference.columns]
    assert result["gaps"]["summary"]["filled_minutes"] > 500
    pd.testing.assert_frame_equal(hourly, reference, check_dtype=False, check_names=False)


def test_alpaca_nvda_regular_hours_leaves_extended_bars_out():
    nvda = {"symbol": "NVDA", "calendar": "XNYS", "extended_hours": False}
    result = process(load("alpaca-1min-chunks/NVDA_1min.csv"), nvda)
    check_bars(result)
    assert result["validation"]["outside_sessions"]["rows"] > 0
    assert (result["hourly"]["minutes"] <= 60).all()


def test_alpaca_spy_dst_moves_the_first_bar():
    spy = {"symbol": "SPY", "calendar": "XNYS", "extended_hours": False}
    result = process(load("alpaca-1min-chunks/SPY_1min.csv"), spy)
    check_bars(result)
    opens = result["hourly"].groupby("session")["timestamp"].first().dt.strftime("%H:%M")
    assert set(opens) == {"14:30", "13:30"}
    # The only bars outside sessions: a print at 13:00 ET, the minute the early closes of
    # 3 July 2023 and 2024 end; left out and counted, not a gap.
    outside = result["validation"]["outside_sessions"]
    assert [e["timestamp"] for e in outside["examples"]] == [
        "2023-07-03T17:00:00Z",
        "2024-07-03T17:00:00Z",
    ]
    assert outside["rows"] == 2


def test_yfinance_zero_volume_bars_are_valid_and_counted():
    nvda = {"symbol": "NVDA", "calendar": "XNYS", "extended_hours": False}
    result = process(load("yfinance-1min-2026/NVDA_1m_union.csv"), nvda)
    check_bars(result)
    assert result["validation"]["zero_volume"] > 0
    assert result["validation"]["rows_rejected"] == 0


def test_fxcm_gbpusd_24x5_without_volume():
    gbpusd = {"symbol": "GBPUSD", "calendar": "FX-NY", "extended_hours": False}
    result = process(load("fxcm-fx-1min/fxcm-gbpusd-m1-bid-2012.csv"), gbpusd)
    check_bars(result)
    assert result["validation"]["volume_not_reported"] == result["validation"]["rows_read"]
    # 17:00-17:00 New York sessions: 24 hourly bars a day, none across the weekend.
    per_session = result["hourly"].groupby("session").size()
    assert per_session.max() == 24
    assert np.isin(pd.to_datetime(per_session.index).day_of_week, range(5)).all()


def test_cme_6e_future_on_the_cmes_calendar():
    euro = {"symbol": "6E", "calendar": "CMES", "extended_hours": False}
    result = process(load("fxcm-fx-1min/6EH4.XCME_1min_bars_20240101_20240131.csv"), euro)
    check_bars(result)
    # CMES in exchange_calendars has no 16:00-17:00 CT maintenance break: it shows as a
    # daily one-hour gap, reported, never filled.
    long_gaps = [g for g in result["gaps"]["gaps"] if g["minutes"] >= 60]
    assert long_gaps
    assert not any(g["filled"] for g in long_gaps)
