"""Data processing: raw minute bars to session-aligned hourly bars and features."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
