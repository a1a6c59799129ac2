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
from itertools import repeat

import numpy as np
import pandas as pd

from ml_lstm.calendars import MINUTE_NS, from_utc_nanoseconds

PRICE_COLUMNS = ["open", "high", "low", "close"]
REQUIRED_COLUMNS = ["timestamp", *PRICE_COLUMNS]
MINUTE_COLUMNS = [*REQUIRED_COLUMNS, "volume"]
NO_VOLUME_MARKER = -1


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


def valid_rows(checked: CheckedBars) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The valid rows sorted by time (UTC timestamps, float prices and volume), their
    positions in the raw table, and how many of them were out of order."""
    keep = np.flatnonzero(checked.reason == 0)
    timestamps = checked.timestamp_ns[keep]
    unsorted_rows = int((np.diff(timestamps) < 0).sum())
    if unsorted_rows:
        keep = keep[np.argsort(timestamps, kind="stable")]
        timestamps = checked.timestamp_ns[keep]
    # Nothing to select when every row is valid and in order: the arrays are used as they are.
    everything = len(keep) == len(checked.reason) and not unsorted_rows
    valid = pd.DataFrame(
        {
            "timestamp": from_utc_nanoseconds(timestamps),
            **{
                column: values if everything else values[keep]
                for column, values in [*checked.prices.items(), ("volume", checked.volume)]
            },
        },
        copy=False,
    )
    return valid, keep, unsorted_rows


def rejected_rows(bars: pd.DataFrame, checked: CheckedBars) -> pd.DataFrame:
    """The invalid raw rows as they were read, with their file, line and reason."""
    rows = np.flatnonzero(checked.reason > 0)
    rejected = bars.iloc[rows].astype({"source_file": "str"})
    rejected = rejected.assign(reason=[Reason(code).text for code in checked.reason[rows]])
    columns = [column for column in MINUTE_COLUMNS if column in bars.columns]
    return rejected[["source_file", "source_line", "reason", *columns]].reset_index(drop=True)


def _earlier_duplicates(timestamp_ns: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Positions of valid rows whose timestamp occurs again in a later valid row."""
    positions = np.flatnonzero(valid)
    stamps = timestamp_ns[positions]
    if (np.diff(stamps) < 0).any():
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


def _numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 values, missing mask and not-a-number mask of a numeric column."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan, copy=False)
        missing = np.isnan(values)
        return values, missing, np.isinf(values)
    missing = column.isna().to_numpy()
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    not_numeric = (np.isnan(values) & ~missing) | np.isinf(values)
    return values, missing, not_numeric
