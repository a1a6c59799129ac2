"""Where live reads and writes, through the project's catalog: the raw partitions and the
ledger (by the ingestion pipeline itself, for the catch-up), the prediction log and the
latest-prediction chart. With `dry_run` nothing is written: predictions are printed.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from ml_lstm.ib_connection import ConnectionSettings
from ml_lstm.pipeline_registry import for_instrument
from ml_lstm.pipelines.inference.nodes import plot_latest_prediction
from ml_lstm.pipelines.ingestion import create_pipeline as ingestion_pipeline

logger = logging.getLogger(__name__)


class LiveStore:
    """One instrument's datasets (namespace `name`) in `catalog`."""

    # Catch-ups of several instruments share the catalog's run_info and params: one at a time.
    _catch_up_lock = threading.Lock()

    def __init__(
        self,
        catalog: DataCatalog,
        name: str,
        parameters: dict[str, Any],
        connection: ConnectionSettings,
        dry_run: bool,
    ) -> None:
        self.catalog = catalog
        self.name = name
        self.parameters = parameters
        self.connection = connection
        self.dry_run = dry_run
        self._ingestion: Pipeline = for_instrument(ingestion_pipeline(), name)
        partitions = catalog.get(f"{name}.raw_minute_bars@partitions")
        self.raw_folder = Path(partitions._describe()["path"])

    def dataset(self, short_name: str) -> str:
        return f"{self.name}.{short_name}"

    def catch_up(self, now: pd.Timestamp) -> None:
        """The batch ingestion (plan_backfill, fetch_minute_bars) up to `now`, the feed's
        time, which is the run's start for it: sessions still open are `partial`."""
        if self.dry_run:
            logger.info("%s: dry run, no catch-up backfill (it would write)", self.name)
            return
        ingestion = {**self.parameters["ingestion"], "source": "ib", "end_date": None}
        catalog = self.catalog
        with self._catch_up_lock:
            catalog["params:ingestion"] = ingestion
            catalog[self.dataset("ib_connection")] = {
                "host": self.connection.host,
                "port": self.connection.port,
                "client_id": self.connection.client_id,
            }
            catalog.save("run_info", {"run_id": "live-catch-up", "started_at": now.isoformat()})
            SequentialRunner().run(self._ingestion, catalog)

    def raw_table(self) -> pd.DataFrame:
        return self.catalog.load(self.dataset("raw_minute_bars@table"))

    def stored_session(self, session: str) -> pd.DataFrame | None:
        """A session's raw file as stored, values exactly as written (or None)."""
        path = self.raw_folder / f"{session}.csv"
        if not path.is_file():
            return None
        # pandas 3 parses floats exactly (round trip), so the file is rewritten as it was.
        return pd.read_csv(path)

    def write_session(self, session: str, raw: pd.DataFrame) -> None:
        if not self.dry_run:
            self.catalog.save(self.dataset("raw_minute_bars@partitions"), {session: raw})

    def append_prediction(self, row: pd.DataFrame) -> None:
        if self.dry_run:
            print(f"[dry run] {self.name}: {row.iloc[0].to_dict()}", flush=True)
            return
        self.catalog.save(self.dataset("predictions"), row)

    def refresh_chart(self, features: pd.DataFrame, test_range: pd.DataFrame, run_id: str) -> None:
        """inference's latest-prediction chart (PNG and plotly) with this run's last row."""
        if self.dry_run:
            return
        predictions = self.catalog.load(self.dataset("predictions"))
        png, plotly = plot_latest_prediction(
            features,
            predictions,
            test_range,
            self.parameters["instruments"][self.name],
            self.parameters["inference"],
            {"run_id": run_id},
        )
        self.catalog.save(self.dataset("latest_prediction_plot"), png)
        self.catalog.save(self.dataset("latest_prediction_chart"), plotly)
