"""What a live loop did: minutes stored, predictions and their latency, faults, sleeps
(the tests and the benchmark read it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class LiveStats:
    """What the loop did (tests and the benchmark read it)."""

    minutes_written: int = 0
    predictions: list[dict] = field(default_factory=list)
    # Feature row each prediction was made from (the bar just completed).
    feature_rows: list[pd.Series] = field(default_factory=list)
    # Real milliseconds from a bar's completion reaching us to its log row being written.
    latencies_ms: list[float] = field(default_factory=list)
    # Per prediction, ms spent: from the bar's completion to the session's bars (the
    # minutes handed to their write, data_processing's nodes on the session), add_features,
    # predict_next_close, waiting for the minutes' write to end, the log append.
    stages_ms: list[dict[str, float]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    # Each session's raw file as streamed, before the closing catch-up added its last
    # minute(s) from the historical answer.
    streamed_sessions: dict[str, str] = field(default_factory=dict)
    sleeps: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
