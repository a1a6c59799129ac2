from kedro.pipeline import Node, Pipeline

from .charts import plot_model_comparison, plot_training_history
from .nodes import (
    build_manifest,
    evaluate_forecasts,
    fit_scaler,
    forecast_test_split,
    retrain_lstm,
    select_recent_window,
    split_by_time,
    train_lstm,
    walk_forward_report,
)
from .promotion import decide_promotion


def _evaluate_register_promote(table: str) -> list[Node]:
    """The nodes after training, shared by modelling and retraining."""
    return [
        Node(
            func=plot_training_history,
            inputs="training_history",
            outputs="training_history_plot",
            name="plot_training_history",
        ),
        Node(
            func=forecast_test_split,
            inputs=["lstm_model", table, "scaler", "params:modelling"],
            outputs="test_forecasts",
            name="forecast_test_split",
        ),
        Node(
            func=evaluate_forecasts,
            inputs=["test_forecasts", table, "params:modelling"],
            outputs="metrics",
            name="evaluate_forecasts",
        ),
        Node(
            func=plot_model_comparison,
            inputs="metrics",
            outputs="model_comparison_plot",
            name="plot_model_comparison",
        ),
        Node(
            func=build_manifest,
            inputs=[
                table,
                "scaler",
                "metrics",
                "training_history",
                "feature_list",
                "params:modelling",
                "params:data_processing",
                "run_info",
            ],
            outputs="model_manifest",
            name="build_manifest",
        ),
        Node(
            func=decide_promotion,
            inputs=[
                "champion",
                "test_forecasts",
                table,
                "metrics",
                "params:modelling",
                "run_info",
                # Read so that the champion is recorded only once its manifest is stored:
                # under ParallelRunner inference could otherwise load a champion whose
                # manifest.json is not written yet.
                "model_manifest",
            ],
            outputs=["promotion", "champion_record"],
            name="decide_promotion",
        ),
    ]


def create_pipeline(**kwargs) -> Pipeline:
    """Train a fresh LSTM on the whole feature table, evaluate, register and maybe promote."""
    return Pipeline(
        [
            Node(
                func=split_by_time,
                inputs=["features", "params:modelling"],
                outputs="model_input_table",
                name="split_by_time",
            ),
            Node(
                func=fit_scaler,
                inputs=["model_input_table", "params:modelling"],
                outputs="scaler",
                name="fit_scaler",
            ),
            Node(
                func=train_lstm,
                inputs=["model_input_table", "scaler", "params:modelling"],
                outputs=["lstm_model", "training_history"],
                name="train_lstm",
            ),
            *_evaluate_register_promote("model_input_table"),
            Node(
                func=walk_forward_report,
                inputs=["features", "params:modelling"],
                outputs="walk_forward_report",
                name="walk_forward_report",
            ),
        ]
    )


def create_retraining_pipeline(**kwargs) -> Pipeline:
    """Warm-start the champion on a recent window; same evaluation and promotion rule."""
    return Pipeline(
        [
            Node(
                func=select_recent_window,
                inputs=["features", "params:modelling"],
                outputs="recent_features",
                name="select_recent_window",
            ),
            Node(
                func=split_by_time,
                inputs=["recent_features", "params:modelling"],
                outputs="retraining_input_table",
                name="split_recent_window_by_time",
            ),
            Node(
                func=fit_scaler,
                inputs=["retraining_input_table", "params:modelling"],
                outputs="scaler",
                name="fit_scaler",
            ),
            Node(
                func=retrain_lstm,
                inputs=["champion", "retraining_input_table", "scaler", "params:modelling"],
                outputs=["lstm_model", "training_history"],
                name="retrain_lstm",
            ),
            *_evaluate_register_promote("retraining_input_table"),
        ]
    )
