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


def indicator_columns(close: np.ndarray, settings: dict) -> tuple[dict[str, np.ndarray], int]:
    """Price indicators of the float closes `close`, named as in the feature table, and the
    rows of history they need."""
    include = set(settings.get("include", FEATURE_FAMILIES))
    unknown = include - set(FEATURE_FAMILIES)
    if unknown:
        raise ValueError(
            f"data_processing.features.include names unknown families {sorted(unknown)}; "
            f"expected some of {list(FEATURE_FAMILIES)}."
        )
    columns: dict[str, np.ndarray] = {}
    history = [0]
    # Element-wise steps on the arrays, pandas only for its rolling and ewm kernels: on the
    # live loop's few hundred bars each Series operation costs more than its arithmetic.
    series = pd.Series(close)
    emas = _MemoizedEma(series)
    # close / close.shift(1): the same divisions, a NaN first.
    ratio = np.concatenate([[np.nan], close[1:] / close[:-1]])
    log_return = np.log(ratio)
    if "return" in include:
        columns["return"] = ratio - 1
        history.append(1)
    if "log_return" in include:
        columns["log_return"] = log_return
        history.append(1)
    if "sma" in include:
        for window in settings["sma_windows"]:
            columns[f"sma_{window}"] = series.rolling(window).mean().to_numpy()
            history.append(window - 1)
    if "ema" in include:
        for window in settings["ema_windows"]:
            columns[f"ema_{window}"] = emas(window)
            history.append(window - 1)
    if "rsi" in include:
        window = settings["rsi_window"]
        columns[f"rsi_{window}"] = wilder_rsi_values(close, window)
        history.append(window)
    if "macd" in include:
        fast, slow, signal = (settings["macd"][key] for key in ("fast", "slow", "signal"))
        macd = emas(fast) - emas(slow)
        columns["macd"] = macd
        columns["macd_signal"] = ema(pd.Series(macd), signal).to_numpy()
        history.append(max(fast, slow) + signal - 2)
    if "volatility" in include:
        for window in settings["volatility_windows"]:
            columns[f"volatility_{window}"] = pd.Series(log_return).rolling(window).std().to_numpy()
            history.append(window)
    return columns, max(history)


class _MemoizedEma:
    """`ema` of one series by window, each computed once: MACD's fast and slow EMAs are
    usually the `ema` family's own windows (12 and 26)."""

    def __init__(self, series: pd.Series) -> None:
        self.series = series
        self.by_window: dict[int, np.ndarray] = {}

    def __call__(self, window: int) -> np.ndarray:
        if window not in self.by_window:
            self.by_window[window] = ema(self.series, window).to_numpy()
        return self.by_window[window]


def indicators_by_stretch(
    close: np.ndarray, stretch: np.ndarray, settings: dict
) -> tuple[np.ndarray | slice, dict[str, np.ndarray], int, int]:
    """The rows of the bars whose float closes are `close` that keep features (each stretch
    without its warm-up rows; a slice when there is one stretch) and their price
    indicators, each stretch computed on its own; the rows dropped in all and the warm-up
    rows per stretch."""
    # `stretch` never decreases: each stretch is a run of rows (no groupby, whose set-up
    # costs more than the live loop's few hundred bars).
    bounds = [0, *(np.flatnonzero(np.diff(stretch)) + 1).tolist(), len(close)]
    if len(bounds) == 2:
        # One stretch (the live loop's tail, usually the batch too): a slice of the rows
        # and of each column, nothing to join.
        indicators, warm_up = indicator_columns(close, settings)
        if warm_up >= len(close):
            _all_warm_up(len(close), warm_up)
        columns = {name: values[warm_up:] for name, values in indicators.items()}
        return slice(warm_up, len(close)), columns, warm_up, warm_up
    rows, parts, dropped, warm_up = [], [], 0, 0
    for start, end in itertools.pairwise(bounds):
        indicators, warm_up = indicator_columns(close[start:end], settings)
        rows.append(np.arange(start + warm_up, end))
        parts.append({name: values[warm_up:] for name, values in indicators.items()})
        dropped += min(warm_up, end - start)
    kept = np.concatenate(rows)
    if len(kept) == 0:
        _all_warm_up(len(close), warm_up)
    columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return kept, columns, dropped, warm_up


def _all_warm_up(bars: int, warm_up: int) -> None:
    raise ValueError(
        f"All {bars} session bars are warm-up rows (each stretch needs more than "
        f"{warm_up} bars): process a longer span of minute bars."
    )


def joined_features(bars: pd.DataFrame, indicators: dict, calendar: dict) -> pd.DataFrame:
    """The bars, then their indicators, then their calendar columns (which replace a column
    of the same name), in one concatenation where no name repeats."""
    added = {**indicators, **calendar}
    if calendar.keys() & (set(bars.columns) | indicators.keys()):
        features = pd.concat([bars, pd.DataFrame(indicators)], axis=1)
        for name, values in calendar.items():
            features[name] = values
        return features
    if not added or any(values.dtype != np.float64 for values in added.values()):
        return pd.concat([bars, pd.DataFrame(added)], axis=1)
    # Every added column is float64 (as configured): one 2-D block becomes the frame's own,
    # instead of a column each that pandas then copies into one block.
    block = np.empty((len(added), len(bars)))
    for row, values in enumerate(added.values()):
        block[row] = values
    return pd.concat([bars, pd.DataFrame(block.T, columns=list(added), copy=False)], axis=1)


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
    return pd.Series(wilder_rsi_values(close.to_numpy(dtype=float), window), index=close.index)


def wilder_rsi_values(close: np.ndarray, window: int) -> np.ndarray:
    """`wilder_rsi` of float closes."""
    # numpy on the arrays: the same element-wise operations as on Series (diff, and
    # clip(lower=0) with NaN and -0.0 kept), without their per-operation overhead.
    change = np.concatenate([[np.nan], close[1:] - close[:-1]])
    gain = wilder_average(_at_least_zero(change), window)
    loss = wilder_average(_at_least_zero(-change), window)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = 100 * gain / np.where(total > 0, total, np.nan)
    rsi = np.where(total > 0, rsi, 50.0)
    return np.where(np.isnan(gain), np.nan, rsi)


def _at_least_zero(values: np.ndarray) -> np.ndarray:
    """Series.clip(lower=0) of `values`."""
    return np.where(np.isnan(values) | (values >= 0), values, 0)


def wilder_average(values: np.ndarray, window: int) -> np.ndarray:
    """Wilder's smoothing of `values` (whose first row is empty, as after a diff): the simple
    mean of rows 1..window at row `window`, then a recursive average with alpha 1/window."""
    seeded = np.full(len(values), np.nan)
    if len(values) > window:
        # Series.mean, not ndarray.mean: pandas' NaN-skipping sum, as before.
        seeded[window] = pd.Series(values[1 : window + 1]).mean()
        seeded[window + 1 :] = values[window + 1 :]
    return pd.Series(seeded).ewm(alpha=1 / window, adjust=False).mean().to_numpy()
