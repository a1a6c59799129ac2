"""One trading session streamed live: its stored minutes, its bars and the features and
prediction at each completed bar, all through the pipelines' own node functions.

Minutes are stored as ingestion stores them (`to_raw_format`, one atomic CSV per
session). Bars and features come from data_processing's nodes (validate, accept, list
sessions, locate and fill gaps, resample, add features) applied to the stored history plus
the session's minutes, read from their CSV text as the batch reads its raw table; the
prediction is inference's `predict_next_close`. Nothing here re-implements a step.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml_lstm.backfill import SessionWindow
from ml_lstm.calendars import instrument_sessions, session_bar_starts, utc, utc_nanoseconds
from ml_lstm.ib_data import bars_to_frame
from ml_lstm.pipelines.data_processing.nodes import (
    accept_minute_bars,
    add_features,
    fill_gaps,
    list_sessions,
    locate_gaps,
    resample_to_session_bars,
    validate_minute_bars,
)
from ml_lstm.pipelines.inference.nodes import predict_next_close
from ml_lstm.pipelines.ingestion.nodes import RAW_COLUMNS, to_raw_format

MINUTE = pd.Timedelta(minutes=1)
# data_processing's nodes log a few INFO lines per call (rows read, filled, warm-up): at
# every bar of a live session that is noise, and each line costs milliseconds of latency.
NODE_LOGGER = logging.getLogger("ml_lstm.pipelines.data_processing.nodes")


class _WarningsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


_WARNINGS_ONLY = _WarningsOnly()


@contextlib.contextmanager
def quiet_nodes() -> Iterator[None]:
    """data_processing's nodes log only warnings and errors inside this block.

    A filter, not the logger's level: setting a level clears the level cache of every
    logger in the process (TensorFlow's and Kedro's included), ~0.25 ms each time.
    """
    NODE_LOGGER.addFilter(_WARNINGS_ONLY)
    try:
        yield
    finally:
        NODE_LOGGER.removeFilter(_WARNINGS_ONLY)


def raw_text(raw: pd.DataFrame) -> str:
    """A session's raw file content, exactly as ingestion writes it."""
    return raw.to_csv(index=False)


def read_raw(text: str, file_name: str) -> pd.DataFrame:
    """Raw rows as data_processing's raw table holds them: parsed from the file's text by
    the same parser, with `source_file` and `source_line`."""
    return raw_table(pd.read_csv(io.StringIO(text)), file_name)


def raw_table(raw: pd.DataFrame, file_name: str) -> pd.DataFrame:
    """One raw file's rows (`raw`, as parsed from it) with `source_file` and `source_line`,
    as data_processing's raw table holds them."""
    table = raw.copy(deep=False)
    table["source_line"] = np.arange(2, len(table) + 2)
    table["source_file"] = pd.Categorical.from_codes(np.zeros(len(table), "int8"), [file_name])
    return table


@dataclass(frozen=True)
class EarlierRows:
    """Raw rows read, and rejected by validation, in the stored files of the sessions before
    the one streamed. Batch judges `data_processing.max_rejected_share` over every stored
    file; live validates only the session's minutes at each bar, so it judges the share over
    these rows plus the session's, as batch would (one bad minute in the morning is not
    20% of a few minutes)."""

    read: int = 0
    rejected: int = 0

    @classmethod
    def before(cls, session: str, raw_table: pd.DataFrame, rejected: pd.DataFrame) -> EarlierRows:
        """The rows of `raw_table` (and of its `rejected` rows) not in `session`'s file."""
        this_file = f"{session}.csv"
        return cls(
            int((raw_table["source_file"] != this_file).sum()),
            int((rejected["source_file"] != this_file).sum()),
        )


def session_bars(
    raw_table: pd.DataFrame,
    instrument: dict,
    data_processing: dict,
    now: pd.Timestamp,
    earlier: EarlierRows = EarlierRows(),
) -> pd.DataFrame:
    """data_processing's bars (finished by `now`) of a raw table, node by node."""
    return bars_and_rejected(raw_table, instrument, data_processing, now, earlier)[0]


def bars_and_rejected(
    raw_table: pd.DataFrame,
    instrument: dict,
    data_processing: dict,
    now: pd.Timestamp,
    earlier: EarlierRows = EarlierRows(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`session_bars` and the raw rows validation rejected (with their `source_file`)."""
    run_info = {"started_at": now.isoformat()}
    valid, rejected, report = validate_minute_bars(raw_table, instrument, data_processing, run_info)
    if earlier.read:
        read = report["rows_read"] + earlier.read
        rejected_rows = report["rows_rejected"] + earlier.rejected
        report = {
            **report,
            "rows_read": read,
            "rows_rejected": rejected_rows,
            "rejected_share": rejected_rows / read,
        }
    minutes = accept_minute_bars(valid, rejected, report, data_processing)
    sessions = list_sessions(minutes, instrument, run_info)
    gaps = locate_gaps(minutes, sessions)
    filled = fill_gaps(minutes, gaps, data_processing)
    return resample_to_session_bars(filled, sessions, data_processing), rejected


def session_at(instrument: dict, now: pd.Timestamp) -> tuple[SessionWindow, pd.Timestamp]:
    """The instrument's session holding `now` or, outside sessions, the next one; and the
    close of the session before it."""
    sessions = instrument_sessions(
        instrument, now - pd.Timedelta(days=10), now + pd.Timedelta(days=10)
    )
    position = int((sessions["close"] <= now).sum())
    row = sessions.iloc[position]
    window = SessionWindow(sessions.index[position].strftime("%Y-%m-%d"), row.open, row.close)
    return window, sessions["close"].iloc[position - 1]


@dataclass
class StreamedSession:
    """The minutes of one session stored so far, and which of its bars have completed."""

    window: SessionWindow
    instrument: dict
    frequency: str
    # `raw` (see below) as its file holds it: what is written and what the session's bars
    # are read from, so a prediction is made from exactly the stored minutes.
    text: str = ""
    # Bars of the model's frequency in this session: start and end (UTC).
    bars: pd.DataFrame = field(init=False)
    # Stored minutes in the raw layout, as the frames they were added in (joined on demand:
    # a bar's path only extends `text`).
    _parts: list[pd.DataFrame] = field(init=False, default_factory=list)
    _last: pd.Timestamp | None = field(init=False, default=None)
    rows: int = field(init=False, default=0)
    # The stored rows of the sessions before this one (see EarlierRows).
    earlier: EarlierRows = field(default_factory=EarlierRows)

    def __post_init__(self) -> None:
        sessions = pd.DataFrame({"open": [self.window.open], "close": [self.window.close]})
        self.bars = session_bar_starts(sessions, self.frequency)
        self._bar_ends_ns = utc_nanoseconds(self.bars["bar_end"])
        self._bar_starts = list(self.bars["bar_start"])
        self._bar_ends = list(self.bars["bar_end"])

    @property
    def raw(self) -> pd.DataFrame:
        """Stored minutes in the raw layout (timestamp as ISO text), in time order."""
        if not self._parts:
            return pd.DataFrame(columns=RAW_COLUMNS)
        if len(self._parts) > 1:
            self._parts = [pd.concat(self._parts, ignore_index=True)]
        return self._parts[0]

    @property
    def file_name(self) -> str:
        return f"{self.window.session}.csv"

    @property
    def last_minute(self) -> pd.Timestamp | None:
        return self._last

    def completed_minutes(self, bars: list, what: str) -> pd.DataFrame:
        """Minutes of `bars` (ib_insync's subscription list) not stored yet that a later bar
        proves complete, in the raw layout. The last bar may still be forming, whatever the
        clock says (a stalled TWS answers currentTime without sending its final update):
        it is stored once a later bar comes, or by the closing backfill."""
        return self.new_minutes(bars[:-1], what)

    def new_minutes(self, bars: list, what: str) -> pd.DataFrame:
        """Minutes of `bars` (complete ib_insync bars in time order) after the stored ones
        and inside the session, in the raw layout."""
        last = self.last_minute
        first = len(bars)
        # Bars are in time order: only the newest few are new (the list grows all day).
        while first > 0 and (last is None or utc(bars[first - 1].date) > last):
            first -= 1
        frame = bars_to_frame(bars[first:], self.window, what, self.instrument["symbol"])
        return to_raw_format(frame)

    def add(self, minutes: pd.DataFrame) -> None:
        """Appends `minutes` (raw layout, after the stored ones). The file's text grows by
        their rows only: CSV rows are written value by value, so that equals writing the
        whole session again, as long as every column keeps its type (e.g. volume stays
        whole numbers); when one does not, the whole session is written again."""
        if not len(minutes):
            return
        if self._parts and list(minutes.dtypes) == list(self._parts[0].dtypes):
            self.text += minutes.to_csv(index=False, header=False)
            self._parts.append(minutes)
        else:
            self._parts.append(minutes)
            self.text = raw_text(self.raw)
        self.rows += len(minutes)
        self._last = utc(minutes["timestamp"].iloc[-1])

    def adopt(self, text: str) -> None:
        """The session as its file holds it (written by the closing backfill, or by another
        process in between)."""
        raw = pd.read_csv(io.StringIO(text))
        self._parts = [raw] if len(raw) else []
        self.rows = len(raw)
        self._last = utc(raw["timestamp"].iloc[-1]) if len(raw) else None
        self.text = text

    def bars_completed(self, known_until: pd.Timestamp) -> pd.DataFrame:
        """This session's bars that have ended by `known_until`."""
        return self.bars[self.bars["bar_end"] <= known_until]

    def bars_ended(
        self, after: pd.Timestamp, known_until: pd.Timestamp
    ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """(start, end) of this session's bars starting after `after` that have ended by
        `known_until` (on every minute's path: plain arrays, no frame)."""
        ended = int(np.searchsorted(self._bar_ends_ns, known_until.value, side="right"))
        return [
            (start, end)
            for start, end in zip(self._bar_starts[:ended], self._bar_ends[:ended], strict=True)
            if start > after
        ]

    def hourly(self, data_processing: dict, now: pd.Timestamp) -> pd.DataFrame:
        """This session's bars finished by `now`, from its stored minutes."""
        if not self.rows:
            return pd.DataFrame()
        # The stored minutes as parsed from the file (pandas 3 reads floats back exactly,
        # and each part has the types its text is read with): read_csv of `text` gives
        # this table too (tests/live/test_session_text.py), ~1 ms slower.
        table = raw_table(self.raw, self.file_name)
        with quiet_nodes():
            return session_bars(table, self.instrument, data_processing, now, self.earlier)


def features_with(
    history: pd.DataFrame, today: pd.DataFrame, instrument: dict, data_processing: dict
) -> tuple[pd.DataFrame, dict]:
    """add_features over the earlier sessions' bars and today's."""
    bars = pd.concat([history, today], ignore_index=True) if len(today) else history
    with quiet_nodes():
        return add_features(bars, instrument, data_processing)


def predict_row(
    checked_model: dict,
    features: pd.DataFrame,
    instrument: dict,
    inference: dict,
    run_info: dict,
) -> pd.DataFrame:
    """inference's prediction-log row from the features up to the bar just completed."""
    return predict_next_close(checked_model, features, instrument, inference, run_info)
