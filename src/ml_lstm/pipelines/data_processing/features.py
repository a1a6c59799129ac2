"""Technical features of session-aligned bars, each computed from its own and earlier rows.

Every indicator is a causal pandas operation (shift, rolling, ewm), so a row never reads a
later one. Each family reports how many leading rows it needs (`history`) so that warm-up
rows can be dropped explicitly. EMAs are recursive (adjust=False) and seeded with the first
close; Wilder's RSI averages are seeded with the simple mean of the first `rsi_window` changes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

FEATURE_FAMILIES = (
    "return",
    "log_return",
    "sma",
    "ema",
    "rsi",
    "macd",
    "volatility",
    "session_position",
    "day_of_week",
)


def indicator_columns(close: pd.Series, settings: dict) -> tuple[dict[str, pd.Series], int]:
    """Price indicators named as in the feature table, and the rows of history they need."""
    include = set(settings.get("include", FEATURE_FAMILIES))
    unknown = include - set(FEATURE_FAMILIES)
    if unknown:
        raise ValueError(
            f"data_processing.features.include names unknown families {sorted(unknown)}; "
            f"expected some of {list(FEATURE_FAMILIES)}."
        )
    columns: dict[str, pd.Series] = {}
    history = [0]
    # close / close.shift(1) on the array: the same divisions, a NaN first.
    values = close.to_numpy(dtype=float)
    ratio = pd.Series(np.concatenate([[np.nan], values[1:] / values[:-1]]), index=close.index)
    log_return = np.log(ratio)
    if "return" in include:
        columns["return"] = ratio - 1
        history.append(1)
    if "log_return" in include:
        columns["log_return"] = log_return
        history.append(1)
    if "sma" in include:
        for window in settings["sma_windows"]:
            columns[f"sma_{window}"] = close.rolling(window).mean()
            history.append(window - 1)
    if "ema" in include:
        for window in settings["ema_windows"]:
            columns[f"ema_{window}"] = ema(close, window)
            history.append(window - 1)
    if "rsi" in include:
        window = settings["rsi_window"]
        columns[f"rsi_{window}"] = wilder_rsi(close, window)
        history.append(window)
    if "macd" in include:
        fast, slow, signal = (settings["macd"][key] for key in ("fast", "slow", "signal"))
        macd = ema(close, fast) - ema(close, slow)
        columns["macd"] = macd
        columns["macd_signal"] = macd.ewm(span=signal, adjust=False, min_periods=signal).mean()
        history.append(max(fast, slow) + signal - 2)
    if "volatility" in include:
        for window in settings["volatility_windows"]:
            columns[f"volatility_{window}"] = log_return.rolling(window).std()
            history.append(window)
    return columns, max(history)


def indicators_by_stretch(
    bars: pd.DataFrame, stretch: np.ndarray, settings: dict
) -> tuple[np.ndarray, dict[str, np.ndarray], int, int]:
    """The rows of `bars` that keep features (each stretch without its warm-up rows) and
    their price indicators, each stretch computed on its own; the rows dropped in all and
    the warm-up rows per stretch."""
    rows, parts, dropped, warm_up = [], [], 0, 0
    # `stretch` never decreases: each stretch is a run of rows (no groupby, whose set-up
    # costs more than the live loop's few hundred bars).
    bounds = [0, *(np.flatnonzero(np.diff(stretch)) + 1).tolist(), len(bars)]
    close = bars["close"]
    for start, end in itertools.pairwise(bounds):
        indicators, warm_up = indicator_columns(close.iloc[start:end], settings)
        rows.append(np.arange(start + warm_up, end))
        parts.append({name: values.to_numpy()[warm_up:] for name, values in indicators.items()})
        dropped += min(warm_up, end - start)
    kept = np.concatenate(rows)
    if len(kept) == 0:
        raise ValueError(
            f"All {len(bars)} session bars are warm-up rows (each stretch needs more than "
            f"{warm_up} bars): process a longer span of minute bars."
        )
    columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return kept, columns, dropped, warm_up


def calendar_columns(
    bar_start_ns: np.ndarray,
    open_ns: np.ndarray,
    close_ns: np.ndarray,
    weekday: np.ndarray,
    settings: dict,
) -> dict[str, np.ndarray]:
    """Position of the bar in its session and day of week of the session, as sin/cos pairs.

    Position is the share of the session elapsed at the bar's start (0 at the open); day of
    week uses a 7-day cycle (Monday 0), so Friday to Monday is three days apart. Times are
    UTC nanoseconds (bar start, its session's open and close), `weekday` the session's.
    """
    include = set(settings.get("include", FEATURE_FAMILIES))
    columns: dict[str, np.ndarray] = {}
    if "session_position" in include:
        elapsed = (bar_start_ns - open_ns) / (close_ns - open_ns)
        columns["session_position_sin"] = np.sin(2 * np.pi * elapsed)
        columns["session_position_cos"] = np.cos(2 * np.pi * elapsed)
    if "day_of_week" in include:
        columns["day_of_week_sin"] = np.sin(2 * np.pi * weekday / 7)
        columns["day_of_week_cos"] = np.cos(2 * np.pi * weekday / 7)
    return columns


def ema(values: pd.Series, window: int) -> pd.Series:
    """Recursive exponential moving average with span `window`, empty for the first rows."""
    return values.ewm(span=window, adjust=False, min_periods=window).mean()


def wilder_rsi(close: pd.Series, window: int) -> pd.Series:
    """Wilder's RSI: smoothed gains over smoothed losses, on a 0-100 scale.

    As Wilder defined it (New Concepts in Technical Trading Systems, 1978): the first
    average gain and loss are the simple means of the first `window` changes, so the first
    value is at row `window`; each later average is (previous x (window - 1) + change) /
    window. 100 when there were only gains, 0 with only losses, 50 when the price did not
    move.
    """
    # numpy on the arrays: the same element-wise operations as on Series (clip(lower=0)
    # included: NaN and -0.0 kept), without their per-operation overhead.
    change = close.diff().to_numpy()
    gain = wilder_average(_at_least_zero(change, close.index), window).to_numpy()
    loss = wilder_average(_at_least_zero(-change, close.index), window).to_numpy()
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = 100 * gain / np.where(total > 0, total, np.nan)
    rsi = np.where(total > 0, rsi, 50.0)
    return pd.Series(np.where(np.isnan(gain), np.nan, rsi), index=close.index)


def _at_least_zero(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Series.clip(lower=0) of `values`."""
    return pd.Series(np.where(np.isnan(values) | (values >= 0), values, 0), index=index)


def wilder_average(values: pd.Series, window: int) -> pd.Series:
    """Wilder's smoothing of `values` (whose first row is empty, as after a diff): the simple
    mean of rows 1..window at row `window`, then a recursive average with alpha 1/window."""
    seeded = np.full(len(values), np.nan)
    if len(values) > window:
        seeded[window] = values.iloc[1 : window + 1].mean()
        seeded[window + 1 :] = values.to_numpy()[window + 1 :]
    return pd.Series(seeded, index=values.index).ewm(alpha=1 / window, adjust=False).mean()
