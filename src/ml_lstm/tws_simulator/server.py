"""The simulator's TCP server: accepts TWS API clients, one `Connection` each, and holds
what they share (instruments, faults, stats, client ids in use, the pacing book, the
clock), and goes away for a while at a restart fault, as TWS does at its daily restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pandas as pd

from ml_lstm.pacing import PacingBook

from .clock import SimulatorClock
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
        clock: SimulatorClock | None = None,
        update_interval_s: float = 5.0,
    ) -> None:
        self.instruments = {instrument.key: instrument for instrument in instruments}
        self.faults = faults or Faults()
        self.account = account
        self.clock = clock or SimulatorClock()
        # Simulated seconds between two updates of a streamed (keepUpToDate) bar.
        self.update_interval_s = update_interval_s
        # Timed faults already fired (or due before the clock started): each fires once.
        now = self.clock.now()
        self._fired = {
            (kind, at)
            for kind in ("drop_at", "connectivity_loss_at", "history_refused_at")
            for at in getattr(self.faults, kind)
            if at < now
        }
        self._address: tuple[str, int] | None = None
        self._restarts: asyncio.Task | None = None
        self.stats = SimulatorStats()
        self._pacing = PacingBook(self.faults.pacing) if self.faults.pacing else None
        self._server: asyncio.base_events.Server | None = None
        self._client_ids: set[int] = set()
        self._connections: set[Connection] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Starts listening; returns the port (an ephemeral one when `port` is 0)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        port = self._server.sockets[0].getsockname()[1]
        self._address = (host, port)
        if self.faults.restart_at and self._restarts is None:
            self._restarts = asyncio.ensure_future(self._restart_when_due())
        return port

    async def stop(self) -> None:
        if self._restarts is not None:
            self._restarts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restarts
            self._restarts = None
        await self._close_server()

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None

    async def _restart_when_due(self) -> None:
        """At each `restart_at`, every socket closes and nothing listens for
        `restart_minutes` (simulated); then the server listens on the same port again."""
        clock = self.clock
        for at in self.faults.restart_at:
            if at < clock.now():
                continue
            # In short steps: a paused replay clock may start meanwhile.
            while (wait := clock.real_seconds_until(at)) > 0:
                await asyncio.sleep(min(wait, 0.1))
            down = clock.real_seconds(self.faults.restart_minutes * 60)
            logger.info(
                "TWS simulator: restarting at %s, back in %g simulated minutes",
                at,
                self.faults.restart_minutes,
            )
            self.stats.restarts += 1
            await self._close_server()
            await asyncio.sleep(down)
            host, port = self._address
            self._server = await asyncio.start_server(self._serve, host, port)
            logger.info("TWS simulator: back after the restart")

    def timed_faults(self, connection: Connection, now: pd.Timestamp) -> bool:
        """Fires the socket drop or connectivity loss due by `now` (once each); True when
        one fired on `connection`."""
        for kind in ("drop_at", "connectivity_loss_at"):
            for at in getattr(self.faults, kind):
                if at <= now and (kind, at) not in self._fired:
                    self._fired.add((kind, at))
                    if kind == "drop_at":
                        logger.info("TWS simulator: dropping the socket at %s", at)
                        connection.close()
                    else:
                        connection.lose_connectivity()
                    return True
        return False

    def refuses_history(self, now: pd.Timestamp) -> bool:
        """Whether a plain historical request arriving at `now` is refused (the first one
        at or after each `history_refused_at`)."""
        for at in self.faults.history_refused_at:
            if at <= now and ("history_refused_at", at) not in self._fired:
                self._fired.add(("history_refused_at", at))
                logger.info("TWS simulator: refusing a historical request at %s", now)
                return True
        return False

    def stalled(self, now: pd.Timestamp) -> bool:
        """Whether streamed updates are held back at `now` (a stall fault)."""
        length = pd.Timedelta(minutes=self.faults.stall_minutes)
        return any(at <= now < at + length for at in self.faults.stall_at)

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
