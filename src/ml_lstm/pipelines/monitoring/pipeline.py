from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_live_scorecard,
    check_alerts,
    decide_retraining,
    plot_live_scorecard,
    score_predictions,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Score the prediction log against the bars, the live scorecard, alerts and chart."""
    return Pipeline(
        [
            Node(
                func=score_predictions,
                inputs=[
                    "predictions",
                    "hourly_bars",
                    "registry_manifests",
                    "params:instrument",
                    "params:modelling",
                    "params:data_processing",
                ],
                outputs="scored_predictions",
                name="score_predictions",
            ),
            Node(
                func=build_live_scorecard,
                inputs=[
                    "scored_predictions",
                    "registry_manifests",
                    "params:instrument",
                    "params:monitoring",
                    "params:modelling",
                    "run_info",
                ],
                outputs="live_scorecard",
                name="build_live_scorecard",
            ),
            Node(
                func=check_alerts,
                inputs=[
                    "live_scorecard",
                    "test_range_forecasts",
                    "features",
                    "registry_manifests",
                    "params:instrument",
                    "params:monitoring",
                    "run_info",
                ],
                outputs="alerts",
                name="check_alerts",
            ),
            Node(
                func=plot_live_scorecard,
                inputs=["scored_predictions", "live_scorecard", "params:instrument"],
                outputs=["live_scorecard_plot", "live_scorecard_chart"],
                name="plot_live_scorecard",
            ),
        ]
    )


def create_decision_pipeline(**kwargs) -> Pipeline:
    """Whether the update retrains: reads the previous update's alerts and the registry."""
    return Pipeline(
        [
            Node(
                func=decide_retraining,
                inputs=[
                    "features",
                    "registry_manifests",
                    "champion_record",
                    "previous_alerts",
                    "params:modelling",
                    "params:instrument",
                    "run_info",
                ],
                outputs="retraining_decision",
                name="decide_retraining",
            )
        ]
    )
