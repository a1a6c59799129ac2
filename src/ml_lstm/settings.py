"""Project settings. https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from kedro.config import OmegaConfigLoader

from ml_lstm.hooks import InstrumentsHook, RunInfoHook

HOOKS = (InstrumentsHook(), RunInfoHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment lists only the keys it changes instead of replacing whole blocks.
    "merge_strategy": {"parameters": "soft"},
}
