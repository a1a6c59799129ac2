"""What Kedro's ParallelRunner needs from this project's catalog.

The catalog declares some in-memory intermediates as `kedro.io.MemoryDataset` (so that
kedro-viz places them in a layer). Under ParallelRunner each node runs in its own process,
and a plain MemoryDataset saved there never reaches the next node's process: Kedro only
shares the datasets it creates itself (`SharedMemoryDataset`, held by its manager process).
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset, SharedMemoryDataset
from kedro.io.data_catalog import SharedMemoryDataCatalog


class SharedMemoryIntermediatesHook:
    """Swaps the declared MemoryDatasets a multi-process run writes for shared ones."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        # Kedro gives ParallelRunner (only) a SharedMemoryDataCatalog; the runner then hands
        # every SharedMemoryDataset its manager before the first node runs.
        if not isinstance(catalog, SharedMemoryDataCatalog):
            return
        for name in pipeline.all_outputs():
            dataset = catalog.get(name, fallback_to_runtime_pattern=True)
            if type(dataset) is MemoryDataset:
                catalog[name] = SharedMemoryDataset()
