"""The modelling nodes on a real hourly file from ../shared/data: the test-split table.

    .venv/bin/python -m benchmarks.evaluate_real_data [CSV] [--instrument xagusd]

Default file: ../shared/data/silver-futures-hourly/SI_futures_1h.csv (COMEX silver futures,
hourly, UTC bar starts). Bars are assigned to the instrument calendar's sessions (bars
outside any session are dropped), the project's `add_features` computes the features with
conf/base parameters, and split_by_time -> fit_scaler -> train_lstm ->
forecast_test_split -> evaluate_forecasts run in memory: nothing is written under data/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd
from kedro.config import OmegaConfigLoader

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = PROJECT.parent / "shared/data/silver-futures-hourly/SI_futures_1h.csv"


def session_bars(path: Path, instrument: dict, frequency: str) -> pd.DataFrame:
    """The file's bars with `bar_end`, `session`, `minutes` as the feature step expects."""
    from ml_lstm.calendars import session_of, trading_sessions

    bars = pd.read_csv(path)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True, format="ISO8601")
    first, last = bars["timestamp"].iloc[[0, -1]]
    sessions = trading_sessions(
        instrument["calendar"], first - pd.Timedelta(days=1), last + pd.Timedelta(days=1)
    )
    position = session_of(bars["timestamp"], sessions)
    inside = position >= 0
    print(f"{path.name}: {len(bars)} bars, {int((~inside).sum())} outside calendar sessions")
    bars, position = bars.loc[inside].reset_index(drop=True), position[inside]
    closes = sessions["close"].to_numpy()[position]
    bars["bar_end"] = (bars["timestamp"] + pd.Timedelta(frequency)).where(
        bars["timestamp"] + pd.Timedelta(frequency) <= closes, closes
    )
    bars["session"] = pd.DatetimeIndex(sessions.index[position]).strftime("%Y-%m-%d")
    bars["minutes"] = int(pd.Timedelta(frequency) / pd.Timedelta("1min"))
    bars["filled_share"] = 0.0
    columns = ["timestamp", "bar_end", "session", "open", "high", "low", "close", "volume"]
    return bars[[*columns, "minutes", "filled_share"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_FILE))
    parser.add_argument("--instrument", default="xagusd", help="calendar from this instrument")
    args = parser.parse_args(argv)
    if not Path(args.csv).is_file():
        print(f"{args.csv} is absent (../shared/data is only on development machines).")
        return 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ml_lstm.forecasting.baselines import BASELINES
    from ml_lstm.pipelines.data_processing.nodes import add_features
    from ml_lstm.pipelines.modelling import nodes

    parameters = OmegaConfigLoader(
        conf_source=str(PROJECT / "conf"), base_env="base", default_run_env="base"
    )["parameters"]
    instrument = parameters["instruments"][args.instrument]
    processing, modelling = parameters["data_processing"], parameters["modelling"]
    bars = session_bars(Path(args.csv), instrument, processing["frequency"])
    features, _ = add_features(bars, instrument, processing)
    table = nodes.split_by_time(features, modelling)
    scaler = nodes.fit_scaler(table, modelling)
    model, history = nodes.train_lstm(table, scaler, modelling)
    forecasts = nodes.forecast_test_split(model, table, scaler, modelling)
    metrics = nodes.evaluate_forecasts(forecasts, table, modelling)
    evaluation = metrics["evaluation"]
    print(
        f"\n{Path(args.csv).name}: {len(features)} feature rows, test {evaluation['first']} .. "
        f"{evaluation['last']} ({evaluation['rows']} rows), {history['epochs_run']} epochs\n"
    )
    print("| model | MAE | RMSE | MAPE % | MASE | directional accuracy [95% CI] |")
    print("|---|---|---|---|---|---|")
    for name in ("lstm", *BASELINES):
        row = metrics[name]
        interval = row["directional_accuracy_ci95"]
        direction = (
            f"{row['directional_accuracy']:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
            if interval
            else "-"
        )
        print(
            f"| {name} | {row['mae']:.4f} | {row['rmse']:.4f} | {row['mape']:.3f} | "
            f"{row['mase']:.4f} | {direction} |"
        )
    print(f"\nLSTM beats persistence: {evaluation['lstm_beats_persistence']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
