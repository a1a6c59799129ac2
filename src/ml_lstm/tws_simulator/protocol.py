"""The TWS API wire protocol, as much of it as ib_insync needs for historical bars.

Every message is a 4-byte big-endian length followed by NUL-terminated text fields. The
client opens with `API\\0` and its version range (the one message whose text is not
NUL-terminated); the server answers its version and connection time.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pandas as pd

from ml_lstm.calendars import utc_nanoseconds

SERVER_VERSION = 176
MIN_CLIENT_VERSION = 157
DEFAULT_ACCOUNT = "DU0000001"

# Incoming message ids (client -> server).
REQ_MKT_DATA, PLACE_ORDER, CANCEL_ORDER, REQ_OPEN_ORDERS = 1, 3, 4, 5
REQ_ACCOUNT_UPDATES, REQ_EXECUTIONS, REQ_IDS, REQ_CONTRACT_DETAILS = 6, 7, 8, 9
REQ_AUTO_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS, REQ_MANAGED_ACCTS = 15, 16, 17
REQ_HISTORICAL_DATA, EXERCISE_OPTIONS, CANCEL_HISTORICAL_DATA = 20, 21, 25
REQ_CURRENT_TIME, REQ_GLOBAL_CANCEL, REQ_MARKET_DATA_TYPE, REQ_POSITIONS = 49, 58, 59, 61
START_API, REQ_ACCOUNT_UPDATES_MULTI, REQ_HEAD_TIMESTAMP, CANCEL_HEAD_TIMESTAMP = 71, 76, 87, 90
REQ_COMPLETED_ORDERS = 99
ORDER_MESSAGES = {PLACE_ORDER, CANCEL_ORDER, EXERCISE_OPTIONS, REQ_GLOBAL_CANCEL}
# Order-state requests that ib_insync sends only on a connection that is not read-only.
ORDER_STATE_REQUESTS = {
    REQ_OPEN_ORDERS,
    REQ_ALL_OPEN_ORDERS,
    REQ_AUTO_OPEN_ORDERS,
    REQ_COMPLETED_ORDERS,
}

# Outgoing message ids (server -> client).
ERR_MSG, ACCT_UPDATE_TIME, NEXT_VALID_ID, CONTRACT_DATA = 4, 8, 9, 10
MANAGED_ACCTS, HISTORICAL_DATA, CURRENT_TIME, CONTRACT_DATA_END = 15, 17, 49, 52
OPEN_ORDER_END, ACCT_DOWNLOAD_END, EXECUTION_DATA_END, POSITION_END = 53, 54, 55, 62
ACCOUNT_UPDATE_MULTI_END, HEAD_TIMESTAMP, COMPLETED_ORDERS_END = 74, 88, 102
# The forming bar of a keepUpToDate subscription.
HISTORICAL_DATA_UPDATE = 90

HMDS = "Historical Market Data Service error message:"
NO_DATA_TEXT = HMDS + "HMDS query returned no data: {symbol}@{exchange} {what}"
PACING_TEXT = HMDS + "Historical data request pacing violation ({rule})"
QUOTES_ONLY_TEXT = HMDS + "No data of type {what} is available for {symbol} (quotes only)"
NO_SECURITY_TEXT = "No security definition has been found for the request"
READ_ONLY_TEXT = (
    "Error validating request:-'bO' : cause - The API interface is currently in Read-Only mode."
)
# The contract fields of a request, in the order ib_insync sends them.
CONTRACT_FIELDS = (
    "conId",
    "symbol",
    "secType",
    "lastTradeDateOrContractMonth",
    "strike",
    "right",
    "multiplier",
    "exchange",
    "primaryExchange",
    "currency",
    "localSymbol",
    "tradingClass",
)


def encode_fields(*fields: object) -> str:
    """NUL-terminated text fields of a TWS API message."""
    return "".join(f"{_text(value)}\0" for value in fields)


def frame(payload: bytes) -> bytes:
    """`payload` with its 4-byte big-endian length in front."""
    return struct.pack(">I", len(payload)) + payload


def encode(*fields: object) -> bytes:
    """One length-prefixed TWS API message."""
    return frame(encode_fields(*fields).encode())


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def read_length(prefix: bytes) -> int:
    """The payload size announced by a message's 4-byte prefix."""
    return struct.unpack(">I", prefix)[0]


def split_fields(payload: bytes) -> list[str]:
    """The text fields of a message's payload."""
    return payload.decode(errors="replace").split("\0")[:-1]


def server_time_text(now: pd.Timestamp | None = None) -> str:
    """The connection time that the server sends after the version handshake."""
    return (now if now is not None else datetime.now(UTC)).strftime("%Y%m%d %H:%M:%S UTC")


def parse_end_time(text: str, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """A TWS `endDateTime` ("yyyymmdd hh:mm:ss [zone]", "yyyymmdd-hh:mm:ss" UTC, or "" for
    `now`, the server's clock)."""
    text = text.strip()
    if not text:
        return now if now is not None else pd.Timestamp.now(tz="UTC")
    if "-" in text and " " not in text:
        return pd.Timestamp(datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC))
    parts = text.split(" ")
    stamp = pd.Timestamp(datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S"))
    zone = parts[2] if len(parts) > 2 else "UTC"
    return stamp.tz_localize(zone).tz_convert("UTC")


def parse_duration(text: str) -> pd.Timedelta:
    """A TWS `durationStr` such as "23400 S", "1 D" or "2 W"."""
    amount, unit = text.split()
    seconds = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 31 * 86_400, "Y": 366 * 86_400}
    if unit not in seconds:
        raise ValueError(f"duration unit {unit!r}")
    return pd.Timedelta(seconds=int(amount) * seconds[unit])


# formatDate 1: "yyyymmdd hh:mm:ss <zone>" in `zone`, named by `label`; an empty label
# gives the zone-less "yyyymmdd  hh:mm:ss" of older TWS versions. formatDate 2: epoch seconds.
def format_times(stamps: pd.Series, format_date: int, zone: str, label: str) -> list[str]:
    """Bar times as TWS writes them."""
    if format_date == 2:
        # Through nanoseconds: a feed's times may be held at another resolution (pandas
        # reads a CSV's at microseconds), and their integers would not be nanoseconds.
        return [str(seconds) for seconds in (utc_nanoseconds(stamps) // 10**9).tolist()]
    pattern = f"%Y%m%d %H:%M:%S {label}" if label else "%Y%m%d  %H:%M:%S"
    return stamps.dt.tz_convert(zone).dt.strftime(pattern).tolist()


def format_time(stamp: pd.Timestamp, format_date: int, zone: str, label: str) -> str:
    """One time as TWS writes it (see `format_times`)."""
    if format_date == 2:
        return str(int(stamp.timestamp()))
    pattern = f"%Y%m%d %H:%M:%S {label}" if label else "%Y%m%d  %H:%M:%S"
    return stamp.tz_convert(zone).strftime(pattern)
