"""Which instruments run: the enabled entries of the `instruments` parameter block.

The block is `conf/base/parameters.yml`'s `instruments` with the universe
(`conf/<env>/universe.yml`: `defaults` plus one entry per instrument, all off unless
enabled) merged beneath it by `UniverseConfigLoader`, the project's config loader: every
entry of the universe is an instrument a run can enable with
`--params instruments.<key>.enabled=true`, with no code.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf

UNIVERSE_FILE = "universe.yml"

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
    from kedro.framework.project import settings

    project_path = Path.cwd()
    conf_source = project_path / settings.CONF_SOURCE
    if not conf_source.is_dir():
        return {}
    loader = UniverseConfigLoader(
        conf_source=str(conf_source),
        base_env="base",
        default_run_env="local",
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"].get("instruments", {})


class UniverseConfigLoader(OmegaConfigLoader):
    """Kedro's OmegaConfigLoader whose `parameters` hold the universe's instruments too.

    Each universe entry lies beneath the `instruments` parameters of the same name, so
    parameters files and runtime params (`--params instruments.aapl.enabled=true`) win
    key by key.
    """

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key != "parameters" or key in self:
            return super().__getitem__(key)
        # A run reads `parameters` about six times (hooks, context, validation), each a
        # parse of every parameters file: parsed once per environment and runtime params.
        cache_key = (self.env, repr(self.runtime_params))
        cache = self.__dict__.setdefault("_parameters_cache", {})
        if cache_key not in cache:
            cache[cache_key] = self._parameters_with_universe()
        return copy.deepcopy(cache[cache_key])

    def _parameters_with_universe(self) -> dict[str, Any]:
        config = super().__getitem__("parameters")
        universe = self.universe()
        if not universe:
            return config
        declared = config.get("instruments") or {}
        # Declared instruments first (their order is the run order), then the universe's.
        instruments = {
            name: deep_merge(universe.get(name, {}), spec) for name, spec in declared.items()
        }
        instruments.update({name: spec for name, spec in universe.items() if name not in declared})
        return {**config, "instruments": instruments}

    def universe(self) -> dict[str, dict[str, Any]]:
        """The universe's instruments, base overridden by the run environment's file."""
        conf_source = Path(str(self.conf_source))
        environments = [self.base_env, self.env or self.default_run_env]
        instruments: dict[str, dict[str, Any]] = {}
        for environment in dict.fromkeys(name for name in environments if name):
            path = conf_source / environment / UNIVERSE_FILE
            if path.is_file():
                instruments = deep_merge(instruments, read_universe(path))
        return instruments


def read_universe(path: Path) -> dict[str, dict[str, Any]]:
    """The instruments of one universe file, each entry merged onto its `defaults`."""
    content = OmegaConf.to_container(OmegaConf.load(path)) or {}
    unknown = set(content) - {"defaults", "instruments"}
    if not isinstance(content, dict) or unknown:
        raise ValueError(
            f"{path}: expected the keys 'defaults' (optional) and 'instruments', "
            f"found {sorted(unknown) if isinstance(content, dict) else type(content).__name__}."
        )
    defaults = content.get("defaults") or {}
    instruments = content.get("instruments") or {}
    for name, spec in instruments.items():
        if not str(name).isidentifier() or not isinstance(spec, dict):
            raise ValueError(
                f"{path}: instruments.{name} must be a mapping under a Python identifier key "
                "(it becomes a Kedro namespace), e.g. 'aapl: {symbol: AAPL}'."
            )
    return {name: deep_merge(defaults, spec) for name, spec in instruments.items()}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` merged in, key by key (nested dicts merged, not replaced)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


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
                f"{_listed(list(instruments))}; enabled: {_listed(enabled)}). "
                "Add it to conf/base/universe.yml, or pick a configured one."
            )
    return problems


def _listed(names: list[str], shown: int = 12) -> str:
    # A universe can hold hundreds of instruments: name the first few and the count.
    if len(names) <= shown:
        return ", ".join(names) or "none"
    return f"{', '.join(names[:shown])}, ... ({len(names)} in all)"
