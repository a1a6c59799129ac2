"""`kedro live` over a whole replayed session against the TWS simulator (real socket, real
ib_insync, a tiny trained model), with a socket drop, a 1100/1102 outage, TWS's restart
and a stalled feed on the way; compared with what the batch path gives for the same day."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from live_support import (
    CLOSE,
    LIVE_DAY,
    OPEN,
    copy_trained,
    live_parameters,
    project_parameters,
)

from ml_lstm.calendars import utc
from ml_lstm.live.runner import run_live
from ml_lstm.live.session import read_raw, session_bars
from ml_lstm.model_registry import ServedModelDataset
from ml_lstm.pipelines.data_processing.nodes import add_features
from ml_lstm.pipelines.inference.nodes import predict_next_close
from ml_lstm.pipelines.ingestion.nodes import fetch_minute_bars

pytestmark = pytest.mark.slow

# Feed times of the faults (UTC, on the simulator's clock).
FAULTS = {
    "drop_at": ["2024-06-03T14:15:00Z"],
    "connectivity_loss_at": ["2024-06-03T15:40:00Z"],
    "outage_s": 0.3,
    "restart_at": ["2024-06-03T17:05:00Z"],
    "restart_minutes": 10,
    "stall_at": ["2024-06-03T18:20:00Z"],
    "stall_minutes": 60,
    # TWS refuses the stream's request for the session's last minutes at the close: the
    # closing backfill brings them (the stored file and the last bar's prediction below).
    "history_refused_at": [CLOSE],
}


@pytest.fixture(scope="module")
def streamed(trained, tmp_path_factory):
    """One live run from 12:00 (before the open) to after the close, at 2000x."""
    project = copy_trained(trained, tmp_path_factory.mktemp("live") / "project")
    parameters = live_parameters(
        chart=True,
        until="2024-06-03T20:10:00Z",
        simulator={"start": "2024-06-03T12:00:00Z", "speed": 2000, "faults": FAULTS},
    )
    (loop,) = run_live(project, params=parameters)
    return project, loop


@pytest.fixture(scope="module")
def backfill(trained) -> tuple[str, dict]:
    """The session as the batch ingestion stores it (default source: the simulator)."""
    parameters = json.loads(json.dumps(project_parameters(trained)))
    instrument = parameters["instruments"]["nvda"]
    batches = list(
        fetch_minute_bars(
            [{"session": LIVE_DAY, "stored_bars": 0}],
            {"sessions": {}},
            instrument,
            parameters["ingestion"],
            {},
            {"started_at": "2024-06-04T00:00:00+00:00"},
        )
    )
    partitions, ledger = batches[-1]
    return partitions[LIVE_DAY].to_csv(index=False), ledger["sessions"][LIVE_DAY]


def test_the_session_streamed_through_faults_is_stored_as_a_backfill_stores_it(streamed, backfill):
    project, loop = streamed
    text, entry = backfill
    stored = project / f"data/01_raw/nvda/minute_bars/{LIVE_DAY}.csv"
    assert stored.read_text() == text
    # As streamed, before the closing backfill added the last minute (which no later bar
    # proved complete): the same bytes, row for row.
    streamed = loop.stats.streamed_sessions[LIVE_DAY]
    assert text.startswith(streamed)
    assert 0 <= text.count("\n") - streamed.count("\n") <= 1
    ledger = json.loads((project / "data/01_raw/nvda/ingestion_ledger.json").read_text())
    live_entry = ledger["sessions"][LIVE_DAY]
    assert {k: live_entry[k] for k in ("status", "bars", "expected", "failures")} == {
        k: entry[k] for k in ("status", "bars", "expected", "failures")
    }
    # Most minutes came through the stream, not through the catch-ups.
    assert loop.stats.minutes_written > 200
    # The catch-ups connected to the simulator kedro live runs, and the ledger says so.
    assert live_entry["source"] == entry["source"] == "simulator"


def test_the_catch_ups_and_the_stream_count_their_requests_in_one_pacing_book(streamed):
    _, loop = streamed
    requests = loop.feed.pacing_book.requests_sent()
    subscriptions = [request for request in requests if request[0] == "keepUpToDate"]
    # The stream's subscriptions (one per fault) and the catch-ups' historical requests.
    assert len(subscriptions) >= 4
    assert len(requests) - len(subscriptions) >= 4


def test_each_fault_was_met_and_recovered_from(streamed):
    _, loop = streamed
    faults = " | ".join(loop.stats.faults)
    assert "socket" in faults  # the drop and the restart
    assert "(1102)" in faults
    assert "stalled" in faults
    assert len(loop.stats.faults) >= 4
    assert loop.stats.last_minutes_from_backfill == [LIVE_DAY]


def test_a_start_before_the_open_sleeps_until_the_open(streamed):
    _, loop = streamed
    (now, until), *_ = loop.stats.sleeps
    assert now < utc(OPEN) and until == utc(OPEN)


def test_one_prediction_per_completed_bar_equal_to_the_batch(streamed):
    project, loop = streamed
    parameters = project_parameters(project)
    parameters["modelling"]["lookback"] = 8
    instrument = parameters["instruments"]["nvda"]
    dp = parameters["data_processing"]
    log = pd.read_csv(project / "data/07_model_output/nvda/predictions.csv")
    live = log[log["source"] == "live"]
    # The trained project's own batch run wrote one row: source batch, no latency.
    batch_rows = log[log["source"] == "batch"]
    assert len(batch_rows) == 1 and batch_rows["latency_ms"].isna().all()
    starts = pd.date_range(OPEN, CLOSE, freq="60min", inclusive="left")
    assert list(utc(live["as_of_bar_time"])) == list(starts)
    assert (live["latency_ms"] >= 0).all()

    table = pd.concat(
        [
            read_raw(path.read_text(), path.name)
            for path in sorted((project / "data/01_raw/nvda/minute_bars").glob("*.csv"))
        ],
        ignore_index=True,
    )
    bars = session_bars(table, instrument, dp, utc("2024-06-04T00:00:00Z"))
    features, _ = add_features(bars, instrument, dp)
    served = ServedModelDataset(str(project / "data/06_models/nvda")).load()
    model = {**served}
    times = utc(features["timestamp"])
    for (_, row), used in zip(live.iterrows(), loop.stats.feature_rows, strict=True):
        upto = features[times <= utc(row["as_of_bar_time"])]
        batch_row = upto.iloc[-1]
        names = [c for c in features.columns if c not in ("timestamp", "bar_end", "session")]
        assert np.allclose(
            used[names].astype(float), batch_row[names].astype(float), rtol=1e-12, atol=1e-12
        )
        batch = predict_next_close(
            model, upto, instrument, parameters["inference"], {"run_id": "batch"}
        )
        assert abs(batch["predicted_close"].iloc[0] - row["predicted_close"]) <= 1e-6
        assert batch["target_bar_time"].iloc[0] == row["target_bar_time"]


def test_the_latest_prediction_chart_shows_the_last_live_prediction(streamed, trained):
    project, loop = streamed
    chart = "data/08_reporting/nvda/latest_prediction.json"
    drawn = json.loads((project / chart).read_text())
    last = loop.stats.predictions[-1]
    assert (project / chart).read_bytes() != (trained / chart).read_bytes()
    assert str(last["predicted_close"]) in json.dumps(drawn)
