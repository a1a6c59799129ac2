"""Project pipelines: each stage as one namespaced copy per enabled instrument."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from ml_lstm.instruments import enabled_instrument_names
from ml_lstm.pipelines import (
    data_processing,
    inference,
    ingestion,
    modelling,
    monitoring,
    tuning,
)

STAGES = {
    "ingestion": ingestion.create_pipeline,
    "data_processing": data_processing.create_pipeline,
    "modelling": modelling.create_pipeline,
    "inference": inference.create_pipeline,
}

# The scheduled update's stages in order (retraining, when decided, runs after the decision).
UPDATE_STAGES = ("ingestion", "data_processing", "retraining_decision", "inference", "monitoring")

# Inputs shared by every instrument rather than namespaced per instrument.
SHARED_INPUTS = {"run_info"}


def for_instrument(pipeline: Pipeline, instrument: str) -> Pipeline:
    """`pipeline` in the namespace `instrument`, reading that instrument's parameters.

    Stage parameters (params:modelling, ...) stay shared; `params:instrument` maps to
    `params:instruments.<instrument>`.
    """
    parameters = {
        name: f"params:instruments.{instrument}" if name == "params:instrument" else name
        for name in pipeline.inputs()
        if name.startswith("params:")
    }
    return Pipeline(
        pipeline,
        namespace=instrument,
        parameters=parameters,
        inputs=SHARED_INPUTS & pipeline.inputs(),
    )


def register_pipelines() -> dict[str, Pipeline]:
    """Registers the four stages, `__default__` (all four in order) and `retraining`.

    `retraining` warm-starts the champion on recent data; it writes the same registry
    datasets as `modelling`, so it runs on its own rather than in `__default__`.
    """
    instruments = enabled_instrument_names()

    def per_instrument(create) -> Pipeline:
        return sum((for_instrument(create(), name) for name in instruments), Pipeline([]))

    pipelines = {stage: per_instrument(create) for stage, create in STAGES.items()}
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines["retraining"] = per_instrument(modelling.create_retraining_pipeline)
    # Scoring, scorecard and alerts; the retraining decision. `update` is what the project
    # command `kedro run --pipelines update` runs (see ml_lstm/update.py), minus retraining,
    # which that command inserts only for the instruments whose decision says so.
    pipelines["monitoring"] = per_instrument(monitoring.create_pipeline)
    pipelines["retraining_decision"] = per_instrument(monitoring.create_decision_pipeline)
    pipelines["update"] = sum((pipelines[name] for name in UPDATE_STAGES), Pipeline([]))
    # An Optuna search per instrument (`kedro run --pipelines tuning`): long, run on demand.
    pipelines["tuning"] = per_instrument(tuning.create_pipeline)
    return pipelines
