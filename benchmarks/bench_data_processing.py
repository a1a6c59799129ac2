"""data_processing on 10 years of 1-minute bars against a minimal plain-pandas script.

The input is ~2,500 session files (~1M rows) of the seeded synthetic market, generated once
into a temporary folder. "ours" is `kedro run --pipelines data_processing` (a KedroSession
on a copy of the project's conf/) including validation, gap report and chart, gap filling,
resampling and features; the reference reads the same files, resamples to session-aligned
hourly bars and computes the same price features with plain pandas, without any checks.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import measure, measure_process, report

ROOT = Path(__file__).resolve().parents[1]
WORKDIR = Path(tempfile.gettempdir()) / "ml_lstm_bench_data_processing"
START, END = "2015-01-02", "2024-12-31"
MODULE = "benchmarks.bench_data_processing"


def raw_folder(project: Path) -> Path:
    return project / "data" / "01_raw" / "nvda" / "minute_bars"


def prepare_project() -> Path:
    """A project copy (pyproject, conf/base) whose raw folder holds 10 years of minute bars."""
    from ml_lstm.pipelines.ingestion.nodes import to_raw_format
    from ml_lstm.synthetic_market import MarketProfile, SyntheticMarket

    project = WORKDIR / "project"
    folder = raw_folder(project)
    done = WORKDIR / f"generated-{START}-{END}"
    if not done.exists():
        shutil.rmtree(WORKDIR, ignore_errors=True)
        folder.mkdir(parents=True)
        market = SyntheticMarket(MarketProfile(symbol="NVDA", calendar="XNYS", start_price=48.0))
        for session in market.sessions(START, END):
            bars = to_raw_format(market.session_bars(session))
            bars.to_csv(folder / f"{session:%Y-%m-%d}.csv", index=False)
        done.touch()
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.rmtree(project / "conf", ignore_errors=True)
    (project / "conf" / "local").mkdir(parents=True)
    shutil.copytree(ROOT / "conf" / "base", project / "conf" / "base")
    # Kedro wants a source folder inside the project; ml_lstm itself is installed.
    (project / "src").mkdir(exist_ok=True)
    return project


def run_ours(project: str) -> None:
    import os

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
    bootstrap_project(Path(project))
    with KedroSession.create(project_path=Path(project)) as session:
        session.run(pipeline_names=["data_processing"])


def run_reference(project: str) -> None:
    """Read every session file, resample to hourly bars aligned to the session open,
    compute the price features, write both tables."""
    import exchange_calendars as xcals
    import numpy as np
    import pandas as pd

    folder = raw_folder(Path(project))
    bars = pd.concat(
        [pd.read_csv(path) for path in sorted(folder.glob("*.csv"))], ignore_index=True
    )
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True, format="ISO8601")
    schedule = xcals.get_calendar("XNYS", start=START, end=END).schedule
    local = bars["timestamp"].dt.tz_convert("America/New_York")
    day = pd.DatetimeIndex(local.dt.normalize().dt.tz_localize(None))
    sessions = schedule.reindex(day).set_axis(bars.index)
    step = pd.Timedelta("60min")
    bar_start = sessions["open"] + (bars["timestamp"] - sessions["open"]) // step * step
    bars["bar_start"] = bar_start
    bars["bar_end"] = (bar_start + step).where(
        bar_start + step <= sessions["close"], sessions["close"]
    )
    bars["session"] = day.strftime("%Y-%m-%d")
    hourly = (
        bars.groupby("bar_start")
        .agg(
            bar_end=("bar_end", "first"),
            session=("session", "first"),
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
            minutes=("close", "size"),
        )
        .reset_index()
        .rename(columns={"bar_start": "timestamp"})
    )
    out = Path(project) / "reference"
    out.mkdir(exist_ok=True)
    hourly.to_csv(out / "hourly_bars.csv", index=False)

    close = hourly["close"]
    features = hourly.copy()
    features["return"] = close.pct_change()
    features["log_return"] = np.log(close).diff()
    for window in (5, 20):
        features[f"sma_{window}"] = close.rolling(window).mean()
    for window in (12, 26):
        features[f"ema_{window}"] = close.ewm(span=window, adjust=False).mean()
    change = close.diff()
    # Wilder's averages: the mean of the first 14 changes, then alpha 1/14.
    gain, loss = change.clip(lower=0), (-change).clip(lower=0)
    gain.iloc[:15], loss.iloc[:15] = np.nan, np.nan
    gain.iloc[14], loss.iloc[14] = (
        change.iloc[1:15].clip(lower=0).mean(),
        (-change.iloc[1:15]).clip(lower=0).mean(),
    )
    gain = gain.ewm(alpha=1 / 14, adjust=False).mean()
    loss = loss.ewm(alpha=1 / 14, adjust=False).mean()
    features["rsi_14"] = 100 * gain / (gain + loss)
    features["macd"] = features["ema_12"] - features["ema_26"]
    features["macd_signal"] = features["macd"].ewm(span=9, adjust=False).mean()
    features["volatility_20"] = features["log_return"].rolling(20).std()
    features.iloc[33:].to_csv(out / "features.csv", index=False)


def main() -> list[dict]:
    project = str(prepare_project())
    ours = measure(MODULE, "run_ours", repeat=3, project=project)
    reference = measure(MODULE, "run_reference", repeat=3, project=project)
    rows = [
        report(
            "data_processing 10y 1-min bars (kedro run --pipelines data_processing)",
            ours,
            reference,
            "plain pandas read/resample/features",
        )
    ]
    # The goal of #11: whole processes, start-up, imports and registration included.
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    kedro = str(Path(sys.executable).parent / "kedro")
    script = f"from {MODULE} import run_reference; run_reference({project!r})"
    ours_process = measure_process(
        [kedro, "run", "--pipelines", "data_processing"], Path(project), repeat=3, env=env
    )
    reference_process = measure_process([sys.executable, "-c", script], ROOT, repeat=3, env=env)
    rows.append(
        report(
            "data_processing 10y, whole processes (`kedro run --pipelines data_processing`)",
            ours_process,
            reference_process,
            "python plain pandas script",
        )
    )
    return rows
