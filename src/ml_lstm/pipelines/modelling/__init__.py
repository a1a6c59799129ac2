"""Modelling: time-ordered splits, training-only scaling, LSTM training, evaluation against
baselines, a versioned registry with champion/challenger promotion, and warm-start retraining."""

from .pipeline import create_pipeline, create_retraining_pipeline

__all__ = ["create_pipeline", "create_retraining_pipeline"]
