from kedro.pipeline import Node, Pipeline

from .nodes import predict_next_close


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=predict_next_close,
                inputs=[
                    "lstm_model",
                    "scaler",
                    "model_manifest",
                    "features",
                    "params:instrument",
                    "run_info",
                ],
                outputs="predictions",
                name="predict_next_close",
            ),
        ]
    )
