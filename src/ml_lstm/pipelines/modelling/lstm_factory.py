"""The LSTM model factory: a compiled Keras model from the `modelling.model` parameters."""

from __future__ import annotations

import keras


def build_model(config: dict, lookback: int, n_features: int) -> keras.Model:
    """Stacked LSTM layers, optional dropout, a dense hidden layer and one linear output.

    LSTM layers keep Keras' default activations and no recurrent dropout, which keeps
    them eligible for the fused cuDNN kernel on a GPU.
    """
    units = list(config["lstm_units"])
    inputs = keras.Input(shape=(lookback, n_features), name="window")
    x = inputs
    for depth, width in enumerate(units):
        x = keras.layers.LSTM(width, return_sequences=depth < len(units) - 1, name=f"lstm_{depth}")(
            x
        )
        if config.get("dropout", 0.0) > 0:
            x = keras.layers.Dropout(config["dropout"], name=f"dropout_{depth}")(x)
    if config.get("dense_units"):
        x = keras.layers.Dense(config["dense_units"], activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(1, name="prediction")(x)
    model = keras.Model(inputs, outputs, name="lstm_forecaster")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
        loss=config["loss"],
    )
    return model
