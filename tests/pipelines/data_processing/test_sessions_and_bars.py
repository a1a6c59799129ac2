"""Sessions, gaps, filling and resampling: golden days and hypothesis invariants."""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest
from data_processing_support import (
    NVDA,
    RUN_INFO,
    minute_bars,
    parameters,
    raw_table,
    session_minutes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_lstm.calendars import NEW_YORK, trading_sessions, utc_nanoseconds
from ml_lstm.pipelines.data_processing.gaps import Gaps, fill_minutes, find_gaps, locate_minutes
from ml_lstm.pipelines.data_processing.nodes import (
    analyse_gaps,
    fill_gaps,
    list_sessions,
    locate_gaps,
    plot_gaps,
    resample_to_session_bars,
    validate_minute_bars,
)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def process(bars: pd.DataFrame, instrument: dict = NVDA, ledger: dict | None = None, **changes):
    sessions = list_sessions(bars, instrument, RUN_INFO)
    params = parameters(**changes)
    minute_gaps = locate_gaps(bars, sessions)
    report = analyse_gaps(minute_gaps, sessions, ledger or {"sessions": {}}, instrument, params)
    filled = fill_gaps(bars, minute_gaps, params)
    return report, filled, resample_to_session_bars(filled, sessions, params)


def test_extended_hours_end_at_17_on_early_closes():
    regular = trading_sessions("XNYS", "2024-11-27", "2024-11-29")
    extended = trading_sessions("XNYS", "2024-11-27", "2024-11-29", extended=True)
    assert list(regular.index.strftime("%Y-%m-%d")) == ["2024-11-27", "2024-11-29"]
    assert regular.loc["2024-11-29", "close"] == utc("2024-11-29 18:00")  # 13:00 ET
    assert extended.loc["2024-11-27"].tolist() == [utc("2024-11-27 09:00"), utc("2024-11-28 01:00")]
    assert extended.loc["2024-11-29"].tolist() == [utc("2024-11-29 09:00"), utc("2024-11-29 22:00")]
    with pytest.raises(ValueError, match="Extended hours are not known for the CMES"):
        trading_sessions("CMES", "2024-01-02", "2024-01-03", extended=True)


def test_otc_calendars_open_the_evening_before_in_new_york():
    metals = trading_sessions("METALS-NY", "2024-03-08", "2024-03-11")
    fx = trading_sessions("FX-NY", "2024-12-24", "2024-12-27")
    # Sunday 18:00 EDT (first day of DST) to Monday 17:00 EDT; Friday closes 17:00 EST.
    assert metals.loc["2024-03-11"].tolist() == [utc("2024-03-10 22:00"), utc("2024-03-11 21:00")]
    assert metals.loc["2024-03-08", "close"] == utc("2024-03-08 22:00")
    assert list(fx.index.strftime("%Y-%m-%d")) == ["2024-12-24", "2024-12-26", "2024-12-27"]
    assert fx.loc["2024-12-26", "open"] == utc("2024-12-25 22:00")


def test_golden_early_close_day_after_thanksgiving():
    minutes = session_minutes("XNYS", "2024-11-29")
    assert len(minutes) == 210
    i = np.arange(210)
    close = 100 + i / 100
    bars = pd.DataFrame(
        {
            "timestamp": minutes,
            "open": close - 0.005,
            "high": close + 0.02,
            "low": close - 0.025,
            "close": close,
            "volume": (i + 1).astype(float),
        }
    )
    report, _, hourly = process(bars)
    expected = pd.DataFrame(
        {
            "timestamp": [
                utc("2024-11-29 14:30"),
                utc("2024-11-29 15:30"),
                utc("2024-11-29 16:30"),
                utc("2024-11-29 17:30"),
            ],
            "bar_end": [
                utc("2024-11-29 15:30"),
                utc("2024-11-29 16:30"),
                utc("2024-11-29 17:30"),
                utc("2024-11-29 18:00"),
            ],
            "session": ["2024-11-29"] * 4,
            "open": [99.995, 100.595, 101.195, 101.795],
            "high": [100.61, 101.21, 101.81, 102.11],
            "low": [99.975, 100.575, 101.175, 101.775],
            "close": [100.59, 101.19, 101.79, 102.09],
            "volume": [1830, 5430, 9030, 5865],
            "minutes": [60, 60, 60, 30],
            "filled_share": [0.0] * 4,
        }
    )
    pd.testing.assert_frame_equal(hourly, expected, check_dtype=False, atol=1e-9)
    assert report["summary"]["gaps"] == 0
    assert report["sessions"][0]["expected_minutes"] == 210


def test_golden_dst_change_moves_the_open_and_is_no_gap():
    minutes = session_minutes("XNYS", "2024-03-08").append(session_minutes("XNYS", "2024-03-11"))
    bars = minute_bars(minutes)
    report, _, hourly = process(bars)
    friday, monday = (hourly[hourly["session"] == day] for day in ("2024-03-08", "2024-03-11"))
    assert friday["timestamp"].iloc[0] == utc("2024-03-08 14:30")  # 09:30 EST
    assert monday["timestamp"].iloc[0] == utc("2024-03-11 13:30")  # 09:30 EDT
    assert monday["bar_end"].iloc[-1] == utc("2024-03-11 20:00")
    assert friday["minutes"].tolist() == monday["minutes"].tolist() == [60] * 6 + [30]
    first = bars.iloc[390:450]
    assert monday.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == pytest.approx(
        [
            first["open"].iloc[0],
            first["high"].max(),
            first["low"].min(),
            first["close"].iloc[-1],
            first["volume"].sum(),
        ]
    )
    assert report["summary"]["gaps"] == 0
    assert report["missing_sessions"] == []


@pytest.mark.parametrize(
    ("frequency", "bars_per_day", "last_minutes"),
    [("15min", 26, 15), ("30min", 13, 30), ("4h", 2, 150)],
)
def test_other_frequencies_align_to_the_open(frequency, bars_per_day, last_minutes):
    bars = minute_bars(session_minutes("XNYS", "2024-03-05"))
    _, _, hourly = process(bars, frequency=frequency)
    assert len(hourly) == bars_per_day
    assert hourly["timestamp"].iloc[0] == utc("2024-03-05 14:30")
    assert hourly["minutes"].iloc[-1] == last_minutes


def test_gaps_are_found_filled_from_the_past_and_never_across_sessions():
    day1 = session_minutes("XNYS", "2024-07-03")  # early close at 13:00 ET, then a holiday
    day2 = session_minutes("XNYS", "2024-07-05")
    missing = set(day1[[10, 11, 12]]) | set(day1[100:120]) | set(day2[:2]) | set(day2[-3:])
    minutes = day1.append(day2)
    bars = minute_bars(minutes[~minutes.isin(list(missing))])
    report, filled, hourly = process(bars)
    gaps = [(g["start"], g["minutes"], g["kind"], g["filled"]) for g in report["gaps"]]
    assert gaps == [
        ("2024-07-03T13:40:00Z", 3, "inside", True),
        ("2024-07-03T15:10:00Z", 20, "inside", False),
        ("2024-07-05T13:30:00Z", 2, "leading", False),
        ("2024-07-05T19:57:00Z", 3, "trailing", True),
    ]
    assert report["summary"]["sessions_expected"] == 2  # 4 July and the weekend are no gaps
    added = filled[filled["filled"]]
    assert len(added) == 6
    before = bars.set_index("timestamp")["close"]
    for stamp, row in added.set_index("timestamp").iterrows():
        previous = before[before.index < stamp].iloc[-1]
        assert row[["open", "high", "low", "close"]].tolist() == [previous] * 4
        assert row["volume"] == 0
    assert not filled["timestamp"].isin([utc("2024-07-05 13:30"), utc("2024-07-05 13:31")]).any()
    first_bar = hourly.iloc[0]
    assert first_bar["filled_share"] == pytest.approx(3 / 60)


def priced_minutes(minutes: pd.DatetimeIndex, opens: list[float]) -> pd.DataFrame:
    """One bar per minute opening at `opens[i]`, closing 0.05 higher, range +-0.1."""
    open_ = np.array(opens)
    return pd.DataFrame(
        {
            "timestamp": minutes,
            "open": open_,
            "high": open_ + 0.1,
            "low": open_ - 0.1,
            "close": open_ + 0.05,
            "volume": np.full(len(minutes), 10.0),
        }
    )


def test_filled_minutes_never_set_a_bars_prices():
    # The price jumps from 100 to 102 across the top of the hour and the hour's first two
    # minutes are missing: they are filled flat at 100.05, a price that never traded then.
    day = session_minutes("XNYS", "2024-03-05")[:120]
    kept = np.r_[0:60, 62:120]
    bars = priced_minutes(day[kept], [100.0] * 60 + [102.0] * 58)
    _, filled, hourly = process(bars)
    assert filled["filled"].sum() == 2
    second = hourly.iloc[1]
    assert second["timestamp"] == utc("2024-03-05 15:30")
    # Prices and volume from the real prints 15:32 .. 16:29 only.
    assert second[["open", "high", "low", "close"]].tolist() == pytest.approx(
        [102.0, 102.1, 101.9, 102.05]
    )
    assert second["volume"] == 58 * 10
    assert second["minutes"] == 60 and second["filled_share"] == pytest.approx(2 / 60)

    # 5-minute bars: 09:35 .. 09:39 are all filled, so that bar has no real print at all. It
    # stays flat at the last close, without volume, and filled_share 1.0 flags it.
    kept = np.r_[0:5, 10:120]
    bars = priced_minutes(day[kept], [100.0] * 5 + [102.0] * 110)
    _, _, bars_5min = process(bars, frequency="5min")
    empty, after = bars_5min.iloc[1], bars_5min.iloc[2]
    assert empty["timestamp"] == utc("2024-03-05 14:35")
    assert empty[["open", "high", "low", "close"]].tolist() == [100.05] * 4
    assert empty["volume"] == 0 and empty["filled_share"] == 1.0 and empty["minutes"] == 5
    assert after["open"] == 102.0 and after["filled_share"] == 0.0
    assert (bars_5min["filled_share"] < 1).sum() == len(bars_5min) - 1


def test_trailing_gaps_on_us_holidays_are_marked_on_24x5_calendars():
    # Real IB spot silver stopped early on three US holidays (New York times); the metals
    # calendar trades through them. An ordinary day that stops early is a plain gap.
    metals = {"symbol": "XAGUSD", "calendar": "METALS-NY", "extended_hours": False}
    stops = {
        "2024-12-24": "13:45",
        "2025-01-17": "15:00",
        "2025-01-20": "12:30",
        "2025-02-17": "14:30",
    }
    minutes = pd.DatetimeIndex([], tz="UTC")
    for day, stop in stops.items():
        session = session_minutes("METALS-NY", day)
        minutes = minutes.append(session[session < pd.Timestamp(f"{day} {stop}", tz=NEW_YORK)])
    report, _, _ = process(minute_bars(minutes), metals)
    trailing = [(g["session"], g["start"], g["us_holiday"]) for g in report["gaps"]]
    assert trailing == [
        ("2024-12-24", "2024-12-24T18:45:00Z", "Christmas Eve (NYSE closes at 13:00)"),
        ("2025-01-17", "2025-01-17T20:00:00Z", None),
        ("2025-01-20", "2025-01-20T17:30:00Z", "Dr. Martin Luther King Jr. Day"),
        ("2025-02-17", "2025-02-17T19:30:00Z", "President's Day"),
    ]
    assert report["summary"]["trailing_gaps_on_us_holidays"] == 3
    # Exchange calendars model their own holidays: no such mark there.
    report, _, _ = process(minute_bars(session_minutes("XNYS", "2024-12-24")[:-5]))
    assert "us_holiday" not in report["gaps"][0]
    assert "trailing_gaps_on_us_holidays" not in report["summary"]


def test_a_session_in_progress_counts_only_what_has_happened():
    day = session_minutes("XNYS", "2024-03-05")  # 14:30-21:00 UTC
    bars = minute_bars(day[day < utc("2024-03-05 19:45")])  # ingested up to 14:45 ET
    run = {**RUN_INFO, "started_at": "2024-03-05T19:42:30+00:00"}
    valid, _, report = validate_minute_bars(raw_table(bars), NVDA, parameters(), run)
    sessions = list_sessions(valid, NVDA, run)

    minute_gaps = locate_gaps(valid, sessions)
    gaps = analyse_gaps(minute_gaps, sessions, {"sessions": {}}, NVDA, parameters())
    filled = fill_gaps(valid, minute_gaps, parameters())
    hourly = resample_to_session_bars(filled, sessions, parameters())

    # Minutes 19:42, 19:43 and 19:44 had not finished when the run started.
    assert report["unfinished_at_run_start"] == 3
    assert valid["timestamp"].iloc[-1] == utc("2024-03-05 19:41")
    # The session is seen up to 19:42: no gap for minutes that have not happened.
    assert sessions["close"].iloc[-1] == utc("2024-03-05 19:42")
    assert sessions["scheduled_close"].iloc[-1] == utc("2024-03-05 21:00")
    assert gaps["gaps"] == [] and not filled["filled"].any()
    # 09:30 .. 13:30 ET are finished hourly bars; the 14:30 ET bar is not, so it is left out.
    assert hourly["timestamp"].tolist() == list(
        pd.date_range("2024-03-05 14:30", periods=5, freq="60min", tz="UTC")
    )
    assert (hourly["minutes"] == 60).all()


def test_gap_chart_is_written_as_png_and_plotly_json_through_the_catalogs_datasets(tmp_path):
    from kedro_datasets.matplotlib import MatplotlibDataset
    from kedro_datasets.plotly import JSONDataset

    day = session_minutes("XNYS", "2024-07-03")
    bars = minute_bars(day[~day.isin(list(day[100:120]))])
    report, _, _ = process(bars)

    figure, plot = plot_gaps(report)

    assert figure.axes and any(axis.has_data() for axis in figure.axes)
    path = tmp_path / "gap_chart.png"
    MatplotlibDataset(filepath=str(path)).save(figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    chart = JSONDataset(filepath=str(tmp_path / "gap_chart.json"))
    chart.save(plot)
    bars = {trace.name: list(trace.y) for trace in chart.load().data}
    assert bars == {"filled": [0], "left as gap": [20]}


@st.composite
def sparse_minutes(draw):
    days = ["2024-11-26", "2024-11-27", "2024-11-29", "2024-12-02"]
    chosen = draw(st.lists(st.sampled_from(days), min_size=1, max_size=3, unique=True))
    minutes = pd.DatetimeIndex([])
    for day in sorted(chosen):
        all_minutes = session_minutes("XNYS", day)
        keep = draw(st.lists(st.booleans(), min_size=len(all_minutes), max_size=len(all_minutes)))
        minutes = minutes.append(all_minutes[np.array(keep)])
    return minutes, draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(["15min", "60min", "4h"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sparse_minutes())
def test_resampling_invariants(case):
    minutes, seed, frequency = case
    if len(minutes) == 0:
        return
    bars = minute_bars(minutes, seed=seed)
    # Each minute opens away from the last close (as real prints do), so a filled minute's
    # price differs from the next real open.
    jump = 1 + np.random.default_rng(seed).uniform(-0.01, 0.01, len(bars))
    bars[["open", "high", "low", "close"]] *= jump[:, None]
    _, filled, hourly = process(bars, frequency=frequency)
    sessions = trading_sessions("XNYS", "2024-11-26", "2024-12-02")
    session_open = sessions["open"].reindex(pd.DatetimeIndex(hourly["session"])).to_numpy()
    session_close = sessions["close"].reindex(pd.DatetimeIndex(hourly["session"])).to_numpy()
    assert (hourly["timestamp"].to_numpy() >= session_open).all()
    assert (hourly["bar_end"].to_numpy() <= session_close).all()
    assert hourly["volume"].sum() == pytest.approx(bars["volume"].sum())
    assert hourly["minutes"].sum() == len(filled)
    for bar in hourly.itertuples():
        inside = filled[
            (filled["timestamp"] >= bar.timestamp) & (filled["timestamp"] < bar.bar_end)
        ]
        assert len(inside) == bar.minutes
        assert bar.filled_share == pytest.approx(inside["filled"].mean())
        # Prices from the real prints of the bar. Every bar here has one: a fill follows a
        # real print of its session and lasts at most 5 minutes, and bars are 15 or longer.
        real = inside[~inside["filled"]]
        assert [bar.open, bar.high, bar.low, bar.close] == [
            real["open"].iloc[0],
            real["high"].max(),
            real["low"].min(),
            real["close"].iloc[-1],
        ]
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high


def test_missing_sessions_say_what_ingestion_recorded_for_them():
    # Tuesday to Friday missing: the ledger says no data for two, a failure for one, and
    # nothing for the last (never fetched).
    minutes = session_minutes("XNYS", "2024-03-04").append(session_minutes("XNYS", "2024-03-11"))
    ledger = {
        "sessions": {
            "2024-03-05": {"status": "no_data"},
            "2024-03-06": {"status": "no_data"},
            "2024-03-07": {"status": "failed"},
        }
    }

    report, _, _ = process(minute_bars(minutes), ledger=ledger)

    assert report["missing_sessions"] == [
        {
            "first": "2024-03-05",
            "last": "2024-03-08",
            "sessions": 4,
            "ingestion": {"failed": 1, "no_data": 2, "not_in_ledger": 1},
        }
    ]


def test_cached_sessions_are_not_changed_through_a_returned_frame():
    # trading_sessions answers repeated ranges from a cache (the live loop asks at every
    # bar): what one caller does to its frame must not reach the next caller.
    first = trading_sessions("XNYS", "2024-11-25", "2024-11-29")
    expected = first.copy()
    first["close"] = first["open"]
    first["scheduled_close"] = first["open"]
    again = trading_sessions("XNYS", "2024-11-25", "2024-11-29")
    pd.testing.assert_frame_equal(again, expected)


def test_filling_gaps_given_out_of_order_matches_filling_them_in_order():
    day = session_minutes("XNYS", "2024-03-05")
    minutes = day[~day.isin(list(day[[5, 6, 40, 41, 42, 200]]))]
    bars = minute_bars(minutes)
    sessions = trading_sessions("XNYS", "2024-03-05", "2024-03-05")
    gaps = find_gaps(locate_minutes(bars, sessions), utc_nanoseconds(sessions["open"]))
    order = np.arange(len(gaps.minutes))[::-1]
    reversed_gaps = Gaps(*(values[order] for values in astuple(gaps)))
    in_order, added = fill_minutes(bars, gaps, 5)
    out_of_order, added_too = fill_minutes(bars, reversed_gaps, 5)
    assert added == added_too == 6
    pd.testing.assert_frame_equal(out_of_order, in_order)
    assert in_order["timestamp"].is_monotonic_increasing
