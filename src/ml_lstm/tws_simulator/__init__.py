"""A TWS / IB Gateway simulator that speaks enough of the TWS API wire protocol for ib_insync.

It serves 1-minute historical bars from the synthetic market (or from a raw-layout CSV
file) so that the production ingestion path (ib_insync over a real socket) runs without a
broker: on every default `kedro run`, in the tests, and standalone:

    python -m ml_lstm.tws_simulator --port 7497

It answers `keepUpToDate=True` requests with a stream of historical-data update messages
(msg 90) on its own clock (`SimulatorClock`: a chosen start, replayed at a chosen speed), so
a live client can be tested on a whole replayed session in seconds.

After `startApi` it sends managedAccounts and nextValidId and answers the requests
ib_insync makes while connecting (positions, account updates, executions, open orders)
with their end markers, then contract details, head timestamps and historical bars.

Faults can be injected to prove the client copes: latency, socket drops, pacing
violations (error 162), requests never answered, sessions without data (error 162 "HMDS
query returned no data"), connectivity loss (error 1100, then 1102), and the zone-less
formatDate 1 bar times of older TWS versions; on the clock, socket drops, connectivity
losses, stalled updates and restarts (the server gone for minutes). Order messages are
refused: the simulator is read-only, like a TWS whose API is set to "Read-Only".

Modules: `protocol` (wire format, message ids), `feeds` (what is served), `faults` (faults
and stats), `clock`, `server` and `connection` (sockets, handshake, dispatch, restarts),
`market_data` (contract, head-timestamp and historical-bar requests), `streaming`
(keepUpToDate updates), `runners` (thread, process) and `cli`. Nothing here imports a pipeline.
"""

from .clock import SimulatorClock
from .faults import Faults, SimulatorStats
from .feeds import (
    BarFeed,
    FrameFeed,
    SimulatedInstrument,
    SyntheticFeed,
    contract_key,
    instrument_from_parameters,
)
from .protocol import (
    ORDER_MESSAGES,
    ORDER_STATE_REQUESTS,
    PLACE_ORDER,
    REQ_AUTO_OPEN_ORDERS,
    REQ_HISTORICAL_DATA,
)
from .runners import SimulatorProcess, SimulatorThread
from .server import TwsSimulator

__all__ = [
    "ORDER_MESSAGES",
    "ORDER_STATE_REQUESTS",
    "PLACE_ORDER",
    "REQ_AUTO_OPEN_ORDERS",
    "REQ_HISTORICAL_DATA",
    "BarFeed",
    "Faults",
    "FrameFeed",
    "SimulatedInstrument",
    "SimulatorClock",
    "SimulatorProcess",
    "SimulatorStats",
    "SimulatorThread",
    "SyntheticFeed",
    "TwsSimulator",
    "contract_key",
    "instrument_from_parameters",
]
