"""`python -m ml_lstm.tws_simulator`: see `ml_lstm.tws_simulator.cli`."""

from .cli import main

main()
