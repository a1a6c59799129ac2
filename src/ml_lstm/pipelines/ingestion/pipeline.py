from kedro.pipeline import Node, Pipeline

from .nodes import fetch_minute_bars, plan_backfill


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=plan_backfill,
                inputs=["stored_minute_bars", "params:instrument", "params:ingestion"],
                outputs="sessions_to_fetch",
                name="plan_backfill",
            ),
            Node(
                func=fetch_minute_bars,
                inputs=["sessions_to_fetch", "params:instrument", "params:ingestion"],
                outputs="raw_minute_bars",
                name="fetch_minute_bars",
            ),
        ]
    )
