"""The simulator's TCP server: accepts TWS API clients, one `Connection` each, and holds
what they share (instruments, faults, stats, client ids in use, the pacing book)."""

from __future__ import annotations

import asyncio
import logging

from ml_lstm.pacing import PacingBook

from .connection import Connection
from .faults import Faults, SimulatorStats
from .feeds import SimulatedInstrument, contract_key
from .protocol import DEFAULT_ACCOUNT

logger = logging.getLogger(__name__)


class TwsSimulator:
    """An asyncio TCP server answering the TWS API requests of a read-only ib_insync client."""

    def __init__(
        self,
        instruments: list[SimulatedInstrument],
        faults: Faults | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.instruments = {instrument.key: instrument for instrument in instruments}
        self.faults = faults or Faults()
        self.account = account
        self.stats = SimulatorStats()
        self._pacing = PacingBook(self.faults.pacing) if self.faults.pacing else None
        self._server: asyncio.base_events.Server | None = None
        self._client_ids: set[int] = set()
        self._connections: set[Connection] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Starts listening; returns the port (an ephemeral one when `port` is 0)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(self, reader, writer)
        self._connections.add(connection)
        self.stats.connections += 1
        try:
            await connection.run()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            logger.exception("TWS simulator: connection failed")
        finally:
            connection.close()
            self._connections.discard(connection)

    def claim_client_id(self, client_id: int) -> bool:
        """Takes `client_id` for a connection; False when another connection holds it."""
        if client_id in self._client_ids:
            return False
        self._client_ids.add(client_id)
        return True

    def release_client_id(self, client_id: int) -> None:
        self._client_ids.discard(client_id)

    def find_instrument(self, contract: dict[str, str]) -> SimulatedInstrument | None:
        """The instrument a request's contract fields name (by symbol, else by conId)."""
        key = contract_key(contract["secType"], contract["symbol"], contract["currency"] or "USD")
        instrument = self.instruments.get(key)
        if instrument is None and contract["conId"] not in ("", "0"):
            by_id = {str(i.con_id): i for i in self.instruments.values()}
            instrument = by_id.get(contract["conId"])
        return instrument

    def next_request_number(self) -> int:
        self.stats.historical_requests += 1
        return self.stats.historical_requests

    def pacing_violation(self, request: tuple, contract: tuple) -> str | None:
        """The pacing rule `request` breaks, if the rules are enforced (it is recorded)."""
        if self._pacing is None:
            return None
        rule = self._pacing.violation(request, contract)
        self._pacing.record(request, contract)
        return rule
