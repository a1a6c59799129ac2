"""The per-epoch validation figure that Optuna's pruner watches (imports Keras).

After each epoch the model forecasts the fold's early-stopping (`validation`) windows; its
MAE on the price scale, relative to persistence on the same rows, is reported. Unlike the
Keras loss it means the same for every target, so trials with different targets compare.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pandas as pd

from ml_lstm.forecasting.scaling import scale_features, unscale_target
from ml_lstm.forecasting.targets import target_values
from ml_lstm.forecasting.windows import split_windows

from .objective import price_forecast


class EpochScorer(keras.callbacks.Callback):
    """Calls `report(epoch, relative_mae)` after every epoch; `report` may raise to stop."""

    def __init__(
        self,
        table: pd.DataFrame,
        scaler: dict,
        lookback: int,
        horizon: int,
        move: float,
        report: Callable[[int, float], None],
    ) -> None:
        super().__init__()
        labels = target_values(table, scaler["target"], horizon)
        windows, _, rows = split_windows(
            table, scale_features(table, scaler), labels, "validation", lookback
        )
        close = table["close"].to_numpy(dtype="float64")
        self._windows = np.ascontiguousarray(windows)
        self._last = close[rows]
        self._actual = close[rows + horizon]
        self._persistence_mae = float(np.abs(self._actual - self._last).mean())
        self._scaler, self._move, self._report = scaler, move, report

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        raw = np.asarray(self.model.predict_on_batch(self._windows), dtype="float64")
        values = unscale_target(raw.reshape(-1), self._scaler)
        forecast = price_forecast(values, self._scaler["target"], self._last, self._move)
        mae = float(np.abs(self._actual - forecast).mean())
        self._report(epoch, mae / self._persistence_mae if self._persistence_mae else np.inf)
