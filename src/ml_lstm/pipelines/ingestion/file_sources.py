"""File sources: a user's CSV of minute bars (read by `csv_bars`), or a SQLite table of
ticks aggregated to minute bars, split by the instrument's sessions. Bad files fail with an
error naming the file, the row and the field.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ml_lstm.backfill import SessionResult, SessionStatus, SessionWindow

from .csv_bars import CsvFormat, csv_format, has_offsets, read_bars_csv

logger = logging.getLogger(__name__)


def file_path(source: str, ingestion: dict, instrument: dict) -> Path:
    """The file of a `csv` or `sqlite` source: runtime/ingestion parameter, else instrument's."""
    key = f"{source}_path"
    value = ingestion.get(key) or instrument.get(key)
    if not value:
        raise ValueError(
            f"ingestion.source={source} needs a file: pass --params ingestion.{key}=PATH or set "
            f"{key} in the instrument's parameters."
        )
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key} {str(path)!r} does not exist or is not a file.")
    return path


def read_ticks_sqlite(path: str | Path, settings: dict) -> pd.DataFrame:
    """1-minute bars aggregated from a SQLite tick table (timestamp, price[, volume])."""
    path = Path(path)
    table = settings.get("table", "ticks")
    time_column = settings.get("timestamp_column", "timestamp")
    price_column = settings.get("price_column", "price")
    volume_column = settings.get("volume_column", "volume")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
        if table not in tables:
            raise ValueError(f"{path}: no table {table!r} (tables: {', '.join(tables) or 'none'}).")
        present = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
        if volume_column and volume_column not in present:
            logger.info("%s: table %r has no %r column: volume 0", path, table, volume_column)
            volume_column = None
        wanted = [time_column, price_column] + ([volume_column] if volume_column else [])
        missing = [column for column in wanted if column not in present]
        if missing:
            raise ValueError(
                f"{path}, table {table!r}: missing column(s) {missing}; it has {present}. Set "
                "ingestion.sqlite.timestamp_column / price_column / volume_column."
            )
        query = ", ".join(f'"{column}"' for column in wanted)
        ticks = pd.read_sql_query(
            f'SELECT {query} FROM "{table}" ORDER BY "{time_column}"', connection
        )
    if ticks.empty:
        raise ValueError(f"{path}, table {table!r}: no ticks.")
    stamps = _tick_times(path, ticks[time_column], settings.get("timezone", "UTC"))
    prices = pd.to_numeric(ticks[price_column], errors="coerce")
    if prices.isna().any():
        row = int(prices.isna().to_numpy().argmax())
        raise ValueError(
            f"{path}, table {table!r}, row {row + 1}: {price_column} is "
            f"{ticks[price_column].iloc[row]!r}, expected a number."
        )
    volume = pd.to_numeric(ticks[volume_column], errors="coerce").fillna(0) if volume_column else 0
    grouped = pd.DataFrame(
        {"minute": stamps.dt.floor("1min"), "price": prices, "volume": volume}
    ).groupby("minute", sort=True)
    bars = grouped.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("volume", "sum"),
    ).reset_index()
    return bars.rename(columns={"minute": "timestamp"})


def _tick_times(path: Path, values: pd.Series, zone: str) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        unit = "ms" if numeric.abs().max() > 1e11 else "s"
        return pd.to_datetime(numeric, unit=unit, utc=True)
    text = values.astype(str)
    stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=has_offsets(text))
    if stamps.isna().any():
        row = int(stamps.isna().to_numpy().argmax())
        raise ValueError(
            f"{path}, tick row {row + 1}: timestamp {text.iloc[row]!r} is not ISO-8601."
        )
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize(zone)
    return stamps.dt.tz_convert("UTC")


def split_by_session(
    bars: pd.DataFrame, instrument: dict, source: object
) -> Mapping[str, pd.DataFrame]:
    """Bars grouped by the instrument's sessions (YYYY-MM-DD); bars outside sessions dropped."""
    if bars.empty:
        return {}
    from ml_lstm.calendars import instrument_sessions, utc_nanoseconds

    times_ns = utc_nanoseconds(bars["timestamp"])
    first, last = pd.to_datetime([times_ns.min(), times_ns.max()], utc=True)
    sessions = instrument_sessions(
        instrument, first - pd.Timedelta(days=2), last + pd.Timedelta(days=2)
    )
    opens, closes = utc_nanoseconds(sessions["open"]), utc_nanoseconds(sessions["close"])
    labels = sessions.index.strftime("%Y-%m-%d").to_numpy()
    in_order = (np.diff(times_ns) >= 0).all() and (opens[1:] >= closes[:-1]).all()
    if not in_order:  # bars (or sessions) out of time order: place every bar
        return _grouped_by_session(bars, sessions, labels, instrument, source)
    # Bars in time order: each session's bars are one run of rows, found by two searches.
    starts = np.searchsorted(times_ns, opens, side="left")
    ends = np.searchsorted(times_ns, closes, side="left")
    if (ends - starts).sum() < len(bars):
        _warn_outside(bars, sessions, instrument, source)
    return SessionRuns(bars, labels, starts, ends)


def _grouped_by_session(
    bars: pd.DataFrame, sessions: pd.DataFrame, labels: np.ndarray, instrument: dict, source
) -> dict:
    from ml_lstm.calendars import session_of

    position = session_of(bars["timestamp"], sessions)
    outside = position < 0
    if outside.any():
        _warn_outside(bars, sessions, instrument, source)
        bars, position = bars.loc[~outside], position[~outside]
    return {
        label: group.reset_index(drop=True)
        for label, group in bars.groupby(labels[position], sort=True)
    }


def _warn_outside(bars: pd.DataFrame, sessions: pd.DataFrame, instrument: dict, source) -> None:
    from ml_lstm.calendars import session_of

    outside = session_of(bars["timestamp"], sessions) < 0
    logger.warning(
        "%s: %d of %d bars fall outside the %s sessions and are not imported (the first "
        "at %s); if that is unexpected, check the file's time zone (ingestion.csv.timezone)",
        source,
        int(outside.sum()),
        len(bars),
        instrument["calendar"],
        bars["timestamp"][outside].iloc[0].isoformat(),
    )


class SessionRuns(Mapping[str, pd.DataFrame]):
    """Bars in time order by session: each session's run of rows [start, end), cut when it
    is asked for (a slice, no copy). A run imports only the sessions it plans (all of a
    new file, one or two of a file already stored), so the thousands of frames of a long
    file are made only when they are used."""

    def __init__(
        self, bars: pd.DataFrame, labels: np.ndarray, starts: np.ndarray, ends: np.ndarray
    ) -> None:
        held = ends > starts
        self._bars = bars
        runs = zip(starts[held].tolist(), ends[held].tolist(), strict=True)
        self._runs = dict(zip(labels[held].tolist(), runs, strict=True))

    def __getitem__(self, label: str) -> pd.DataFrame:
        start, end = self._runs[label]
        frame = self._bars.iloc[start:end]
        frame.index = pd.RangeIndex(end - start)
        return frame

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def __len__(self) -> int:
        return len(self._runs)


def read_csv_sessions(
    path: str | Path, fmt: CsvFormat, instrument: dict
) -> Mapping[str, pd.DataFrame]:
    """A CSV file's bars as {session: bars}.

    The instrument's calendar (a few tenths of a second to import and build, once per
    process) is built in a thread while the file is read: pyarrow's reader leaves the
    interpreter free.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="calendar") as pool:
        calendar = pool.submit(_build_calendar, instrument["calendar"])
        bars = read_bars_csv(path, fmt)
        calendar.result()
    return split_by_session(bars, instrument, path)


def _build_calendar(name: str) -> None:
    # Imported here, not at the top of this module: importing exchange_calendars takes
    # another 0.1 s, which this thread spends beside the read.
    from ml_lstm.calendars import get_calendar

    get_calendar(name)


def read_file_sessions(
    source: str, ingestion: dict, instrument: dict
) -> Mapping[str, pd.DataFrame]:
    """All sessions of the configured file, as {session: bars}."""
    path = file_path(source, ingestion, instrument)
    if source == "csv":
        return read_csv_sessions(path, csv_format(ingestion, instrument), instrument)
    bars = read_ticks_sqlite(path, ingestion.get("sqlite") or {})
    return split_by_session(bars, instrument, path)


def file_sessions(
    windows: list[SessionWindow], instrument: dict, ingestion: dict, batch_size: int
) -> Iterator[list[SessionResult]]:
    """The requested sessions that the file holds, in batches."""
    source = ingestion["source"]
    sessions = read_file_sessions(source, ingestion, instrument)
    start, end = ingestion["start_date"], ingestion.get("end_date") or "9999-12-31"
    if sessions and not any(start <= session <= end for session in sessions):
        raise ValueError(
            f"{file_path(source, ingestion, instrument)} holds sessions {min(sessions)}.."
            f"{max(sessions)}, none in the backfill window {start}..{end}: pass "
            "--params ingestion.start_date=...,ingestion.end_date=... to import them."
        )
    found = [window.session for window in windows if window.session in sessions]
    for first in range(0, len(found), batch_size):
        yield [
            SessionResult(session, SessionStatus.COMPLETE, sessions[session], attempts=1)
            for session in found[first : first + batch_size]
        ]
