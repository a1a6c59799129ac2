"""The LSTM model factory: a compiled Keras model from one configuration dict.

Imported only by code that trains or predicts (it imports Keras, ~5 s).

The configuration is `modelling.model` plus what the data decides:

    lookback, n_features      input window shape
    lstm_units: [32]          one LSTM layer per entry, stacked
    dropout: 0.0              Dropout after each LSTM layer (not recurrent dropout)
    dense_units: 16           hidden Dense(relu) layer before the output; 0/None for none
    optimizer: adam           any Keras optimizer name
    learning_rate: 0.001
    loss: mse                 regression loss; the direction target always uses
                              binary cross-entropy
    output: linear|sigmoid    sigmoid for the direction target
    stateful: false           true: fixed batch size `batch_size`, state kept across batches
    batch_size: 64            needed when stateful
"""

from __future__ import annotations

import keras

from .devices import gpus

# LSTM arguments that keep TensorFlow's fused cuDNN kernel eligible on a GPU; any other
# activation, recurrent dropout or unrolling falls back to the generic (slower) kernel.
CUDNN_COMPATIBLE = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "unroll": False,
    "use_bias": True,
}


def build_model(config: dict) -> keras.Model:
    """Stacked LSTM layers, optional dropout, an optional dense layer and one output unit."""
    gpus()  # the device query, once, without the CUDA driver's stderr noise
    units = list(config["lstm_units"])
    if not units:
        raise ValueError("modelling.model.lstm_units must list at least one layer width.")
    shape = (config["lookback"], config["n_features"])
    stateful = bool(config.get("stateful", False))
    if stateful:
        inputs = keras.Input(batch_shape=(config["batch_size"], *shape), name="window")
    else:
        inputs = keras.Input(shape=shape, name="window")
    x = inputs
    for depth, width in enumerate(units):
        x = keras.layers.LSTM(
            width,
            return_sequences=depth < len(units) - 1,
            stateful=stateful,
            name=f"lstm_{depth}",
            **CUDNN_COMPATIBLE,
        )(x)
        if config.get("dropout", 0.0) > 0:
            x = keras.layers.Dropout(config["dropout"], name=f"dropout_{depth}")(x)
    if config.get("dense_units"):
        x = keras.layers.Dense(config["dense_units"], activation="relu", name="dense")(x)
    sigmoid = config.get("output", "linear") == "sigmoid"
    outputs = keras.layers.Dense(1, activation="sigmoid" if sigmoid else None, name="prediction")(x)
    model = keras.Model(inputs, outputs, name="lstm_forecaster")
    optimizer = keras.optimizers.get(
        {
            "class_name": config.get("optimizer", "adam"),
            "config": {"learning_rate": config["learning_rate"]},
        }
    )
    model.compile(
        optimizer=optimizer,
        loss="binary_crossentropy" if sigmoid else config["loss"],
        metrics=["accuracy"] if sigmoid else None,
    )
    return model


def stateless_copy(model: keras.Model, config: dict) -> keras.Model:
    """The same weights in a stateless model, which predicts any batch size from zero state."""
    copy = build_model({**config, "stateful": False})
    copy.set_weights(model.get_weights())
    return copy
