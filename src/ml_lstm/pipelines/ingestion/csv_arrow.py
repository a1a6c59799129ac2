"""The fast reader of well-formed CSV files of bars: pyarrow's multithreaded CSV reader.

It reads only files it can read exactly as `csv_bars`' checking reader does: a header
naming the format's columns, ISO-8601 times that all carry a zone (Z or an offset), and a
number in every price and volume field, with no duplicate times. Anything else (no header,
other time formats, naive times, blank or unreadable fields, duplicates, compression) is
left to the checking reader, which names the file, the line and the field of a problem:
pyarrow's own errors name neither the line an editor shows nor how to recover.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

if TYPE_CHECKING:
    from .csv_bars import CsvFormat

FIELDS = ["timestamp", "open", "high", "low", "close", "volume"]
NUMBERS = FIELDS[1:]


def read_well_formed(path: Path, fmt: CsvFormat) -> pd.DataFrame | None:
    """Bars as `read_bars_csv` returns them (UTC bar starts, OHLCV as float64, sorted), or
    None when the file needs the checking reader."""
    sources = _source_names(fmt)
    if sources is None:
        return None
    table = _read_table(path, fmt.delimiter, sources)
    if table is None or table.num_rows == 0 or any(column.null_count for column in table.columns):
        return None
    # pyarrow fills pandas' blocks in its own threads, in one call (a column at a time would
    # convert each MiB block of the read separately, with the interpreter held between).
    bars = table.rename_columns(FIELDS).to_pandas()
    if bars[NUMBERS].isna().to_numpy().any():
        return None  # "NaN" in a field: the checking reader names its line
    # The zone as pandas names UTC (pyarrow's is zoneinfo's UTC): the same frames either way.
    bars["timestamp"] = bars["timestamp"].dt.tz_convert("UTC")
    if fmt.stamps == "end":
        bars["timestamp"] -= pd.Timedelta(minutes=1)
    stamps_ns = bars["timestamp"].to_numpy("datetime64[ns]").view("int64")
    if not (np.diff(stamps_ns) > 0).all():
        order = np.argsort(stamps_ns, kind="stable")
        if not (np.diff(stamps_ns[order]) > 0).all():
            return None  # duplicate times: the checking reader warns with their lines
        bars = bars.iloc[order].reset_index(drop=True)
    return bars


def _source_names(fmt: CsvFormat) -> list[str] | None:
    """The file's header names of the six fields, if this reader can read the format."""
    if not fmt.header or fmt.timestamp_format != "ISO8601" or set(fmt.columns) != set(FIELDS):
        return None
    sources = [fmt.columns[name] for name in FIELDS]
    if not all(isinstance(source, str) for source in sources) or len(set(sources)) < 6:
        return None
    return sources


def _read_table(path: Path, delimiter: str, sources: list[str]) -> pa.Table | None:
    # Times as tz-aware UTC: pyarrow refuses a time without a zone for them (the checking
    # reader then asks for ingestion.csv.timezone); no text counts as missing, so a blank
    # field is a conversion error too, not a null.
    convert = pa_csv.ConvertOptions(
        include_columns=sources,
        column_types={
            sources[0]: pa.timestamp("ns", tz="UTC"),
            **dict.fromkeys(sources[1:], pa.float64()),
        },
        null_values=[],
        strings_can_be_null=False,
    )
    try:
        return pa_csv.read_csv(
            path, parse_options=pa_csv.ParseOptions(delimiter=delimiter), convert_options=convert
        )
    except (pa.ArrowException, UnicodeDecodeError):
        return None
