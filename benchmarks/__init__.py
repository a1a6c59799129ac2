"""Benchmarks: each compares ml_lstm against a reference implementation in the same run."""
