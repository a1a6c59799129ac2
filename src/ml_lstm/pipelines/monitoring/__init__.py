"""Monitoring: every logged prediction scored, the live scorecard, alerts, retrain policy."""

from .pipeline import create_decision_pipeline, create_pipeline

__all__ = ["create_decision_pipeline", "create_pipeline"]
