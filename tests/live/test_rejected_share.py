"""One bad minute early in a streamed session: live judges data_processing.max_rejected_share
over the stored files as batch does, not over the session's few minutes, and gives the bars
batch gives."""

from __future__ import annotations

import pandas as pd
import pytest
from live_support import project_parameters

from ml_lstm.backfill import SessionWindow
from ml_lstm.calendars import instrument_sessions, utc
from ml_lstm.live.session import EarlierRows, StreamedSession, read_raw, session_bars
from ml_lstm.pipelines.ingestion.nodes import to_raw_format
from ml_lstm.synthetic_market import SyntheticMarket, profile_from_parameters

DAY = "2024-07-01"
NOW = utc("2024-07-01T14:00:00Z")  # two 15-minute bars completed


@pytest.fixture(scope="module")
def streamed() -> tuple[StreamedSession, pd.DataFrame, dict, dict]:
    """The session before (stored) and this session's first 30 minutes, the sixth with its
    high below its low (validation rejects it: 1 row of 30, 3%, over the 1% limit alone)."""
    parameters = project_parameters()
    instrument = parameters["instruments"]["nvda"]
    data_processing = {**parameters["data_processing"], "frequency": "15min"}
    market = SyntheticMarket(profile_from_parameters(instrument, 7))
    sessions = instrument_sessions(instrument, "2024-06-28", DAY)
    before = to_raw_format(market.session_bars(sessions.index[0]))
    history = read_raw(before.to_csv(index=False), "2024-06-28.csv")
    today = to_raw_format(market.session_bars(sessions.index[1])).iloc[:30].reset_index(drop=True)
    today.loc[5, "high"] = today.loc[5, "low"] - 1.0
    window = SessionWindow(DAY, sessions["open"].iloc[1], sessions["close"].iloc[1])
    session = StreamedSession(window, instrument, "15min")
    session.add(today)
    return session, history, instrument, data_processing


def test_live_bars_with_a_rejected_minute_equal_the_batch_over_every_stored_file(streamed):
    session, history, instrument, dp = streamed
    session.earlier = EarlierRows(len(history), 0)
    live = session.hourly(dp, NOW)
    table = pd.concat([history, read_raw(session.text, session.file_name)], ignore_index=True)
    batch = session_bars(table, instrument, dp, NOW)
    batch = batch[batch["session"].astype(str) == DAY].reset_index(drop=True)
    assert len(live) == 2
    pd.testing.assert_frame_equal(live, batch)


def test_the_session_alone_would_exceed_the_limit(streamed):
    session, _, _, dp = streamed
    session.earlier = EarlierRows()
    with pytest.raises(ValueError, match="max_rejected_share"):
        session.hourly(dp, NOW)


def test_rejected_rows_in_the_earlier_files_count_as_in_batch(streamed):
    session, history, _, dp = streamed
    session.earlier = EarlierRows(len(history), 10)  # 11 of 420 rows: 2.6%
    with pytest.raises(ValueError, match="max_rejected_share"):
        session.hourly(dp, NOW)
