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

from ml_lstm.atomic_files import locked, write_text_atomically
from ml_lstm.ib_connection import ConnectionSettings
from ml_lstm.pipeline_registry import for_instrument
from ml_lstm.pipelines.inference.nodes import plot_latest_prediction
from ml_lstm.pipelines.ingestion import create_pipeline as ingestion_pipeline

logger = logging.getLogger(__name__)


def save_session_file(path: Path, text: str) -> str:
    """Writes a session's raw file `text` atomically, as a read-modify-write under the file's
    cross-process lock (`atomic_files.locked`), and returns what the file holds afterwards.

    Live's text extends what it stored before. If another writer (a batch ingestion of the
    same session) has replaced the file meanwhile with rows that are not a start of `text`,
    its rows are kept and only live's rows after its last one are added: neither writer's
    rows are lost, and the caller learns which minutes are stored.
    """
    with locked(path):
        stored = path.read_text(encoding="utf-8") if path.is_file() else None
        if stored is not None and not text.startswith(stored):
            text = merge_rows(stored, text)
        if text != stored:
            write_text_atomically(path, text)
    return text


def merge_rows(stored: str, ours: str) -> str:
    """`stored` (a raw CSV) with the rows of `ours` that come after its last row; rows start
    with their ISO-8601 UTC time, so text order is time order."""
    lines = stored.splitlines(keepends=True)
    header, *rows = ours.splitlines(keepends=True)
    if len(lines) < 2:
        return ours
    if lines[0] != header:
        raise ValueError(
            f"Another writer stored this session with the columns {lines[0].strip()!r}, "
            f"live writes {header.strip()!r}: move one of them aside and restart kedro live."
        )
    last = lines[-1].split(",", 1)[0]
    newer = [row for row in rows if row.split(",", 1)[0] > last]
    joined = stored if stored.endswith("\n") else stored + "\n"
    return joined + "".join(newer)


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
        simulated: bool = False,
    ) -> None:
        self.catalog = catalog
        self.name = name
        self.parameters = parameters
        self.connection = connection
        self.dry_run = dry_run
        # The connection is kedro live's own TWS simulator: the ledger says `simulator`.
        self.simulated = simulated
        self._ingestion: Pipeline = for_instrument(ingestion_pipeline(), name)
        partitions = catalog.get(f"{name}.raw_minute_bars@partitions")
        self.raw_folder = Path(partitions._describe()["path"])
        # The prediction log's dataset, looked up once: at each bar the row goes straight
        # to its locked append (the catalog's lookup and log line cost ~2 ms a bar).
        self._predictions = catalog.get(self.dataset("predictions"))

    def dataset(self, short_name: str) -> str:
        return f"{self.name}.{short_name}"

    def catch_up(self, now: pd.Timestamp) -> None:
        """The batch ingestion (plan_backfill, fetch_minute_bars) up to `now`, the feed's
        time, which is the run's start for it: sessions still open are `partial`."""
        if self.dry_run:
            logger.info("%s: dry run, no catch-up backfill (it would write)", self.name)
            return
        ingestion = {**self.parameters["ingestion"], "source": "ib", "end_date": None}
        if self.simulated:
            server = {
                "host": self.connection.host,
                "port": self.connection.port,
                "client_id": self.connection.client_id,
            }
            ingestion.update(source="simulator", running_simulator=server)
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

    def session_file(self, session: str) -> Path:
        """A session's raw partition (as SessionPartitionsDataset names it)."""
        return self.raw_folder / f"{session}.csv"

    def stored_text(self, session: str) -> str | None:
        """A session's raw file as stored (or None). pandas 3 parses floats exactly (round
        trip), so rows read from it are written again as they were."""
        path = self.session_file(session)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def save_session(self, session: str, text: str) -> str:
        """Stores a session's raw file; returns what it holds afterwards (see save_session_file)."""
        if self.dry_run:
            return text
        return save_session_file(self.session_file(session), text)

    def append_prediction(self, row: pd.DataFrame) -> None:
        if self.dry_run:
            print(f"[dry run] {self.name}: {row.iloc[0].to_dict()}", flush=True)
            return
        self._predictions.save(row)

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
