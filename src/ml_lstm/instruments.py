"""Which instruments run: the enabled entries of the `instruments` parameter block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_active_instruments: dict[str, dict[str, Any]] | None = None


def set_active_instruments(instruments: dict[str, dict[str, Any]]) -> None:
    """Records the instruments of the running context (called by InstrumentsHook)."""
    global _active_instruments  # noqa: PLW0603
    _active_instruments = instruments


def enabled_instrument_names(instruments: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Names of the enabled instruments, in configuration order."""
    if instruments is None:
        instruments = _active_instruments if _active_instruments is not None else _load_base()
    names = [name for name, spec in instruments.items() if spec.get("enabled", True)]
    for name in names:
        if not name.isidentifier():
            raise ValueError(
                f"Instrument key {name!r} in parameters 'instruments' must be a Python "
                "identifier (it becomes a Kedro namespace), e.g. 'nvda' or 'xagusd'."
            )
    return names


def _load_base() -> dict[str, dict[str, Any]]:
    # Outside a Kedro session (e.g. `kedro registry list`) read base + local config directly.
    from kedro.config import OmegaConfigLoader
    from kedro.framework.project import settings

    project_path = Path.cwd()
    conf_source = project_path / settings.CONF_SOURCE
    if not conf_source.is_dir():
        return {}
    loader = OmegaConfigLoader(
        conf_source=str(conf_source),
        base_env="base",
        default_run_env="local",
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"].get("instruments", {})


def namespace_problems(requested: list[str], instruments: dict[str, dict[str, Any]]) -> list[str]:
    """Why each requested namespace (`--namespaces`) cannot run, one sentence each.

    A namespace is an instrument key; it runs only when that instrument is enabled.
    """
    enabled = enabled_instrument_names(instruments)
    problems = []
    for name in requested:
        if name in enabled:
            continue
        if name in instruments:
            problems.append(
                f"Instrument {name!r} is disabled (instruments.{name}.enabled is false). "
                f"Enable it for one run with --params instruments.{name}.enabled=true, or for "
                f"good with `enabled: true` under instruments.{name} in "
                "conf/local/parameters.yml."
            )
        else:
            problems.append(
                f"No instrument {name!r} in the 'instruments' parameters (configured: "
                f"{', '.join(instruments) or 'none'}; enabled: {', '.join(enabled) or 'none'}). "
                "Add a block for it in conf/base/parameters.yml, or pick a configured one."
            )
    return problems
