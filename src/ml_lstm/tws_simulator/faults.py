"""What goes wrong on purpose (`Faults`), and what the simulator saw and sent (`SimulatorStats`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ml_lstm.calendars import utc
from ml_lstm.pacing import PacingRules


@dataclass(frozen=True)
class Faults:
    """What goes wrong, counted in historical-data requests (1 = the first one received)."""

    latency_s: float = 0.0
    # The socket is closed right after these requests arrive (they are never answered).
    drop_after_requests: frozenset[int] = frozenset()
    # These requests get error 162 "pacing violation".
    pacing_violation_requests: frozenset[int] = frozenset()
    # These requests are never answered (the client must time out and retry).
    unanswered_requests: frozenset[int] = frozenset()
    # Error 1100 right after these requests arrive; in-flight requests are lost, and
    # requests are ignored until 1102 is sent `outage_s` later.
    connectivity_loss_after_requests: frozenset[int] = frozenset()
    outage_s: float = 0.5
    # Sessions (YYYY-MM-DD, UTC date of the bars) for which HMDS has no data.
    no_data_dates: frozenset[str] = frozenset()
    # When set, IB's pacing rules are enforced and broken ones answered with error 162.
    pacing: PacingRules | None = None
    # formatDate 1 bar times as older TWS versions send them: "yyyymmdd  hh:mm:ss" in the
    # exchange's zone, without naming it.
    naive_format1_times: bool = False
    # Streaming faults, at simulated times (see SimulatorClock): the socket is closed; the
    # connectivity is lost (1100, then 1102 `outage_s` real seconds later); updates stop for
    # `stall_minutes` with the socket open; the server goes away for `restart_minutes`, as
    # TWS and IB Gateway do at their daily restart.
    drop_at: tuple[pd.Timestamp, ...] = ()
    connectivity_loss_at: tuple[pd.Timestamp, ...] = ()
    stall_at: tuple[pd.Timestamp, ...] = ()
    stall_minutes: float = 5.0
    restart_at: tuple[pd.Timestamp, ...] = ()
    restart_minutes: float = 5.0
    # The first plain historical request (not a subscription) received at or after each of
    # these simulated times gets error 162 (pacing violation), as HMDS answers when many
    # clients ask at once, e.g. at the close.
    history_refused_at: tuple[pd.Timestamp, ...] = ()

    @classmethod
    def from_parameters(cls, parameters: dict | None) -> Faults:
        """Faults from a `simulator` parameter block (lists become sets)."""
        parameters = dict(parameters or {})
        pacing = parameters.pop("pacing", None)
        known = set(cls.__dataclass_fields__) - {"pacing"}
        unknown = set(parameters) - known
        if unknown:
            raise ValueError(
                f"Unknown simulator parameter(s) {sorted(unknown)}: expected some of "
                f"{sorted(known | {'pacing'})}."
            )
        values: dict[str, object] = {}
        for name, value in parameters.items():
            if name in {"latency_s", "outage_s", "stall_minutes", "restart_minutes"}:
                values[name] = float(value)
            elif name.endswith("_at"):
                values[name] = tuple(sorted(utc(str(v)) for v in value or []))
            elif name == "naive_format1_times":
                values[name] = bool(value)
            elif name == "no_data_dates":
                values[name] = frozenset(str(v) for v in value or [])
            else:
                values[name] = frozenset(int(v) for v in value or [])
        return cls(**values, pacing=PacingRules.from_parameters(pacing) if pacing else None)


@dataclass
class SimulatorStats:
    connections: int = 0
    historical_requests: int = 0
    bars_served: int = 0
    rejected_orders: int = 0
    # Error 162 "pacing violation" answers, injected or for a rule that was broken.
    pacing_errors_sent: int = 0
    # Streaming: historical-data update messages (msg 90) sent, and server restarts.
    updates_sent: int = 0
    restarts: int = 0
    errors_sent: dict[int, int] = field(default_factory=dict)
    # Incoming message id -> how many arrived (what the clients asked for).
    messages_received: dict[int, int] = field(default_factory=dict)
