"""Models trained in a long-lived process (a Dask worker) leave no traced graph behind once
`released_training_graphs` is over (TensorFlow keeps one per trained model otherwise)."""

from __future__ import annotations

import gc

import numpy as np

from ml_lstm.forecasting.trained_graphs import PREFIX, _gradient_registry, released_training_graphs

TINY = {
    "lookback": 3,
    "n_features": 2,
    "lstm_units": [2],
    "dense_units": 0,
    "optimizer": "adam",
    "learning_rate": 0.001,
    "loss": "mse",
    "output": "linear",
}


def _train_a_model() -> None:
    from ml_lstm.forecasting.lstm_factory import build_model

    model = build_model(TINY)
    rows = np.random.default_rng(0).normal(size=(8, 3, 2)).astype("float32")
    model.fit(rows, rows[:, -1, :1], epochs=1, batch_size=4, verbose=0)


def _traced_graphs() -> int:
    gc.collect()
    return sum(type(thing).__name__ == "FuncGraph" for thing in gc.get_objects())


def _custom_gradients() -> set[str]:
    return {name for name in _gradient_registry() or {} if name.startswith(PREFIX)}


def test_models_trained_inside_leave_no_graph_or_gradient_behind():
    with released_training_graphs():
        _train_a_model()  # TensorFlow's one-off set-up happens here
    graphs, gradients = _traced_graphs(), _custom_gradients()

    for _ in range(3):
        with released_training_graphs():
            _train_a_model()

    assert _custom_gradients() == gradients
    assert _traced_graphs() == graphs


def test_gradients_registered_before_the_block_are_kept():
    _train_a_model()
    kept = _custom_gradients()
    assert kept  # what TensorFlow registers for a model.fit

    with released_training_graphs():
        pass

    assert _custom_gradients() == kept
