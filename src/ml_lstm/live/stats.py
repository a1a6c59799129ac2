"""What a live loop did: minutes stored, predictions and their latency, faults, sleeps
(the tests and the benchmark read it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .bar_path import Prediction


@dataclass
class LiveStats:
    """What the loop did (tests and the benchmark read it)."""

    minutes_written: int = 0
    predictions: list[dict] = field(default_factory=list)
    # Feature row each prediction was made from (the bar just completed).
    feature_rows: list[pd.Series] = field(default_factory=list)
    # Real milliseconds from a bar's completion reaching us to its log row being written.
    latencies_ms: list[float] = field(default_factory=list)
    # The loop thread's CPU milliseconds over the same span: its own work, without the time
    # it waited for a core (a busy machine) or for the minutes' write.
    cpu_ms: list[float] = field(default_factory=list)
    # Per prediction, ms spent: from the bar's completion to the session's bars (the
    # minutes added to the session's text, data_processing's nodes on the session),
    # add_features, predict_next_close, the minutes' write, the log append.
    stages_ms: list[dict[str, float]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    # Each session's raw file as streamed, before the closing catch-up added its last
    # minute(s) from the historical answer.
    streamed_sessions: dict[str, str] = field(default_factory=dict)
    sleeps: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    # Sessions whose last minutes TWS did not send over the stream's connection at the
    # close: the closing backfill brought them.
    last_minutes_from_backfill: list[str] = field(default_factory=list)

    def add(
        self,
        prediction: Prediction,
        completed: tuple[float, float],
        stored_at: float,
        appended: float,
        cpu: float,
    ) -> None:
        """A prediction whose row was appended at `appended` (perf_counter, `cpu` the loop
        thread's CPU time then); `completed`: both clocks when its bar's completion came;
        `stored_at`: when the minutes' write, which follows the prediction, had ended."""
        completed_at, completed_cpu = completed
        self.latencies_ms.append((appended - completed_at) * 1000)
        self.cpu_ms.append((cpu - completed_cpu) * 1000)
        self.stages_ms.append(
            {
                "bars": (prediction.bars_done - completed_at) * 1000,
                "features": (prediction.features_done - prediction.bars_done) * 1000,
                "predict": (prediction.predicted - prediction.features_done) * 1000,
                "store": max(0.0, stored_at - prediction.predicted) * 1000,
                "append": (appended - max(stored_at, prediction.predicted)) * 1000,
            }
        )
        self.predictions.append(prediction.row.iloc[0].to_dict())
        self.feature_rows.append(prediction.features.iloc[-1])
