from kedro.pipeline import Node, Pipeline

from .nodes import (
    accept_minute_bars,
    add_features,
    analyse_gaps,
    fill_gaps,
    list_sessions,
    locate_gaps,
    plot_gaps,
    resample_to_session_bars,
    validate_minute_bars,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=validate_minute_bars,
                inputs=[
                    "raw_minute_bars@table",
                    "params:instrument",
                    "params:data_processing",
                    "run_info",
                ],
                outputs=["valid_minute_bars", "rejected_minute_bars", "validation_report"],
                name="validate_minute_bars",
            ),
            Node(
                func=accept_minute_bars,
                inputs=[
                    "valid_minute_bars",
                    "rejected_minute_bars",
                    "validation_report",
                    "params:data_processing",
                ],
                outputs="minute_bars",
                name="accept_minute_bars",
            ),
            Node(
                func=list_sessions,
                inputs=["minute_bars", "params:instrument", "run_info"],
                outputs="sessions",
                name="list_sessions",
            ),
            Node(
                func=locate_gaps,
                inputs=["minute_bars", "sessions"],
                outputs="minute_gaps",
                name="locate_gaps",
            ),
            Node(
                func=analyse_gaps,
                inputs=[
                    "minute_gaps",
                    "sessions",
                    "ingestion_ledger",
                    "params:instrument",
                    "params:data_processing",
                ],
                outputs="gap_report",
                name="analyse_gaps",
            ),
            Node(
                func=plot_gaps,
                inputs="gap_report",
                outputs=["gap_chart", "gap_calendar_chart"],
                name="plot_gaps",
            ),
            Node(
                func=fill_gaps,
                inputs=["minute_bars", "minute_gaps", "params:data_processing"],
                outputs="filled_minute_bars",
                name="fill_gaps",
            ),
            Node(
                func=resample_to_session_bars,
                inputs=["filled_minute_bars", "sessions", "params:data_processing"],
                outputs="hourly_bars",
                name="resample_to_session_bars",
            ),
            Node(
                func=add_features,
                inputs=["hourly_bars", "params:instrument", "params:data_processing"],
                outputs=["features", "feature_list"],
                name="add_features",
            ),
        ]
    )
