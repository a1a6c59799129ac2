"""Row checks of raw minute bars: which rows are invalid, and why.

Every row gets at most one reason, the first check it fails in the order of `REASONS`.
Volume rule: a missing volume column (quote data such as FX files) or IB's -1 "no volume"
marker (MIDPOINT/BID/ASK bars, e.g. spot XAGUSD) means the source does not report volume;
such rows are kept with volume 0 and counted as `volume_not_reported`. Other negative
volumes and empty volumes are invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd

PRICE_COLUMNS = ["open", "high", "low", "close"]
REQUIRED_COLUMNS = ["timestamp", *PRICE_COLUMNS]
MINUTE_NS = 60_000_000_000
NO_VOLUME_MARKER = -1

# Reason code -> text written to the rejected dataset; code 0 means valid.
REASONS = {
    1: "timestamp is not an ISO-8601 date-time",
    2: "timestamp has no time zone (expected a Z or +HH:MM suffix)",
    3: "timestamp is not on a whole minute",
    4: "missing price",
    5: "price is not a number",
    6: "price is zero or negative",
    7: "high below max(open, close) or below low",
    8: "low above min(open, close)",
    9: "volume is missing or not a number",
    10: "volume is negative",
    11: "duplicate timestamp (a later row with the same time is kept)",
}
DUPLICATE = 11


@dataclass
class CheckedBars:
    """Raw bars with a reason code per row and the parsed values."""

    reason: np.ndarray  # int8, 0 where the row is valid
    timestamp_ns: np.ndarray  # int64 UTC nanoseconds, meaningless where reason in (1, 2)
    prices: dict[str, np.ndarray]
    volume: np.ndarray
    volume_not_reported: int
    zero_volume: int


def check_rows(bars: pd.DataFrame) -> CheckedBars:
    """Reason codes of every row of `bars` (all rows, in input order)."""
    n = len(bars)
    reason = np.zeros(n, dtype=np.int8)

    def flag(mask: np.ndarray, code: int) -> None:
        reason[(reason == 0) & mask] = code

    timestamp_ns, unparsable, naive = _parse_timestamps(bars["timestamp"])
    flag(unparsable, 1)
    flag(naive, 2)
    flag(timestamp_ns % MINUTE_NS != 0, 3)

    prices = {}
    for column in PRICE_COLUMNS:
        values, missing, not_numeric = _numbers(bars[column])
        flag(missing, 4)
        flag(not_numeric, 5)
        prices[column] = values
    open_, high, low, close = (prices[c] for c in PRICE_COLUMNS)
    with np.errstate(invalid="ignore"):
        flag((open_ <= 0) | (high <= 0) | (low <= 0) | (close <= 0), 6)
        flag((high < np.maximum(open_, close)) | (high < low), 7)
        flag(low > np.minimum(open_, close), 8)

    if "volume" in bars.columns:
        volume, missing, not_numeric = _numbers(bars["volume"])
        flag(missing | not_numeric, 9)
        not_reported = volume == NO_VOLUME_MARKER
        with np.errstate(invalid="ignore"):
            flag((volume < 0) & ~not_reported, 10)
        volume = np.where(not_reported, 0.0, volume)
        volume_not_reported = int((not_reported & (reason == 0)).sum())
    else:
        volume = np.zeros(n)
        volume_not_reported = n

    reason[_earlier_duplicates(timestamp_ns, reason == 0)] = DUPLICATE
    zero_volume = int(((volume == 0) & (reason == 0)).sum()) - volume_not_reported
    return CheckedBars(reason, timestamp_ns, prices, volume, volume_not_reported, zero_volume)


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
