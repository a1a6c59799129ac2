from kedro.pipeline import Node, Pipeline

from .nodes import (
    check_served_model,
    forecast_test_range,
    plot_latest_prediction,
    plot_test_range,
    plot_training_curves,
    predict_next_close,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Serve the champion (or a pinned version): predict, log, backtest and chart."""
    return Pipeline(
        [
            Node(
                func=check_served_model,
                # champion_record orders a full run's inference after modelling's promotion.
                inputs=[
                    "served_model",
                    "champion_record",
                    "features",
                    "feature_list",
                    "params:modelling",
                    "params:data_processing",
                ],
                outputs="checked_model",
                name="check_served_model",
            ),
            Node(
                func=predict_next_close,
                inputs=[
                    "checked_model",
                    "features",
                    "params:instrument",
                    "params:inference",
                    "run_info",
                ],
                outputs="predictions",
                name="predict_next_close",
            ),
            Node(
                func=forecast_test_range,
                inputs=["checked_model", "features", "params:modelling"],
                outputs="test_range_forecasts",
                name="forecast_test_range",
            ),
            Node(
                func=plot_latest_prediction,
                inputs=[
                    "features",
                    "predictions",
                    "test_range_forecasts",
                    "params:instrument",
                    "params:inference",
                    "run_info",
                ],
                outputs=["latest_prediction_plot", "latest_prediction_chart"],
                name="plot_latest_prediction",
            ),
            Node(
                func=plot_test_range,
                inputs=["test_range_forecasts", "params:instrument"],
                outputs=["test_range_plot", "test_range_chart"],
                name="plot_test_range",
            ),
            Node(
                func=plot_training_curves,
                inputs=["checked_model", "params:instrument"],
                outputs="training_curves_chart",
                name="plot_training_curves",
            ),
        ]
    )
