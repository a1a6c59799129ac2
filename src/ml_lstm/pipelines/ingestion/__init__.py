"""Ingestion: minute bars from a source into raw per-session CSV files."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
