from kedro.pipeline import Node, Pipeline

from .nodes import build_manifest, evaluate_model, fit_scaler, split_by_time, train_lstm


def create_pipeline(**kwargs) -> Pipeline:
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
                outputs="lstm_model",
                name="train_lstm",
            ),
            Node(
                func=evaluate_model,
                inputs=["lstm_model", "model_input_table", "scaler", "params:modelling"],
                outputs="metrics",
                name="evaluate_model",
            ),
            Node(
                func=build_manifest,
                inputs=[
                    "model_input_table",
                    "scaler",
                    "metrics",
                    "params:modelling",
                    "params:data_processing",
                    "run_info",
                ],
                outputs="model_manifest",
                name="build_manifest",
            ),
        ]
    )
