"""The shortcuts that keep data_processing's nodes cheap per call (the live loop runs them at
every bar on one session) give what the general computations give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_processing_support import NVDA, PARAMETERS, minute_bars, parameters, session_minutes

from ml_lstm.calendars import (
    bar_step_ns,
    instrument_sessions,
    session_of,
    trading_sessions,
    utc_nanoseconds,
)
from ml_lstm.pipelines.data_processing.calendar_span import calendar_span, sessions_around
from ml_lstm.pipelines.data_processing.features import indicator_columns, joined_features
from ml_lstm.pipelines.data_processing.nodes import (
    add_features,
    fill_gaps,
    list_sessions,
    locate_gaps,
    resample_to_session_bars,
    validate_minute_bars,
)
from ml_lstm.pipelines.data_processing.reports import _distinct
from ml_lstm.pipelines.data_processing.resampling import resample_minutes, session_labels

NVDA_EXTENDED = {**NVDA, "extended_hours": True}
METALS = {"symbol": "XAGUSD", "calendar": "METALS-NY", "extended_hours": False}


def raw_session(instrument: dict, day: str) -> pd.DataFrame:
    """One session's raw rows as the live loop reads them (text times, file and line), with
    holes short and long, a duplicated and a rejected row."""
    minutes = session_minutes(instrument["calendar"], day, instrument["extended_hours"])
    minutes = minutes.delete([7, 8, 30, 31, 32, 33, 34, 35, 36, 37, 38, 90])
    bars = minute_bars(minutes, seed=7)
    bars["timestamp"] = bars["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    bars = pd.concat([bars.iloc[:60], bars.iloc[[59]], bars.iloc[60:]], ignore_index=True)
    bars.loc[100, "high"] = 0.5
    bars["source_line"] = range(2, len(bars) + 2)
    bars["source_file"] = pd.Categorical([f"{day}.csv"] * len(bars))
    return bars


def finished_bars_as_before(filled: pd.DataFrame, sessions: pd.DataFrame, frequency: str):
    """resample_to_session_bars' general computation: every bar as a table, then the
    finished ones selected by label (what the node did before building only those)."""
    timestamp_ns = utc_nanoseconds(filled["timestamp"])
    position = session_of(filled["timestamp"], sessions)
    bars = resample_minutes(filled, timestamp_ns, position, sessions, frequency).frame()
    scheduled = utc_nanoseconds(sessions["scheduled_close"])[
        session_of(bars["timestamp"], sessions)
    ]
    full_end = np.minimum(utc_nanoseconds(bars["timestamp"]) + bar_step_ns(frequency), scheduled)
    finished = utc_nanoseconds(bars["bar_end"]) >= full_end
    return bars if finished.all() else bars.loc[finished].reset_index(drop=True)


@pytest.mark.parametrize(
    ("instrument", "day"),
    [
        (NVDA, "2024-11-29"),
        (NVDA_EXTENDED, "2024-11-29"),
        (NVDA, "2024-03-11"),
        (METALS, "2024-12-24"),
    ],
)
@pytest.mark.parametrize("frequency", ["15min", "60min"])
def test_a_session_in_progress_gives_the_bars_of_the_general_computation(
    instrument, day, frequency
):
    # Early closes, extended hours, a DST change, a 24x5 session that opens the evening
    # before; at cut points where no bar, some bars or every bar has finished.
    raw = raw_session(instrument, day)
    params = parameters(frequency=frequency, max_rejected_share=0.5)
    for rows in [2, 3, 20, 61, 62, 101, 150, 197, len(raw)]:
        last = pd.Timestamp(raw["timestamp"].iloc[rows - 1])
        for now in (last + pd.Timedelta(minutes=1), last + pd.Timedelta(minutes=9)):
            run_info = {"started_at": now.isoformat()}
            valid, _, _ = validate_minute_bars(raw.iloc[:rows], instrument, params, run_info)
            sessions = list_sessions(valid, instrument, run_info)
            filled = fill_gaps(valid, locate_gaps(valid, sessions), params)
            bars = resample_to_session_bars(filled, sessions, params)
            expected = finished_bars_as_before(filled, sessions, frequency)
            pd.testing.assert_frame_equal(bars, expected, check_exact=True)
            assert bars["session"].dtype == expected["session"].dtype


def test_session_labels_are_the_text_strftime_writes():
    days = pd.DatetimeIndex(
        ["1900-01-01", "1969-12-31", "1970-01-01", "2000-02-29", "2024-07-01", "2199-12-31"]
    )
    positions = np.array([5, 0, 3, 3, 1, 2, 4])
    for index in (days, days.tz_localize("America/New_York")):
        labels = session_labels(index, positions)
        assert labels.tolist() == index.strftime("%Y-%m-%d").to_numpy()[positions].tolist()
        assert labels.dtype == object and all(type(label) is str for label in labels)


def live_bars(first: int, last: int, seed: int = 3) -> pd.DataFrame:
    """15-minute bars of the XNYS sessions `first` to `last` (positions) of 2024."""
    days = trading_sessions("XNYS", "2024-01-02", "2024-12-31").index[first : last + 1]
    minutes = np.concatenate([session_minutes("XNYS", f"{day:%Y-%m-%d}") for day in days])
    bars = minute_bars(pd.DatetimeIndex(minutes), seed=seed)
    sessions = list_sessions(bars, NVDA, {"started_at": "2030-01-01T00:00:00Z"})
    filled = fill_gaps(bars, locate_gaps(bars, sessions), PARAMETERS)
    return resample_to_session_bars(filled, sessions, parameters(frequency="15min"))


def test_one_stretch_has_the_features_it_has_inside_several_stretches():
    # One stretch is computed as a slice of the rows, several each on its own and joined.
    bars = live_bars(0, 11)
    one_stretch, listing = add_features(bars, NVDA, PARAMETERS)
    later = live_bars(14, 17, seed=4)  # after two sessions without bars
    two_stretches, listing_two = add_features(
        pd.concat([bars, later], ignore_index=True), NVDA, PARAMETERS
    )
    assert (listing["stretches"], listing_two["stretches"]) == (1, 2)
    pd.testing.assert_frame_equal(
        two_stretches.iloc[: len(one_stretch)], one_stretch, check_exact=True
    )


@pytest.mark.parametrize(
    "settings",
    [
        PARAMETERS["features"],
        {
            **PARAMETERS["features"],
            "sma_windows": [5, 20],
            "ema_windows": [12, 26],
            "rsi_window": 14,
            "macd": {"fast": 12, "slow": 26, "signal": 9},
            "volatility_windows": [20],
        },
    ],
)
def test_indicators_equal_pandas_series_operations(settings):
    close = pd.Series(100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, 300))))
    close[40:43] = close[39]  # no move: RSI's flat case
    columns, _ = indicator_columns(close.to_numpy(), settings)

    def ema(values: pd.Series, span: int) -> pd.Series:
        return values.ewm(span=span, adjust=False, min_periods=span).mean()

    log_return = np.log(close / close.shift(1))
    expected = {"return": close / close.shift(1) - 1, "log_return": log_return}
    for window in settings["sma_windows"]:
        expected[f"sma_{window}"] = close.rolling(window).mean()
    for window in settings["ema_windows"]:
        expected[f"ema_{window}"] = ema(close, window)
    macd = settings["macd"]
    expected["macd"] = ema(close, macd["fast"]) - ema(close, macd["slow"])
    expected["macd_signal"] = ema(expected["macd"], macd["signal"])
    for window in settings["volatility_windows"]:
        expected[f"volatility_{window}"] = log_return.rolling(window).std()
    for name, values in expected.items():
        np.testing.assert_array_equal(columns[name], values.to_numpy(), err_msg=name)


def test_added_columns_joined_as_one_block_equal_a_concatenation_of_columns():
    bars = live_bars(0, 1)
    rng = np.random.default_rng(0)
    indicators = {"a": rng.normal(size=len(bars)), "b": np.full(len(bars), np.nan)}
    for calendar in ({"c": rng.normal(size=len(bars))}, {"c": np.arange(len(bars))}):
        joined = joined_features(bars, indicators, calendar)
        expected = pd.concat([bars, pd.DataFrame({**indicators, **calendar})], axis=1)
        pd.testing.assert_frame_equal(joined, expected, check_exact=True)


def test_cached_calendar_lookups_equal_the_calendar_and_cannot_be_changed():
    for stamp in ("2024-03-08T23:59:00Z", "2024-03-10T00:00:00Z", "2024-12-24T22:00:00Z"):
        ns = pd.Timestamp(stamp).value
        for instrument in (NVDA, NVDA_EXTENDED, METALS):
            expected = instrument_sessions(
                instrument,
                pd.Timestamp(stamp) - pd.Timedelta(days=3),
                pd.Timestamp(stamp) + pd.Timedelta(days=3),
            )
            pd.testing.assert_frame_equal(sessions_around(instrument, ns, ns).frame, expected)
    span = calendar_span("XNYS", False, "2024-03-04", "2024-03-08")
    for values in (span.open_ns, span.close_ns, span.weekday):
        with pytest.raises(ValueError, match="read-only"):
            values[0] = 0
    minutes = minute_bars(session_minutes("XNYS", "2024-03-05")[:30])
    run_info = {"started_at": "2024-03-05T15:00:00Z"}
    first = list_sessions(minutes, NVDA, run_info)
    expected = first.copy()
    first.iloc[0, 0] = first.iloc[0, 1]
    first["close"] = first["open"]
    pd.testing.assert_frame_equal(list_sessions(minutes, NVDA, run_info), expected)


def test_distinct_file_names_are_counted_as_nunique_counts_them():
    names = pd.Series(
        pd.Categorical(["a.csv", None, "b.csv", "a.csv"], categories=["a.csv", "b.csv", "c.csv"])
    )
    for column in (names, names.astype(object), names.iloc[:0], names.iloc[[1]]):
        assert _distinct(column) == column.nunique()
