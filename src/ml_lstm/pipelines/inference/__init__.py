"""Inference: the latest model's prediction of the next bar, appended to a log."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
