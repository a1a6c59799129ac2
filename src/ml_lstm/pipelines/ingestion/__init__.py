"""Ingestion: minute bars from a source into raw per-session CSV files."""

from __future__ import annotations

__all__ = ["create_pipeline"]


def __getattr__(name: str) -> object:
    # The pipeline (its nodes, the IB client, the calendars) is imported when Kedro asks for
    # it, not by every import of a module of this package (a CSV import needs none of it).
    if name == "create_pipeline":
        from .pipeline import create_pipeline

        return create_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
