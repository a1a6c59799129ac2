"""Tuning: an Optuna search over the LSTM's configuration on walk-forward folds that end
before the test split, its report and charts, the best configuration scored once on the
test split, and a parameters file to adopt it."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
