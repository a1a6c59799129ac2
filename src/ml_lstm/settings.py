"""Project settings. https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from ml_lstm.hooks import InstrumentsHook, RunInfoHook
from ml_lstm.instruments import UniverseConfigLoader
from ml_lstm.runners.parallel import SharedMemoryIntermediatesHook
from ml_lstm.tracking import TrackingHook
from ml_lstm.warning_filters import ignore_unactionable_warnings

# Warnings nobody can act on (also silenced before plugins load: see warning_filters).
ignore_unactionable_warnings()

# TrackingHook after RunInfoHook: it tags the MLflow run with run_info's git commit.
HOOKS = (InstrumentsHook(), RunInfoHook(), SharedMemoryIntermediatesHook(), TrackingHook())

# kedro-mlflow's own hook would start MLflow on every run, even with tracking off; the
# project's tracking hook (ml_lstm.tracking) drives it only where conf/<env>/mlflow.yml
# switches tracking on.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)

# OmegaConfigLoader, with conf/<env>/universe.yml merged beneath the `instruments` parameters.
CONFIG_LOADER_CLASS = UniverseConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment lists only the keys it changes instead of replacing whole blocks.
    "merge_strategy": {"parameters": "soft"},
}
