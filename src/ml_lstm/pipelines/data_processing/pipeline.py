from kedro.pipeline import Node, Pipeline

from .nodes import add_features, clean_minute_bars, combine_minute_bars, resample_to_session_bars


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=combine_minute_bars,
                inputs="raw_minute_bars",
                outputs="combined_minute_bars",
                name="combine_minute_bars",
            ),
            Node(
                func=clean_minute_bars,
                inputs="combined_minute_bars",
                outputs="minute_bars",
                name="clean_minute_bars",
            ),
            Node(
                func=resample_to_session_bars,
                inputs=["minute_bars", "params:instrument", "params:data_processing"],
                outputs="hourly_bars",
                name="resample_to_session_bars",
            ),
            Node(
                func=add_features,
                inputs=["hourly_bars", "params:data_processing"],
                outputs="features",
                name="add_features",
            ),
        ]
    )
