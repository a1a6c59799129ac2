"""The `live` parameters (conf/base/parameters_live.yml) as a checked, typed object."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ml_lstm.calendars import utc


@dataclass(frozen=True)
class SimulatorSettings:
    """The TWS simulator `kedro live` streams from when ingestion.source is `simulator`."""

    start: pd.Timestamp | None = None
    speed: float = 1.0
    update_interval_s: float = 5.0
    csv_path: str | None = None
    faults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveSettings:
    kill_switch_file: Path = Path("STOP")
    dry_run: bool = False
    until: pd.Timestamp | None = None
    # Real seconds without an update, inside a session, before the feed counts as stalled.
    stall_after_s: float = 90.0
    # Real seconds between two questions of TWS's time (it tells when the last bar of a
    # session, after which no new bar comes, has ended).
    clock_poll_s: float = 1.0
    # Longest real sleep before the feed's time is asked again outside sessions.
    max_sleep_s: float = 60.0
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 30.0
    # Reconnections in a row before giving up (null: never give up).
    max_reconnects: int | None = None
    # The stream uses the ingestion client id plus this (plus the instrument's position),
    # so the catch-up backfill can connect while the stream is up.
    feed_client_id_offset: int = 1
    chart: bool = True
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)

    @classmethod
    def from_parameters(cls, parameters: dict | None, project_path: Path) -> LiveSettings:
        values = dict(parameters or {})
        known = {item.name for item in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"Unknown live parameter(s) {sorted(unknown)}: expected some of {sorted(known)}."
            )
        simulator = dict(values.pop("simulator", None) or {})
        sim_known = {item.name for item in fields(SimulatorSettings)}
        if set(simulator) - sim_known:
            raise ValueError(
                f"Unknown live.simulator parameter(s) {sorted(set(simulator) - sim_known)}: "
                f"expected some of {sorted(sim_known)}."
            )
        if simulator.get("start"):
            simulator["start"] = utc(str(simulator["start"]))
        simulator["faults"] = dict(simulator.get("faults") or {})
        kill_switch = Path(str(values.pop("kill_switch_file", None) or "STOP"))
        until = values.pop("until", None)
        return cls(
            kill_switch_file=kill_switch
            if kill_switch.is_absolute()
            else project_path / kill_switch,
            until=utc(str(until)) if until else None,
            simulator=SimulatorSettings(**simulator),
            **values,
        )
