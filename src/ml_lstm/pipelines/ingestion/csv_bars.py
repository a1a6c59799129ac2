"""A user's CSV file of minute bars, read into tz-aware UTC bar starts and OHLCV.

Formats are described by `CsvFormat`; presets cover MetaTrader 4 exports
(`YYYY.MM.DD,HH:MM,o,h,l,c,v`, no header), NinjaTrader (`YYYYMMDD HHMMSS;o;h;l;c;v`, no
header, stamped at the bar's end), yfinance downloads (`Datetime,Open,...` or yfinance's
column order, offsets in the time stamps) and the plain raw layout
(`timestamp,open,high,low,close,volume`). Any piece of a preset can be overridden from
`ingestion.csv`. Compressed files (gzip, bz2, xz, zip) are read as they are. Bad files fail
with an error naming the file, the line (as an editor numbers it) and the field.
Well-formed plain files are read by pyarrow (`csv_arrow`); the rest, and every file with a
problem, by the checking reader here.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from .csv_arrow import read_well_formed

logger = logging.getLogger(__name__)

PRICES = ["open", "high", "low", "close"]
BAR_COLUMNS = ["timestamp", *PRICES, "volume"]
TIME_KEYS = ("timestamp", "date", "time")
# Duplicate time stamps named in the warning; the rest are counted.
DUPLICATES_SHOWN = 3
HEAD_BYTES = 4096
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}


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


def read_bars_csv(path: str | Path, fmt: CsvFormat) -> pd.DataFrame:
    """Minute bars of a CSV file: tz-aware UTC bar-start `timestamp` and OHLCV, sorted."""
    path = Path(path)
    compression = _compression_of_text_file(path)
    if compression is None:
        bars = read_well_formed(path, fmt)
        if bars is not None:
            return bars
    frame = _read_table(path, fmt, compression)
    columns = _select_columns(path, frame, fmt)
    if "timestamp" in columns:
        text = columns["timestamp"].astype(str)
    else:
        text = (
            columns["date"].astype(str).str.strip() + " " + columns["time"].astype(str).str.strip()
        )
    bars = pd.DataFrame({"timestamp": _parse_times(path, text, fmt)})
    for name in [*PRICES, "volume"]:
        bars[name] = _numbers(path, columns, name) if name in columns else 0
    if fmt.stamps == "end":
        bars["timestamp"] -= pd.Timedelta(minutes=1)
    return _sorted_unique(bars, path)


def _compression_of_text_file(path: Path) -> str | None:
    """The file's compression (None for plain text), once its start is known to be text."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    compression = next(
        (name for magic, name in COMPRESSIONS.items() if head.startswith(magic)), None
    )
    if compression is not None:
        head = _decompressed_head(path, compression)
    if not head.strip():
        raise ValueError(f"{path}: the file is empty (expected minute bars).")
    problem = _not_text(head)
    if problem:
        inside = f" (inside its {compression} compression)" if compression else ""
        raise ValueError(
            f"{path}: this is not a CSV text file{inside}: {problem}. Export the bars as a "
            "UTF-8 (or ASCII) CSV file; gzip, bz2, xz and zip files of one are read as well."
        )
    return compression


def _decompressed_head(path: Path, compression: str) -> bytes:
    opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(compression)
    try:
        if opener is not None:
            with opener(path, "rb") as handle:
                return handle.read(HEAD_BYTES)
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            if len(names) != 1:
                raise ValueError(
                    f"{path}: a zip file of {len(names)} files; expected exactly one CSV file."
                )
            with archive.open(names[0]) as handle:
                return handle.read(HEAD_BYTES)
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path}: looks {compression}-compressed but cannot be decompressed ({error})."
        ) from None


def _not_text(head: bytes) -> str:
    """What is wrong with the start of a would-be CSV file ('' when it is UTF-8 text)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "it is UTF-16 text (it starts with a UTF-16 byte-order mark)"
    if b"\x00" in head:
        return f"it looks binary (it holds NUL bytes; it starts with {head[:8].hex(' ')})"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not just a character cut at the end of the sample
            byte = head[error.start : error.start + 1].hex()
            return (
                f"it is not UTF-8 (byte 0x{byte} at offset {error.start}); if it is Latin-1 or "
                "Windows-1252 text, save it as UTF-8"
            )
    return ""


def _read_table(path: Path, fmt: CsvFormat, compression: str | None) -> pd.DataFrame:
    """The file's rows, indexed by their line numbers; blank lines and yfinance's extra
    header rows are left out (their line numbers with them)."""
    # Time columns are read as text; prices and volume are left to the C parser, which
    # reads clean numbers (spaces around them included) in one pass. A column it cannot
    # make numeric (a typo, an empty field) takes the slower path that names the line.
    text_sources = {source for key, source in fmt.columns.items() if key in TIME_KEYS}
    options = {
        "sep": fmt.delimiter,
        "header": 0 if fmt.header else None,
        "keep_default_na": False,
        "skipinitialspace": True,
        "skip_blank_lines": False,
        "compression": compression,
    }
    try:
        # Not dtype=str up front: it triples the parse of a 1M-row file, and the parser
        # reads ISO, MT4 and NinjaTrader stamps as text anyway. A time column it made
        # numeric (a bare YYYYMMDD date, say) is read again, as text.
        frame = pd.read_csv(path, **options)
        numeric = [
            source
            for source in text_sources
            if source in frame.columns and not pd.api.types.is_string_dtype(frame[source])
        ]
        if numeric:
            as_text = pd.read_csv(
                path, usecols=numeric, dtype=dict.fromkeys(numeric, str), **options
            )
            frame[numeric] = as_text[numeric]
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text after its start ({error.reason} at byte {error.start} of "
            "a block); save it as UTF-8."
        ) from None
    frame.index = frame.index + (2 if fmt.header else 1)
    return _drop_yfinance_ticker_rows(_drop_blank_lines(frame))


def _drop_blank_lines(frame: pd.DataFrame) -> pd.DataFrame:
    if not len(frame.columns):
        return frame
    first = frame.iloc[:, 0]
    candidates = first.isna()
    if not pd.api.types.is_numeric_dtype(first.dtype):
        candidates |= first.astype(str) == ""
    if not candidates.any():
        return frame
    rows = frame[candidates]
    blank = rows.isna() | (rows.astype(str) == "")
    return frame.drop(index=rows.index[blank.all(axis=1)])


def _drop_yfinance_ticker_rows(frame: pd.DataFrame) -> pd.DataFrame:
    # yfinance >= 0.2.51 writes a two-level header: "Price,Close,...", "Ticker,NVDA,...",
    # then "Datetime,,,...". Fold it into one header row.
    if len(frame.columns) and frame.columns[0] == "Price" and len(frame):
        labels = frame.iloc[:, 0]
        frame = frame[~labels.isin(["Ticker", "Datetime", "Date"])]
        return frame.rename(columns={"Price": "Datetime"})
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


def _numbers(path: Path, columns: dict[str, pd.Series], name: str) -> pd.Series:
    """Column `name` as numbers; a blank volume is 0, anything else unreadable an error."""
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
            f"{path}, line {column.index[row]}: field {name!r} is {column.iloc[row]!r}, "
            "expected a number."
        )
    return values.fillna(0) if name == "volume" else values


def _parse_times(path: Path, text: pd.Series, fmt: CsvFormat) -> pd.Series:
    stamps = _to_datetime(text, fmt)
    if stamps.isna().any():  # stray spaces around some time stamps: strip and try again
        text = text.str.strip()
        stamps = _to_datetime(text, fmt)
    bad = stamps.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ValueError(
            f"{path}, line {text.index[row]}: timestamp {text.iloc[row]!r} does not match "
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
        return pd.to_datetime(text, format="ISO8601", errors="coerce", utc=has_offsets(text))
    return pd.to_datetime(text, format=fmt.timestamp_format, errors="coerce")


def has_offsets(text: pd.Series) -> bool:
    """Whether ISO-8601 times carry a zone (Z or an offset), judged by the first one."""
    sample = text.iloc[0]
    return sample.endswith("Z") or "+" in sample[10:] or sample[10:].count("-") > 0


def _sorted_unique(bars: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Bars sorted by time, the last of rows with the same time kept (and the others named
    by their line numbers in a warning)."""
    bars = bars.sort_values("timestamp", kind="stable")
    repeated = bars["timestamp"].duplicated(keep=False)
    if repeated.any():
        groups = bars.index[repeated].to_series().groupby(bars["timestamp"][repeated].to_numpy())
        shown = [
            f"{stamp.strftime('%Y-%m-%dT%H:%M:%SZ')} on lines {', '.join(map(str, lines))}"
            for stamp, lines in list(groups)[:DUPLICATES_SHOWN]
        ]
        logger.warning(
            "%s: %d duplicate time stamps, kept the last of each: %s%s",
            path,
            int(repeated.sum()) - len(groups),
            "; ".join(shown),
            f" (first {DUPLICATES_SHOWN} of {len(groups)})"
            if len(groups) > DUPLICATES_SHOWN
            else "",
        )
        bars = bars.drop_duplicates("timestamp", keep="last")
    return bars.reset_index(drop=True)
