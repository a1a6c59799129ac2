"""Where TWS / IB Gateway listens, how requests to it are made, and keeping its address out
of the logs.

The host, port and client id are credentials: `ConnectionSettings` hides them in its repr,
and `hide_connection_in_logs` takes them out of ib_insync's own log lines (which name them
when connecting, and at ERROR when a connection is refused).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from ml_lstm.pacing import PacingRules

# ib_insync's loggers (their names as ib_insync spells them).
IB_INSYNC_LOGGERS = ("ib_insync.client", "ib_insync.ib", "ib_insync.wrapper", "ib_insync.Decoder")
CREDENTIALS_HINT = (
    "IB_HOST / IB_PORT / IB_CLIENT_ID or the `ib` entry of conf/local/credentials.yml"
)


@dataclass(frozen=True)
class ConnectionSettings:
    """Where TWS / IB Gateway listens. Its repr hides the values (they are credentials)."""

    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 17

    def __post_init__(self) -> None:
        if self.client_id == 0:
            # ib_insync binds TWS's manual orders to client 0 (reqAutoOpenOrders) whatever
            # `readonly` says: an order-state request this product must never send.
            raise ValueError(
                "IB client id 0 is refused: with client id 0 ib_insync asks TWS for its manual "
                "orders (reqAutoOpenOrders), an order-state request, and this product only "
                f"reads market data. Use another client id (e.g. 17) in {CREDENTIALS_HINT}."
            )
        if not 1 <= self.port <= 65535:
            raise ValueError(f"IB port must be between 1 and 65535 (check {CREDENTIALS_HINT}).")

    def __repr__(self) -> str:
        return "ConnectionSettings(<hidden>)"

    @classmethod
    def resolve(cls, configured: dict | None = None) -> ConnectionSettings:
        """Configured values (credentials `ib`), overridden by IB_HOST, IB_PORT, IB_CLIENT_ID.

        A value counts as given unless it is absent, null or empty: `client_id: 0` is 0
        (and refused), not the default.
        """
        configured = dict(configured or {})
        host = _first_given(os.environ.get("IB_HOST"), configured.get("host"), cls.host)
        port = _first_given(os.environ.get("IB_PORT"), configured.get("port"), cls.port)
        client_id = _first_given(
            os.environ.get("IB_CLIENT_ID"), configured.get("client_id"), cls.client_id
        )
        try:
            port, client_id = int(port), int(client_id)
        except (TypeError, ValueError):
            raise ValueError(
                f"IB port and client id must be integers (check {CREDENTIALS_HINT})."
            ) from None
        return cls(str(host), port, client_id)


def _first_given(*values: object) -> object:
    return next(value for value in values if value is not None and value != "")


@dataclass(frozen=True)
class RequestSettings:
    """How requests are made, retried and paced."""

    format_date: int = 2
    request_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_concurrent_requests: int = 10
    max_retries: int = 5
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 30.0
    max_reconnects: int = 10
    outage_timeout_s: float = 60.0
    pacing: PacingRules = field(default_factory=PacingRules)

    @classmethod
    def from_parameters(cls, parameters: dict) -> RequestSettings:
        parameters = dict(parameters)
        pacing = PacingRules.from_parameters(parameters.pop("pacing", None))
        unknown = set(parameters) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown ingestion.requests parameter(s) {sorted(unknown)}: expected some of "
                f"{sorted(cls.__dataclass_fields__)}."
            )
        settings = cls(**parameters, pacing=pacing)
        if not 1 <= settings.max_concurrent_requests <= 50:
            raise ValueError(
                "ingestion.requests.max_concurrent_requests must be between 1 and 50 (IB "
                f"allows 50 outstanding requests), got {settings.max_concurrent_requests}."
            )
        if settings.format_date not in (1, 2):
            raise ValueError("ingestion.requests.format_date must be 1 or 2.")
        return settings


class AddressRedactor(logging.Filter):
    """Rewrites log records so that no TWS host, port or client id is left in them.

    Known values (those of the connections made) are replaced wherever they occur; socket
    addresses in exception texts, such as `('127.0.0.1', 7497)` or `('::1', 7497, 0, 0)`,
    and "clientId 17" / "client id 17" are replaced whatever their values.
    """

    SOCKET_ADDRESS = re.compile(r"\('[^']*', \d+(?:, \d+)*\)")
    CLIENT_ID = re.compile(r"(client ?id )(-?\d+)", re.IGNORECASE)

    def __init__(self) -> None:
        super().__init__()
        self._hosts: set[str] = set()
        self._ports: set[int] = set()

    def add(self, connection: ConnectionSettings) -> None:
        if connection.host:
            self._hosts.add(connection.host)
        self._ports.add(connection.port)

    def redact(self, text: str) -> str:
        text = self.SOCKET_ADDRESS.sub("(<address>)", text)
        text = self.CLIENT_ID.sub(r"\1<client id>", text)
        for host in sorted(self._hosts, key=len, reverse=True):
            text = text.replace(host, "<host>")
        for port in self._ports:
            text = re.sub(rf"(?<![\d.]){port}(?!\d)", "<port>", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACTOR = AddressRedactor()


def hide_connection_in_logs(connection: ConnectionSettings) -> None:
    """Keeps `connection`'s address (and any socket address) out of ib_insync's log lines.

    Log levels are configuration (conf/logging.yml); this filter works at every level, so
    ib_insync's ERROR line on a refused connection names no host or port either.
    """
    _REDACTOR.add(connection)
    for name in IB_INSYNC_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


class IBConnectionDataset(AbstractDataset[dict, None]):
    """Where TWS / IB Gateway listens: the `key` entry of a YAML credentials file.

    `kedro run --env ib` loads conf/base and conf/ib only, so Kedro's own credentials
    (conf/local/credentials.yml) are not available to it; this read-only dataset reads that
    file itself. A missing file or key gives `{}` (the client then uses IB_HOST, IB_PORT,
    IB_CLIENT_ID or 127.0.0.1:7497). The values are never shown by `_describe` or logs.
    """

    def __init__(
        self, filepath: str, key: str = "ib", metadata: dict[str, Any] | None = None
    ) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self._key = key
        self.metadata = metadata

    def load(self) -> dict:
        import yaml

        if not self._filepath.is_file():
            return {}
        try:
            content = yaml.safe_load(self._filepath.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            # PyYAML's message quotes the offending line, which may hold a credential: name
            # the place and the problem only.
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise DatasetError(f"{self._filepath} is not valid YAML{where}: {problem}.") from None
        entry = content.get(self._key, {}) if isinstance(content, dict) else {}
        if not isinstance(entry, dict):
            raise DatasetError(
                f"{self._filepath}: `{self._key}` must be a mapping with host, port, client_id."
            )
        unknown = set(entry) - {"host", "port", "client_id"}
        if unknown:
            raise DatasetError(
                f"{self._filepath}: unknown key(s) {sorted(unknown)} under `{self._key}`; "
                "expected host, port, client_id."
            )
        return entry

    def save(self, data: dict) -> None:
        raise DatasetError("IBConnectionDataset is read-only: edit the credentials file.")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "key": self._key}
