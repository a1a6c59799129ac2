"""Ingestion benchmarks.

1. Backfill of 250 sessions from the TWS simulator at 100 ms latency per request, through
   the real ib_insync client, against the floor ceil(250 / concurrency) x latency. That
   floor assumes 100 requests a second at concurrency 10; ib_insync sends at most 45
   messages a second (`Client.MaxRequests`, below TWS's limit of 50 a second for an API
   client), so 250 requests plus the connection's few take at least ~5.1 s whatever the
   latency and concurrency: a second reference row gives that bound. What is timed is the
   backfill (connect, qualify, every request), not the simulator's start and stop.
2. CSV import of 1M minute bars (parse, validate, split by session) against a bare
   `pandas.read_csv` of the same file, with peak memory: with the calendar already built,
   as `kedro run` reads the file, and cold (imports and the calendar's build timed too).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import Measurement, measure, report

SESSIONS = 250
LATENCY_S = 0.1
CONCURRENCY = (10, 50)
CSV_ROWS = 1_000_000


def _project_instrument(name: str) -> dict:
    """The instrument exactly as conf/base configures it (what `kedro run` ingests)."""
    from omegaconf import OmegaConf

    parameters = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/base/parameters.yml")
    return OmegaConf.to_container(parameters)["instruments"][name]


NVDA = _project_instrument("nvda")


def backfill_from_simulator(concurrency: int, separate_process: bool = False) -> float:
    """The client backfills SESSIONS sessions; the simulator runs in a thread of this
    process, or (`separate_process`) in a process of its own, as TWS does."""
    from ml_lstm.backfill import SessionWindow
    from ml_lstm.calendars import trading_sessions
    from ml_lstm.ib_client import HistoricalBarsClient
    from ml_lstm.ib_connection import ConnectionSettings, RequestSettings
    from ml_lstm.pacing import PacingRules
    from ml_lstm.tws_simulator import (
        Faults,
        SimulatorProcess,
        SimulatorThread,
        instrument_from_parameters,
    )

    schedule = trading_sessions("XNYS", "2023-01-03", "2024-12-31").iloc[:SESSIONS]
    windows = [
        SessionWindow(label.strftime("%Y-%m-%d"), row.open, row.close)
        for label, row in schedule.iterrows()
    ]
    settings = RequestSettings(max_concurrent_requests=concurrency, pacing=PacingRules.unlimited())
    simulator = (
        SimulatorProcess(["--instrument", "nvda", "--latency", str(LATENCY_S)])
        if separate_process
        else SimulatorThread([instrument_from_parameters(NVDA, 42)], Faults(latency_s=LATENCY_S))
    )
    with simulator as sim:
        started = time.perf_counter()
        client = HistoricalBarsClient(
            NVDA,
            ConnectionSettings("127.0.0.1", sim.port, 1),
            settings,
            now=pd.Timestamp.now(tz="UTC"),  # a benchmark, not a node: it may read the clock
        )
        done = sum(len(batch) for batch in client.fetch(windows, batch_size=25))
        seconds = time.perf_counter() - started
    assert done == SESSIONS
    return seconds


def throttle_bound() -> float:
    """The least time in which ib_insync sends SESSIONS requests and gets the last answer:
    it sends at most `MaxRequests` messages per `RequestsInterval` seconds."""
    from ib_insync.client import Client

    windows_needed = math.ceil(SESSIONS / Client.MaxRequests) - 1
    return windows_needed * Client.RequestsInterval + LATENCY_S


def import_csv(path: str, calendar_ready: bool) -> float:
    """What a `csv` source does with the file: read, parse, check and split it by session
    (each session's rows found; its frame is cut when the run uses it, after the timing).

    `calendar_ready`: as in `kedro run`, whose plan (ingestion's `plan_backfill`) has built
    the instrument's calendar before the file is read, the calendar is built first,
    untimed. Otherwise the timed part also imports ml_lstm's ingestion modules and
    exchange_calendars and builds the calendar (a standalone import in a fresh process).
    """
    started = time.perf_counter()
    from ml_lstm.calendars import get_calendar
    from ml_lstm.pipelines.ingestion.csv_bars import PRESETS
    from ml_lstm.pipelines.ingestion.file_sources import read_csv_sessions

    if calendar_ready:
        get_calendar(NVDA["calendar"])
        started = time.perf_counter()
    sessions = read_csv_sessions(path, PRESETS["plain"], NVDA)
    seconds = time.perf_counter() - started
    assert sum(len(frame) for frame in sessions.values()) == CSV_ROWS  # every row in a session
    return seconds


def bare_read_csv(path: str) -> None:
    pd.read_csv(path)


def _write_minute_csv(path: Path, rows: int) -> None:
    from ml_lstm.calendars import trading_sessions

    schedule = trading_sessions("XNYS", "2010-01-04", "2030-12-31")
    stamps = []
    for open_, close in zip(schedule["open"], schedule["close"], strict=True):
        stamps.append(pd.date_range(open_, close, freq="1min", inclusive="left"))
        if sum(map(len, stamps)) >= rows:
            break
    timestamps = stamps[0].append(stamps[1:])[:rows]
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, rows)))
    frame = pd.DataFrame(
        {
            "timestamp": timestamps.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close.round(2),
            "high": (close * 1.0005).round(2),
            "low": (close * 0.9995).round(2),
            "close": close.round(2),
            "volume": rng.integers(100, 10_000, rows),
        }
    )
    frame.to_csv(path, index=False)


def main() -> list[dict]:
    rows = []
    for separate_process in (True, False):
        where = "simulator in its own process" if separate_process else "simulator in-thread"
        for concurrency in CONCURRENCY:
            ours = measure(
                "benchmarks.bench_ingestion",
                "backfill_from_simulator",
                concurrency=concurrency,
                separate_process=separate_process,
            )
            floor = math.ceil(SESSIONS / concurrency) * LATENCY_S
            rows.append(
                report(
                    f"backfill {SESSIONS} sessions, {LATENCY_S * 1000:.0f} ms latency, "
                    f"concurrency {concurrency}, {where}",
                    ours,
                    Measurement(floor, float("nan")),
                    "floor ceil(n/concurrency) x latency",
                )
            )
            rows.append(
                report(
                    f"backfill {SESSIONS} sessions, concurrency {concurrency}, {where}",
                    ours,
                    Measurement(max(floor, throttle_bound()), float("nan")),
                    "bound of ib_insync's message throttle",
                )
            )
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bars.csv")
        _write_minute_csv(Path(path), CSV_ROWS)
        reference = measure("benchmarks.bench_ingestion", "bare_read_csv", repeat=3, path=path)
        for calendar_ready, how in ((True, "calendar built, as in `kedro run`"), (False, "cold")):
            ours = measure(
                "benchmarks.bench_ingestion",
                "import_csv",
                repeat=3,
                path=path,
                calendar_ready=calendar_ready,
            )
            rows.append(
                report(
                    f"CSV import of {CSV_ROWS:,} rows ({how})", ours, reference, "pandas.read_csv"
                )
            )
    return rows


if __name__ == "__main__":
    main()
