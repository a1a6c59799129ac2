"""The Dask cluster DaskRunner uses: the configured scheduler or a LocalCluster; its workers."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

logger = logging.getLogger(__name__)


class scheduler_address:
    """The scheduler address: the given or configured one, else a LocalCluster's."""

    def __init__(self, address: str | None, n_workers: int | None) -> None:
        self._address = address
        self._n_workers = n_workers
        self._local: Any = None

    def __enter__(self) -> str:
        import dask

        address = self._address or dask.config.get("scheduler-address", None)
        if address:
            return address
        from distributed import LocalCluster

        # One single-threaded process per core: training seeds TensorFlow process-wide.
        self._local = LocalCluster(
            n_workers=self._n_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        logger.info("No DASK_SCHEDULER_ADDRESS: started a LocalCluster (%s).", self._local)
        return self._local.scheduler_address

    def __exit__(self, *exc_info: Any) -> None:
        if self._local is not None:
            self._local.close()


def warn_about_threads(client: Any) -> None:
    workers = client.scheduler_info(n_workers=-1)["workers"]
    threaded = sorted(address for address, info in workers.items() if info["nthreads"] > 1)
    if threaded:
        logger.warning(
            "Workers %s run several threads: two instruments there would train at once in one "
            "process, whose random seeds are process-wide. Start workers with --nthreads 1 "
            "for results equal to a sequential run.",
            ", ".join(threaded),
        )


def tensorflow_threads_per_worker(client: Any) -> dict[str, int]:
    """Each worker's share of its machine's cores, for TensorFlow's thread pools."""
    cores = client.run(os.cpu_count)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    per_host: dict[str, int] = defaultdict(int)
    for info in workers.values():
        per_host[info["host"]] += 1
    return {
        address: max(1, (cores.get(address) or 1) // per_host[info["host"]])
        for address, info in workers.items()
    }
