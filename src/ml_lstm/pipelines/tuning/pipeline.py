from kedro.pipeline import Node, Pipeline

from .nodes import (
    plot_study,
    run_search,
    score_on_test_split,
    summarise_search,
    write_tuned_parameters,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Search on walk-forward folds before the test split, report, then score the best once."""
    return Pipeline(
        [
            Node(
                func=run_search,
                inputs=[
                    "tuning_study",
                    "features",
                    "feature_list",
                    "params:modelling",
                    "params:tuning",
                ],
                outputs="tuning_trials",
                name="run_search",
            ),
            Node(
                func=summarise_search,
                inputs=[
                    "tuning_study",
                    "tuning_trials",
                    "params:modelling",
                    "params:tuning",
                    "run_info",
                ],
                outputs="tuning_search_summary",
                name="summarise_search",
            ),
            Node(
                func=score_on_test_split,
                inputs=["features", "tuning_search_summary", "params:modelling", "params:tuning"],
                outputs="tuning_summary",
                name="score_on_test_split",
            ),
            Node(
                func=write_tuned_parameters,
                inputs="tuning_summary",
                outputs="tuned_parameters",
                name="write_tuned_parameters",
            ),
            Node(
                func=plot_study,
                inputs=["tuning_study", "tuning_trials", "params:tuning"],
                outputs=[
                    "tuning_history_chart",
                    "tuning_importance_chart",
                    "tuning_parallel_chart",
                    "tuning_plots",
                ],
                name="plot_study",
            ),
        ]
    )
