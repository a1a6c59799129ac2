"""How many bars of history `add_features` needs for the newest rows to equal, far below
1e-9, what it gives on the whole history; and the tail of history live computes them on.

Finite indicators (returns, SMAs, rolling volatility) read a fixed number of earlier rows:
that is the warm-up `add_features` reports. Recursive ones (EMAs, MACD and its signal,
Wilder's RSI) read every earlier row, but forget geometrically: two runs of
`x[t] = d * x[t-1] + (1 - d) * c[t]` started at different rows differ at row t by `d**n`
times their difference n rows before, which is bounded by the price range. So after
`log(tolerance) / log(d)` more rows, d the slowest forgetting factor of the configured
indicators, the difference is below `tolerance` times the price range. `TOLERANCE`
(1e-18) leaves room for RSI's ratio and MACD's EMA of EMAs (which multiply the difference
by at most a few hundred) and still lands far below 1e-9.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from ml_lstm.pipelines.data_processing.features import FEATURE_FAMILIES
from ml_lstm.pipelines.data_processing.nodes import add_features

logger = logging.getLogger(__name__)

TOLERANCE = 1e-18
# What the tail's newest rows must agree with the whole history's, or the whole history is
# used (a stretch restarting inside the tail, or settings this module does not know).
AGREEMENT = 1e-9


def slowest_decay(settings: dict) -> float:
    """The largest forgetting factor (1 - alpha) of the recursive indicators in `settings`
    (data_processing.features); 0 when none is configured."""
    include = set(settings.get("include", FEATURE_FAMILIES))
    spans: list[int] = []
    if "ema" in include:
        spans += list(settings["ema_windows"])
    if "macd" in include:
        spans += [settings["macd"][key] for key in ("fast", "slow", "signal")]
    decays = [1 - 2 / (span + 1) for span in spans]
    if "rsi" in include:
        decays.append(1 - 1 / settings["rsi_window"])  # Wilder: alpha = 1 / window
    return max(decays, default=0.0)


def tail_rows(settings: dict, warm_up: int, lookback: int, tolerance: float = TOLERANCE) -> int:
    """Bars of history that give the last `lookback` feature rows to within `tolerance`
    (relative to the price range): warm-up + lookback + the rows recursions need to forget
    where they started."""
    decay = slowest_decay(settings)
    forget = math.ceil(math.log(tolerance) / math.log(decay)) if decay > 0 else 0
    return warm_up + lookback + forget


def feature_difference(left: pd.DataFrame, right: pd.DataFrame, rows: int) -> float:
    """Largest absolute difference of the feature values in the last `rows` rows of two
    feature tables (infinite when their times differ or either is shorter)."""
    if min(len(left), len(right)) < rows:
        return math.inf
    a, b = left.iloc[-rows:], right.iloc[-rows:]
    if list(a["timestamp"].astype(str)) != list(b["timestamp"].astype(str)):
        return math.inf
    names = [c for c in a.columns if c not in ("timestamp", "bar_end", "session")]
    values_a = a[names].to_numpy(dtype=float)
    values_b = b[names].to_numpy(dtype=float)
    if not np.array_equal(np.isnan(values_a), np.isnan(values_b)):
        return math.inf
    return float(np.nanmax(np.abs(values_a - values_b), initial=0.0))


def history_tail(
    history: pd.DataFrame, instrument: dict, data_processing: dict, lookback: int
) -> pd.DataFrame:
    """The last bars of `history` that live computes features on, checked once (per session)
    against add_features on the whole history; the whole history when they disagree."""
    if history.empty:
        return history
    full, feature_list = add_features(history, instrument, data_processing)
    rows = tail_rows(
        data_processing["features"], feature_list["warm_up_rows_per_stretch"], lookback
    )
    if len(history) <= rows:
        return history
    tail = history.iloc[-rows:].reset_index(drop=True)
    try:
        part, _ = add_features(tail, instrument, data_processing)
    except ValueError:
        part = pd.DataFrame()
    difference = feature_difference(part, full, lookback) if len(part) else math.inf
    if difference > AGREEMENT:
        logger.warning(
            "%s: features on the last %d bars differ from the whole history's by %g: "
            "using the whole history (%d bars) at each bar",
            instrument["symbol"],
            rows,
            difference,
            len(history),
        )
        return history
    return tail
