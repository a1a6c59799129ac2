"""The forecasting core shared by modelling, inference (and the live loop and tuning).

What one forecast needs, in one place: the target and its conversion to prices
(`targets`), time-ordered splits with purge gaps (`splits`), the training-only scaler
(`scaling`), sliding windows (`windows`), the baselines (`baselines`), forecasting a range
of rows or the next bar (`forecast`), the metrics (`evaluation`), and building and fitting
the Keras LSTM (`lstm_factory`, `training`: the only modules here that import TensorFlow).

Functions here take explicit arguments (a table, a scaler, lookback, horizon), never a
pipeline's parameter block, so every caller states what it forecasts with.
"""
