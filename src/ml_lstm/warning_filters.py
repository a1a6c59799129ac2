"""Python warnings that no user of this project can act on, silenced one by one.

`ignore_unactionable_warnings` runs before Kedro loads any plugin's commands (it is the
project's `kedro.init` entry point, see pyproject.toml) and again from settings.py, for
sessions made without the CLI (notebooks, `python -m ml_lstm`, tests).
"""

from __future__ import annotations

import logging
import re
import warnings

# kedro-mlflow's `kedro mlflow` commands load with every kedro command, and importing them
# defines a PythonModel whose `predict` has no type hints, which MLflow warns about on
# every command.
UNACTIONABLE = ("Add type hints to the `predict` method",)


class _Unactionable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in UNACTIONABLE)


_FILTER = _Unactionable()


def ignore_unactionable_warnings() -> None:
    # Kedro 1.7's config loader registers its resolvers with omegaconf's deprecated
    # register_new_resolver(): two UserWarnings per run that hide real warnings. Only that
    # message, only from Kedro's config module.
    warnings.filterwarnings(
        "ignore",
        message=r"register_new_resolver\(\) is deprecated",
        category=UserWarning,
        module=r"kedro\.config\.omegaconf_config",
    )
    for text in UNACTIONABLE:
        warnings.filterwarnings("ignore", message=f".*{re.escape(text)}", category=UserWarning)
    # MLflow shows its warnings with a "once" filter of its own in front of ours; Kedro's
    # logging then carries them as records of the `py.warnings` logger, dropped here.
    captured = logging.getLogger("py.warnings")
    if _FILTER not in captured.filters:
        captured.addFilter(_FILTER)
