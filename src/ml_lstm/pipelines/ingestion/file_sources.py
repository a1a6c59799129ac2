"""File sources: a user's CSV of minute bars, or a SQLite table of ticks, split by session.

CSV formats are described by `CsvFormat`; presets cover MetaTrader 4 exports
(`YYYY.MM.DD,HH:MM,o,h,l,c,v`, no header), NinjaTrader (`YYYYMMDD HHMMSS;o;h;l;c;v`, no
header, stamped at the bar's end), yfinance downloads (`Datetime,Open,...` or yfinance's
column order, offsets in the time stamps) and the plain raw layout
(`timestamp,open,high,low,close,volume`). Any piece of a preset can be overridden from
`ingestion.csv`. Bad files fail with an error naming the file, the row and the field.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ml_lstm.backfill import SessionResult, SessionStatus, SessionWindow
from ml_lstm.calendars import instrument_sessions, session_of

logger = logging.getLogger(__name__)

PRICES = ["open", "high", "low", "close"]
BAR_COLUMNS = ["timestamp", *PRICES, "volume"]


@dataclass(frozen=True)
class CsvFormat:
    """How to read a CSV of bars. `columns` maps our names to the file's (names or 0-based
    positions); a `date` plus `time` pair may stand in for `timestamp`."""

    columns: dict
    delimiter: str = ","
    header: bool = True
    timestamp_format: str = "ISO8601"
    # Zone of times written without one. No default: a wrong guess shifts every bar.
    timezone: str | None = None
    stamps: str = "start"  # start | end of the bar

    def with_overrides(self, overrides: dict | None) -> CsvFormat:
        changes = {key: value for key, value in (overrides or {}).items() if value is not None}
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown ingestion.csv key(s) {sorted(unknown)}: expected some of "
                f"{sorted(self.__dataclass_fields__)}."
            )
        fmt = replace(self, **changes)
        if fmt.stamps not in ("start", "end"):
            raise ValueError(f"ingestion.csv.stamps must be 'start' or 'end', not {fmt.stamps!r}.")
        return fmt


_POSITIONS = dict(zip([*PRICES, "volume"], range(1, 6), strict=True))
TIME_KEYS = ("timestamp", "date", "time")

PRESETS = {
    "plain": CsvFormat(columns={name: name for name in BAR_COLUMNS}),
    "mt4": CsvFormat(
        columns={"date": 0, "time": 1, **{k: v + 1 for k, v in _POSITIONS.items()}},
        header=False,
        timestamp_format="%Y.%m.%d %H:%M",
    ),
    "ninjatrader": CsvFormat(
        columns={"timestamp": 0, **_POSITIONS},
        delimiter=";",
        header=False,
        timestamp_format="%Y%m%d %H%M%S",
        stamps="end",
    ),
    "yfinance": CsvFormat(
        columns={"timestamp": "Datetime", **{name: name.title() for name in [*PRICES, "volume"]}}
    ),
}


def csv_format(ingestion: dict, instrument: dict) -> CsvFormat:
    """The preset named by `csv_format` (run or instrument), with `ingestion.csv` overrides."""
    name = instrument.get("csv_format") or ingestion.get("csv_format") or "plain"
    if name not in PRESETS:
        raise ValueError(
            f"Unknown csv_format {name!r}: expected one of {', '.join(sorted(PRESETS))} "
            "(or plain with ingestion.csv overrides)."
        )
    return PRESETS[name].with_overrides(ingestion.get("csv"))


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


def read_bars_csv(path: str | Path, fmt: CsvFormat) -> pd.DataFrame:
    """Minute bars of a CSV file: tz-aware UTC bar-start `timestamp` and OHLCV, sorted."""
    path = Path(path)
    if path.stat().st_size == 0 or not path.read_bytes()[:4096].strip():
        raise ValueError(f"{path}: the file is empty (expected minute bars).")
    # Time columns are read as text; prices and volume are left to the C parser, which
    # reads clean numbers (spaces around them included) in one pass. A column it cannot
    # make numeric (a typo, an empty field) takes the slower path that names the row.
    text_sources = {source for key, source in fmt.columns.items() if key in TIME_KEYS}
    frame = pd.read_csv(
        path,
        sep=fmt.delimiter,
        header=0 if fmt.header else None,
        dtype=dict.fromkeys(text_sources, str),
        keep_default_na=False,
        skipinitialspace=True,
    )
    frame = _drop_yfinance_ticker_rows(frame)
    first_data_line = 2 if fmt.header else 1
    columns = _select_columns(path, frame, fmt)
    if "timestamp" in columns:
        text = columns["timestamp"].astype(str)
    else:
        text = (
            columns["date"].astype(str).str.strip() + " " + columns["time"].astype(str).str.strip()
        )
    stamps = _parse_times(path, text, fmt, first_data_line)
    bars = pd.DataFrame({"timestamp": stamps})
    for name in [*PRICES, "volume"]:
        if name not in columns:
            bars[name] = 0
            continue
        column = columns[name]
        if pd.api.types.is_numeric_dtype(column):
            values, blank = column.astype("float64"), None
        else:
            stripped = column.astype(str).str.strip()
            values, blank = pd.to_numeric(stripped, errors="coerce"), stripped == ""
        bad = values.isna() if name in PRICES or blank is None else values.isna() & ~blank
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ValueError(
                f"{path}, row {row + first_data_line}: field {name!r} is "
                f"{column.iloc[row]!r}, expected a number."
            )
        bars[name] = values.fillna(0) if name == "volume" else values
    if fmt.stamps == "end":
        bars["timestamp"] -= pd.Timedelta(minutes=1)
    return _sorted_unique(bars, path)


def _drop_yfinance_ticker_rows(frame: pd.DataFrame) -> pd.DataFrame:
    # yfinance >= 0.2.51 writes a two-level header: "Price,Close,...", "Ticker,NVDA,...",
    # then "Datetime,,,...". Fold it into one header row.
    if len(frame.columns) and frame.columns[0] == "Price" and len(frame):
        labels = frame.iloc[:, 0]
        frame = frame[~labels.isin(["Ticker", "Datetime", "Date"])]
        return frame.rename(columns={"Price": "Datetime"}).reset_index(drop=True)
    return frame


def _select_columns(path: Path, frame: pd.DataFrame, fmt: CsvFormat) -> dict[str, pd.Series]:
    wanted = dict(fmt.columns)
    if len(frame.columns) == 1 and len(wanted) > 1:
        first = str(frame.columns[0]) if fmt.header else str(frame.iloc[0, 0])
        guess = max((",", ";", "\t", "|"), key=first.count)
        hint = f" it looks like {guess!r}" if first.count(guess) else ""
        raise ValueError(
            f"{path}: found a single column with delimiter {fmt.delimiter!r} where "
            f"{len(wanted)} were expected ({', '.join(wanted)});{hint} — set "
            "ingestion.csv.delimiter or pick the right csv_format."
        )
    selected, missing = {}, []
    for name, source in wanted.items():
        if isinstance(source, int):
            if source >= len(frame.columns):
                missing.append(f"{name} (column {source + 1})")
                continue
            selected[name] = frame.iloc[:, source]
        elif source in frame.columns:
            selected[name] = frame[source]
        elif name != "volume":
            missing.append(f"{name} ({source!r})")
    if missing:
        found = ", ".join(map(str, frame.columns)) if fmt.header else f"{len(frame.columns)} fields"
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {found}. Set "
            "ingestion.csv.columns or pick the right csv_format."
        )
    if "timestamp" not in selected and not {"date", "time"} <= set(selected):
        raise ValueError(f"{path}: the format names neither `timestamp` nor `date` + `time`.")
    if not len(frame):
        raise ValueError(f"{path}: the file has a header but no rows.")
    return selected


def _parse_times(path: Path, text: pd.Series, fmt: CsvFormat, first_line: int) -> pd.Series:
    stamps = _to_datetime(text, fmt)
    if stamps.isna().any():  # stray spaces around some time stamps: strip and try again
        text = text.str.strip()
        stamps = _to_datetime(text, fmt)
    bad = stamps.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ValueError(
            f"{path}, row {row + first_line}: timestamp {text.iloc[row]!r} does not match "
            f"the format {fmt.timestamp_format!r} (set ingestion.csv.timestamp_format)."
        )
    if stamps.dt.tz is None:
        if fmt.timezone is None:
            raise ValueError(
                f"{path}: the times have no zone (the first is {text.iloc[0]!r}) and none is "
                "configured: set ingestion.csv.timezone to the zone they are written in "
                "(e.g. America/New_York, or UTC)."
            )
        try:
            stamps = stamps.dt.tz_localize(fmt.timezone, ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"{path}: naive times cannot be placed in zone {fmt.timezone!r} ({error}); set "
                "ingestion.csv.timezone."
            ) from None
    return stamps.dt.tz_convert("UTC").dt.as_unit("ns")


def _to_datetime(text: pd.Series, fmt: CsvFormat) -> pd.Series:
    if fmt.timestamp_format == "ISO8601":
        return pd.to_datetime(text, format="ISO8601", errors="coerce", utc=_has_offsets(text))
    return pd.to_datetime(text, format=fmt.timestamp_format, errors="coerce")


def _has_offsets(text: pd.Series) -> bool:
    sample = text.iloc[0]
    return sample.endswith("Z") or "+" in sample[10:] or sample[10:].count("-") > 0


def _sorted_unique(bars: pd.DataFrame, source: object) -> pd.DataFrame:
    bars = bars.sort_values("timestamp", kind="stable")
    unique = bars.drop_duplicates("timestamp", keep="last")
    if len(unique) < len(bars):
        logger.warning(
            "%s: %d duplicate time stamps, kept the last of each", source, len(bars) - len(unique)
        )
    return unique.reset_index(drop=True)


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
    stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=_has_offsets(text))
    if stamps.isna().any():
        row = int(stamps.isna().to_numpy().argmax())
        raise ValueError(
            f"{path}, tick row {row + 1}: timestamp {text.iloc[row]!r} is not ISO-8601."
        )
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize(zone)
    return stamps.dt.tz_convert("UTC")


def split_by_session(bars: pd.DataFrame, instrument: dict, source: object) -> dict:
    """Bars grouped by the instrument's sessions (YYYY-MM-DD); bars outside sessions dropped."""
    if bars.empty:
        return {}
    first, last = bars["timestamp"].iloc[[0, -1]]
    sessions = instrument_sessions(
        instrument, first - pd.Timedelta(days=2), last + pd.Timedelta(days=2)
    )
    position = session_of(bars["timestamp"], sessions)
    outside = position < 0
    if outside.any():
        logger.warning(
            "%s: %d of %d bars fall outside the %s sessions and are not imported (the first "
            "at %s); if that is unexpected, check the file's time zone (ingestion.csv.timezone)",
            source,
            int(outside.sum()),
            len(bars),
            instrument["calendar"],
            bars["timestamp"][outside].iloc[0].isoformat(),
        )
    labels = sessions.index.strftime("%Y-%m-%d").to_numpy()[position[~outside]]
    inside = bars.loc[~outside]
    return {
        label: group.reset_index(drop=True) for label, group in inside.groupby(labels, sort=True)
    }


def read_file_sessions(source: str, ingestion: dict, instrument: dict) -> dict:
    """All sessions of the configured file, as {session: bars}."""
    path = file_path(source, ingestion, instrument)
    if source == "csv":
        bars = read_bars_csv(path, csv_format(ingestion, instrument))
    else:
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
