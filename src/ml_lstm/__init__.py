"""ml_lstm: minute bars from Interactive Brokers to hourly features, an LSTM and its predictions."""

__version__ = "0.1.0"
