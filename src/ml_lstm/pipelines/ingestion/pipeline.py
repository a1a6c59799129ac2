from kedro.pipeline import Node, Pipeline

from .nodes import fetch_minute_bars, plan_backfill


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=plan_backfill,
                inputs=[
                    "stored_minute_bars",
                    "stored_ingestion_ledger",
                    "params:instrument",
                    "params:ingestion",
                    "run_info",
                ],
                outputs="sessions_to_fetch",
                name="plan_backfill",
            ),
            # A generator node: each yielded batch is saved before the next is fetched.
            Node(
                func=fetch_minute_bars,
                inputs=[
                    "sessions_to_fetch",
                    "stored_ingestion_ledger",
                    "params:instrument",
                    "params:ingestion",
                    "ib_connection",
                    "run_info",
                ],
                outputs=["raw_minute_bars@partitions", "ingestion_ledger"],
                name="fetch_minute_bars",
            ),
        ]
    )
