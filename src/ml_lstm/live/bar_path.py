"""From a completed bar to its prediction: the session's bars from its stored minutes
(data_processing's nodes, on this session's minutes only), add_features on a bounded tail
of the earlier sessions' bars plus the session's (`tail.history_tail`, checked against the
whole history once per session), and inference's predict_next_close; and the served model,
loaded and checked once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml_lstm.calendars import utc
from ml_lstm.pipelines.inference.nodes import check_served_model

from .session import StreamedSession, features_with, predict_row, session_bars
from .tail import history_tail

if TYPE_CHECKING:
    from .store import LiveStore

# "Now" for checking the model against the stored bars: every stored minute counts.
FAR = pd.Timestamp("2200-01-01", tz="UTC")


@dataclass
class Prediction:
    """A prediction-log row, the features it was made from, and when each step ended."""

    row: pd.DataFrame
    features: pd.DataFrame
    # perf_counter after the session's bars, after add_features, after predict_next_close.
    bars_done: float
    features_done: float
    predicted: float


class BarPredictor:
    """The model (loaded once) and the history tail of the session being streamed."""

    def __init__(self, instrument: dict, parameters: dict, model: dict, run_id: str) -> None:
        self.instrument = instrument
        self.data_processing = parameters["data_processing"]
        self.inference = parameters["inference"]
        self.model = model
        self.run_id = run_id
        self.history = pd.DataFrame()

    def use_history(self, history: pd.DataFrame) -> None:
        """The earlier sessions' bars (once per session): only the tail features need."""
        lookback = self.model["manifest"]["lookback"]
        self.history = history_tail(history, self.instrument, self.data_processing, lookback)

    def predict(
        self, session: StreamedSession, bar_start: pd.Timestamp, bar_end: pd.Timestamp
    ) -> Prediction | None:
        """The prediction at `bar_start`'s bar, None when the bar had no trade."""
        today = session.hourly(self.data_processing, bar_end)
        if today.empty or utc(today["timestamp"].iloc[-1]) != bar_start:
            return None
        bars_done = time.perf_counter()
        features, _ = features_with(self.history, today, self.instrument, self.data_processing)
        features_done = time.perf_counter()
        run_info = {"run_id": self.run_id, "started_at": bar_end.isoformat()}
        row = predict_row(self.model, features, self.instrument, self.inference, run_info)
        row["source"] = "live"
        return Prediction(row, features, bars_done, features_done, time.perf_counter())


def load_served_model(
    store: LiveStore, instrument: dict, parameters: dict
) -> tuple[dict, pd.DataFrame]:
    """The served model (champion or pinned) checked by inference's check_served_model
    against the features of the stored bars, its graph traced; and those features."""
    data_processing = parameters["data_processing"]
    bars = session_bars(store.raw_table(), instrument, data_processing, FAR)
    features, feature_list = features_with(bars, pd.DataFrame(), instrument, data_processing)
    catalog, name = store.catalog, store.name
    model = check_served_model(
        catalog.load(f"{name}.served_model"),
        catalog.load(f"{name}.champion_record"),
        features,
        feature_list,
        parameters["modelling"],
        data_processing,
    )
    # The first predict_on_batch traces the model's graph (~0.3 s): done now, not at the
    # first bar.
    manifest = model["manifest"]
    warm = np.zeros((1, manifest["lookback"], len(manifest["features"])), dtype="float32")
    model["model"].predict_on_batch(warm)
    return model, features
