"""CSV text of plain tables, written as pandas' `to_csv` writes them, several times faster.

`to_csv` formats datetimes with a per-value `strftime` when given a `date_format`, floats
with numpy's string conversion, and writes rows through the csv module: on the feature
table of ten years of hourly bars that is most of a second. Here each column becomes a list
of strings once (floats by `repr`, which prints every float64 as numpy's conversion does),
and the rows are joined. Only tables where the result is certain to be the same take this
path: numeric, boolean, text without delimiters or quotes, and UTC datetimes on whole
seconds with the one date format the catalog uses; anything else is left to pandas.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

# The catalog's date format for tz-aware UTC columns (conf/base/catalog_*.yml).
UTC_SECONDS_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# Characters that make the csv module quote a field (QUOTE_MINIMAL).
_NEEDS_QUOTING = re.compile(r'[,"\r\n]')
_SECOND_NS = 1_000_000_000


def csv_text(data: pd.DataFrame, save_args: dict) -> str | None:
    """`data.to_csv(**save_args)`, or None where this module cannot promise the same text
    (the caller then uses pandas)."""
    if set(save_args) - {"index", "date_format"} or save_args.get("index", True):
        return None
    columns = [str(name) for name in data.columns]
    if len(data) == 0 or len(columns) < 2 or len(set(columns)) < len(columns):
        return None
    if any(not name or _NEEDS_QUOTING.search(name) for name in columns):
        return None
    fields = []
    for _, column in data.items():
        strings = _column_strings(column, save_args.get("date_format"))
        if strings is None:
            return None
        fields.append(strings)
    newline = os.linesep
    rows = map(",".join, zip(*fields, strict=True))
    return ",".join(columns) + newline + newline.join(rows) + newline


def _column_strings(column: pd.Series, date_format: str | None) -> list[str] | None:
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize == 8:
        values = column.to_numpy()
        strings = list(map(repr, values.tolist()))
        for row in np.flatnonzero(np.isnan(values)):
            strings[row] = ""
        return strings
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return list(map(str, column.to_numpy().tolist()))
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _utc_seconds(column, date_format)
    if isinstance(dtype, pd.StringDtype) and column.notna().all():
        strings = column.tolist()
        if _NEEDS_QUOTING.search("".join(strings)) or "" in strings:
            return None
        return strings
    return None


def _utc_seconds(column: pd.Series, date_format: str | None) -> list[str] | None:
    """UTC times on whole seconds in UTC_SECONDS_FORMAT (2024-01-02T14:30:00+0000)."""
    if date_format != UTC_SECONDS_FORMAT or str(column.dt.tz) != "UTC" or column.isna().any():
        return None
    nanoseconds = column.array.as_unit("ns").asi8
    if (nanoseconds % _SECOND_NS).any():
        return None
    seconds = np.datetime_as_string((nanoseconds // _SECOND_NS).astype("datetime64[s]"))
    return [text + "+0000" for text in seconds.tolist()]
