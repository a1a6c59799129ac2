"""Modelling: time-ordered splits, training-only scaling, LSTM training and evaluation."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
