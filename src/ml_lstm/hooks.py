"""Project hooks: which instruments are enabled, and the run's identity for the registry."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from ml_lstm.instruments import set_active_instruments


class InstrumentsHook:
    """Lets the pipeline registry see the instruments of the environment being run."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        set_active_instruments(context.params.get("instruments", {}))


class RunInfoHook:
    """Provides `run_info` (the run's save version) so artefacts can name their version."""

    @hook_impl
    def after_catalog_created(self, catalog: Any, save_version: str) -> None:
        catalog["run_info"] = {"run_id": save_version}
