"""Row checks of raw minute bars: which rows are invalid, and why.

Shared by ingestion (which counts and reports bad rows as it stores them) and
data_processing (which rejects them), so both judge a row by the same rules.

Every row gets at most one reason, the first check it fails in the order of `Reason`.
Volume rule: a missing volume column (quote data such as FX files) or IB's -1 "no volume"
marker (MIDPOINT/BID/ASK bars, e.g. spot XAGUSD) means the source does not report volume;
such rows are kept with volume 0 and counted as `volume_not_reported`. Other negative
volumes and empty volumes are invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from itertools import repeat

import numpy as np
import pandas as pd
import pyarrow as pa

from ml_lstm.calendars import MINUTE_NS, from_utc_nanoseconds

PRICE_COLUMNS = ["open", "high", "low", "close"]
REQUIRED_COLUMNS = ["timestamp", *PRICE_COLUMNS]
MINUTE_COLUMNS = [*REQUIRED_COLUMNS, "volume"]
NO_VOLUME_MARKER = -1
# The columns of the valid bars (MINUTE_COLUMNS), as the index every such table shares.
VALID_COLUMNS = pd.Index(MINUTE_COLUMNS)


class Reason(IntEnum):
    """Why a raw row is rejected: its code (stored per row, 0 meaning valid), the key that
    names it in the validation report, and the text written to the rejected dataset."""

    key: str
    text: str

    def __new__(cls, code: int, key: str, text: str) -> Reason:
        member = int.__new__(cls, code)
        member._value_ = code
        member.key = key
        member.text = text
        return member

    BAD_TIMESTAMP = 1, "bad_timestamp", "timestamp is not an ISO-8601 date-time"
    TIMESTAMP_WITHOUT_TIME_ZONE = (
        2,
        "timestamp_without_time_zone",
        "timestamp has no time zone (expected a Z or +HH:MM suffix)",
    )
    TIMESTAMP_NOT_WHOLE_MINUTE = (
        3,
        "timestamp_not_whole_minute",
        "timestamp is not on a whole minute",
    )
    MISSING_PRICE = 4, "missing_price", "missing price"
    PRICE_NOT_A_NUMBER = 5, "price_not_a_number", "price is not a number"
    NON_POSITIVE_PRICE = 6, "non_positive_price", "price is zero or negative"
    HIGH_INCONSISTENT = 7, "high_inconsistent", "high below max(open, close) or below low"
    LOW_INCONSISTENT = 8, "low_inconsistent", "low above min(open, close)"
    VOLUME_MISSING = 9, "volume_missing", "volume is missing or not a number"
    NEGATIVE_VOLUME = 10, "negative_volume", "volume is negative"
    DUPLICATE_TIMESTAMP = (
        11,
        "duplicate_timestamp",
        "duplicate timestamp (a later row with the same time is kept)",
    )


@dataclass
class CheckedBars:
    """Raw bars with a reason code per row and the parsed values."""

    reason: np.ndarray  # int8, 0 where the row is valid
    timestamp_ns: np.ndarray  # int64 UTC nanoseconds, meaningless where the time is bad or naive
    prices: dict[str, np.ndarray]
    volume: np.ndarray
    volume_not_reported: int
    zero_volume: int


def check_rows(bars: pd.DataFrame) -> CheckedBars:
    """Reason codes of every row of `bars` (all rows, in input order)."""
    n = len(bars)
    reason = np.zeros(n, dtype=np.int8)

    def flag(mask: np.ndarray, code: Reason) -> None:
        # Most checks find nothing: one pass over the mask instead of three.
        if mask.any():
            reason[(reason == 0) & mask] = code

    timestamp_ns, unparsable, naive = _parse_timestamps(bars["timestamp"])
    flag(unparsable, Reason.BAD_TIMESTAMP)
    flag(naive, Reason.TIMESTAMP_WITHOUT_TIME_ZONE)
    flag(timestamp_ns % MINUTE_NS != 0, Reason.TIMESTAMP_NOT_WHOLE_MINUTE)

    prices = {}
    for column in PRICE_COLUMNS:
        values, missing, not_numeric = _numbers(bars[column])
        flag(missing, Reason.MISSING_PRICE)
        flag(not_numeric, Reason.PRICE_NOT_A_NUMBER)
        prices[column] = values
    open_, high, low, close = (prices[c] for c in PRICE_COLUMNS)
    with np.errstate(invalid="ignore"):
        flag((open_ <= 0) | (high <= 0) | (low <= 0) | (close <= 0), Reason.NON_POSITIVE_PRICE)
        flag((high < np.maximum(open_, close)) | (high < low), Reason.HIGH_INCONSISTENT)
        flag(low > np.minimum(open_, close), Reason.LOW_INCONSISTENT)

    if "volume" in bars.columns:
        volume, missing, not_numeric = _numbers(bars["volume"])
        flag(missing | not_numeric, Reason.VOLUME_MISSING)
        not_reported = volume == NO_VOLUME_MARKER
        with np.errstate(invalid="ignore"):
            flag((volume < 0) & ~not_reported, Reason.NEGATIVE_VOLUME)
        volume = np.where(not_reported, 0.0, volume)
        volume_not_reported = int((not_reported & (reason == 0)).sum())
    else:
        volume = np.zeros(n)
        volume_not_reported = n

    reason[_earlier_duplicates(timestamp_ns, reason == 0)] = Reason.DUPLICATE_TIMESTAMP
    zero_volume = int(((volume == 0) & (reason == 0)).sum()) - volume_not_reported
    return CheckedBars(reason, timestamp_ns, prices, volume, volume_not_reported, zero_volume)


def valid_rows(checked: CheckedBars) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, int]:
    """The valid rows sorted by time (UTC timestamps, float prices and volume), their times
    in UTC nanoseconds, their positions in the raw table, and how many of them were out of
    order."""
    keep = np.flatnonzero(checked.reason == 0)
    # Every row valid (the usual case): the times as they are, not a copy.
    timestamps = (
        checked.timestamp_ns if len(keep) == len(checked.reason) else checked.timestamp_ns[keep]
    )
    unsorted_rows = int((timestamps[1:] < timestamps[:-1]).sum())
    if unsorted_rows:
        keep = keep[np.argsort(timestamps, kind="stable")]
        timestamps = checked.timestamp_ns[keep]
    # Nothing to select when every row is valid and in order: the arrays are used as they are.
    everything = len(keep) == len(checked.reason) and not unsorted_rows
    valid = pd.DataFrame(
        {
            "timestamp": from_utc_nanoseconds(timestamps).array,
            **{
                column: values if everything else values[keep]
                for column, values in [*checked.prices.items(), ("volume", checked.volume)]
            },
        },
        copy=False,
    )
    # The same labels as one shared index (immutable but for its name, which nothing
    # sets), whose lookup table is built once, not at each new frame's first lookup.
    valid.columns = VALID_COLUMNS
    return valid, timestamps, keep, unsorted_rows


def rejected_rows(bars: pd.DataFrame, checked: CheckedBars) -> pd.DataFrame:
    """The invalid raw rows as they were read, with their file, line and reason."""
    rows = np.flatnonzero(checked.reason > 0)
    columns = ["source_file", "source_line", *(c for c in MINUTE_COLUMNS if c in bars.columns)]
    if len(rows) == 0:
        # The usual case, and at every bar of a live session: the empty table for these
        # column types is built once.
        dtypes = dict(zip(bars.columns, bars.dtypes, strict=True))
        signature = tuple((name, dtypes[name]) for name in columns)
        return _no_rejected_rows(signature).copy(deep=False)
    return _rejected_table(bars[columns], rows, checked.reason[rows])


@lru_cache(maxsize=32)
def _no_rejected_rows(signature: tuple) -> pd.DataFrame:
    empty = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in signature})
    return _rejected_table(empty, np.array([], dtype=np.int64), np.array([], dtype=np.int8))


def _rejected_table(bars: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    rejected = bars.iloc[rows].reset_index(drop=True)
    rejected["source_file"] = rejected["source_file"].astype("str")
    rejected.insert(2, "reason", [Reason(code).text for code in reasons])
    return rejected


def _earlier_duplicates(timestamp_ns: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Positions of valid rows whose timestamp occurs again in a later valid row."""
    positions = np.flatnonzero(valid)
    stamps = timestamp_ns if len(positions) == len(timestamp_ns) else timestamp_ns[positions]
    if (stamps[1:] < stamps[:-1]).any():
        # A stable sort keeps rows with equal times in input order, the last one last.
        order = np.argsort(stamps, kind="stable")
        positions, stamps = positions[order], stamps[order]
    return positions[:-1][stamps[1:] == stamps[:-1]]


def _parse_timestamps(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UTC nanoseconds, unparsable mask and no-time-zone mask of a timestamp column."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        values = column.dt.tz_convert("UTC").dt.tz_localize(None)
        unparsable = values.isna().to_numpy()
        naive = np.zeros(len(column), dtype=bool)
    elif pd.api.types.is_datetime64_dtype(column.dtype):
        values = column
        unparsable = column.isna().to_numpy()
        naive = ~unparsable
    else:
        nanoseconds, plain = zulu_nanoseconds(column)
        if plain.all():
            return nanoseconds, np.zeros(len(column), dtype=bool), np.zeros(len(column), dtype=bool)
        # Rows not in the plain form are parsed as any ISO-8601 text (each row on its own).
        others = np.flatnonzero(~plain)
        rest, unparsable, naive = _parse_text(column.iloc[others])
        nanoseconds[others] = rest
        return (
            nanoseconds,
            _scatter(unparsable, others, len(column)),
            _scatter(naive, others, len(column)),
        )
    nanoseconds = values.to_numpy(dtype="datetime64[ns]").view("int64").copy()
    nanoseconds[unparsable] = 0
    return nanoseconds, unparsable, naive


def _scatter(mask: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    full = np.zeros(size, dtype=bool)
    full[rows] = mask
    return full


def _parse_text(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_parse_timestamps` of ISO-8601 text in any of its forms."""
    text = column.astype("str")
    values = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    values = values.dt.tz_localize(None)
    unparsable = values.isna().to_numpy()
    strings = text.to_numpy(dtype=object, na_value="")
    zulu = np.fromiter(map(str.endswith, strings, repeat("Z")), bool, len(strings))
    naive = ~zulu & ~unparsable
    if naive.any():
        has_offset = text[naive].str.contains(r"[+-]\d\d:?\d\d$", regex=True)
        naive[np.flatnonzero(naive)[has_offset.to_numpy(dtype=bool, na_value=False)]] = False
    nanoseconds = values.to_numpy(dtype="datetime64[ns]").view("int64").copy()
    nanoseconds[unparsable] = 0
    return nanoseconds, unparsable, naive


# The form ingestion writes (2024-01-02T14:30:00Z): parsed from its bytes, without a text
# parser. Digits and separators at fixed places; anything else takes the general path.
ZULU_LENGTH = 20
_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_SEPARATOR_POSITIONS = [4, 7, 10, 13, 16, 19]
_SEPARATOR_BYTES = np.frombuffer(b"--T::Z", np.uint8)
# Rows parsed at a time: the temporaries stay small and in cache.
_CHUNK = 1 << 16


def zulu_nanoseconds(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """UTC nanoseconds of the rows of a text column written as YYYY-MM-DDTHH:MM:SSZ (a
    valid date and time, years 1900-2199), and which rows those are (0 elsewhere)."""
    n = len(column)
    nanoseconds = np.zeros(n, dtype=np.int64)
    plain = np.zeros(n, dtype=bool)
    text = _fixed_width_text(column)
    if text is None:
        return nanoseconds, plain
    rows, chars = text
    for start in range(0, len(chars), _CHUNK):
        stop = min(start + _CHUNK, len(chars))
        values, ok = _zulu_chunk(chars[start:stop])
        if rows is None:  # chars holds every row, in order
            nanoseconds[start:stop] = np.where(ok, values, 0)
            plain[start:stop] = ok
        else:
            part = rows[start:stop]
            nanoseconds[part[ok]] = values[ok]
            plain[part[ok]] = True
    return nanoseconds, plain


def _zulu_chunk(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds of (rows, ZULU_LENGTH) bytes, and which rows are valid times."""
    ok = (chars[:, _SEPARATOR_POSITIONS] == _SEPARATOR_BYTES).all(axis=1)
    digits = chars[:, _DIGITS] - np.uint8(ord("0"))  # not a digit: above 9 (uint8 wraps)
    ok &= (digits <= 9).all(axis=1)
    digits = digits.astype(np.int32)
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month, day, hour, minute, second = (
        digits[:, 4 + 2 * i] * 10 + digits[:, 5 + 2 * i] for i in range(5)
    )
    ok &= (year >= 1900) & (year < 2200) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= (hour < 24) & (minute < 60) & (second < 60)
    months = np.where(ok, (year - 1970) * 12 + month - 1, 0)
    month_start = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    month_end = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    ok &= day <= month_end - month_start
    seconds = (month_start + day - 1) * 86_400 + hour * 3600 + minute * 60 + second
    return seconds * 1_000_000_000, ok


def _fixed_width_text(column: pd.Series) -> tuple[np.ndarray | None, np.ndarray] | None:
    """The rows of a text column that are ZULU_LENGTH bytes long (None: all of them), and
    those bytes as a (rows, ZULU_LENGTH) uint8 matrix read from the Arrow buffers; None when
    the column is not Arrow-backed text."""
    if not (isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow"):
        return None
    array = column.array.__arrow_array__()
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if array.type == pa.large_string():
        offset_type = np.int64
    elif array.type == pa.string():
        offset_type = np.int32
    else:
        return None
    buffers = array.buffers()
    n = len(array)
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[array.offset : array.offset + n + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    if not array.null_count and (lengths == ZULU_LENGTH).all():
        # Every row is ZULU_LENGTH bytes, one after the other: a view of the buffer.
        return None, data[offsets[0] : offsets[-1]].reshape(n, ZULU_LENGTH)
    if array.null_count:
        lengths = np.where(np.asarray(array.is_null()), 0, lengths)
    rows = np.flatnonzero(lengths == ZULU_LENGTH)
    starts = offsets[:-1][rows].astype(np.int64)
    return rows, data[starts[:, None] + np.arange(ZULU_LENGTH)]


def _numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 values, missing mask and not-a-number mask of a numeric column."""
    dtype = column.dtype
    # numpy integers and floats (as read from files) are numeric without pandas' general
    # checks, which cost more than the rest of this on a session's few hundred rows.
    plain = isinstance(dtype, np.dtype) and dtype.kind in "iuf"
    if plain or (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
        values = column.to_numpy(dtype="float64", na_value=np.nan, copy=False)
        missing = np.isnan(values)
        return values, missing, np.isinf(values)
    missing = column.isna().to_numpy()
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    not_numeric = (np.isnan(values) & ~missing) | np.isinf(values)
    return values, missing, not_numeric
