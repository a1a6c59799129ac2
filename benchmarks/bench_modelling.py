"""Modelling: training throughput of the `train_lstm` node against a minimal raw-Keras script
on identical arrays, and the peak memory of window building against the input table.

    python -m benchmarks modelling

Training runs in this process, after TensorFlow is imported, alternating the two sides
(best of `REPEAT` each), on the CPU unless a GPU is visible. The node's time includes its
own scaling and window extraction; the raw script gets the windows ready-made. Window
building is measured in fresh subprocesses (harness.measure), which never import TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.harness import measure, report, timed

ROWS = 20_000
FEATURES = 6
REPEAT = 3
MODELLING = {
    "seed": 1,
    "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    "features": [f"feature_{i}" for i in range(FEATURES)],
    "target": "log_return",
    "lookback": 24,
    "horizon": 1,
    "model": {
        "lstm_units": [32],
        "dropout": 0.0,
        "dense_units": 16,
        "optimizer": "adam",
        "learning_rate": 0.001,
        "loss": "mse",
        "stateful": False,
    },
    # Patience above the epoch count: both sides run every epoch.
    "training": {"epochs": 3, "batch_size": 64, "patience": 100, "reduce_lr_patience": 100},
    "baselines": {"sma_window": 5},
}


def feature_table(rows: int = ROWS, features: int = FEATURES) -> pd.DataFrame:
    """A random-walk close and `features` random feature columns, hourly UTC timestamps."""
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(rows)))
    table = pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-01", periods=rows, freq="h", tz="UTC"),
            "close": close,
        }
    )
    for i in range(features):
        table[f"feature_{i}"] = rng.standard_normal(rows)
    return table


def build_table(rows: int = ROWS, features: int = FEATURES) -> None:
    """Reference for memory: the input table alone."""
    feature_table(rows, features)


def build_windows(rows: int = ROWS, features: int = FEATURES) -> None:
    """Ours: split, scale and take the training and validation windows the node trains on."""
    from ml_lstm.forecasting import scaling
    from ml_lstm.forecasting.windows import split_windows
    from ml_lstm.pipelines.modelling import nodes

    params = {**MODELLING, "features": [f"feature_{i}" for i in range(features)]}
    table = nodes.split_by_time(feature_table(rows, features), params)
    scaler = nodes.fit_scaler(table, params)
    scaled = scaling.scale_features(table, scaler)
    labels = scaling.scaled_labels(table, scaler, params["horizon"])
    for split in ("train", "validation"):
        split_windows(table, scaled, labels, split, params["lookback"])


def training_throughput() -> dict:
    """Windows per second through `train_lstm` and through raw Keras, and their ratio."""
    import keras
    import tensorflow as tf

    from ml_lstm.forecasting import scaling
    from ml_lstm.forecasting.windows import split_windows
    from ml_lstm.pipelines.modelling import nodes

    table = nodes.split_by_time(feature_table(), MODELLING)
    scaler = nodes.fit_scaler(table, MODELLING)
    scaled = scaling.scale_features(table, scaler)
    labels = scaling.scaled_labels(table, scaler, 1)
    x_train, y_train, _ = split_windows(table, scaled, labels, "train", 24)
    x_val, y_val, _ = split_windows(table, scaled, labels, "validation", 24)
    epochs, batch = MODELLING["training"]["epochs"], MODELLING["training"]["batch_size"]

    def raw_keras() -> None:
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input(shape=(24, FEATURES)),
                keras.layers.LSTM(32),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer=keras.optimizers.Adam(0.001), loss="mse")
        model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=epochs,
            batch_size=batch,
            verbose=0,
        )

    def node() -> None:
        nodes.train_lstm(table, scaler, MODELLING)

    node_times, raw_times = [], []
    for _ in range(REPEAT):
        node_times.append(timed(node)[1])
        raw_times.append(timed(raw_keras)[1])
    samples = len(x_train) * epochs
    ours, reference = min(node_times), min(raw_times)
    row = {
        "benchmark": "modelling_training_throughput",
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "train_windows": len(x_train),
        "epochs": epochs,
        "node_s": round(ours, 3),
        "raw_keras_s": round(reference, 3),
        "node_windows_per_s": round(samples / ours, 1),
        "raw_keras_windows_per_s": round(samples / reference, 1),
        "throughput_ratio": round(reference / ours, 3),
        "target": ">= 0.9",
    }
    print(
        f"training on {row['device']}: node {row['node_windows_per_s']:.0f} windows/s vs raw "
        f"Keras {row['raw_keras_windows_per_s']:.0f} windows/s -> throughput ratio "
        f"{row['throughput_ratio']:.2f} (target >= 0.9)",
        flush=True,
    )
    return row


def main() -> list[dict]:
    table = feature_table()
    table_mib = table.memory_usage(deep=True).sum() / 2**20
    train_windows = int(0.7 * ROWS)
    windows_mib = (train_windows + int(0.15 * ROWS)) * 24 * FEATURES * 4 / 2**20
    memory = report(
        "modelling_window_building",
        measure("benchmarks.bench_modelling", "build_windows", repeat=2),
        measure("benchmarks.bench_modelling", "build_table", repeat=2),
        "input table alone",
    )
    memory.update(
        input_table_mib=round(table_mib, 2),
        windows_float32_mib=round(windows_mib, 2),
        extra_peak_mib=round(memory["ours_peak_mib"] - memory["reference_peak_mib"], 1),
    )
    print(
        f"window building: input table {table_mib:.1f} MiB, train+validation windows "
        f"{windows_mib:.1f} MiB (float32, lookback 24), extra peak RSS "
        f"{memory['extra_peak_mib']:.0f} MiB",
        flush=True,
    )
    return [memory, training_throughput()]
