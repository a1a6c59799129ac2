"""Live operation (`kedro live`): stream 1-minute bars from TWS / IB Gateway (or the TWS
simulator), store each completed minute as a backfill would, and predict at every
completed bar of the model's frequency with the same node functions as the pipelines.

Modules: `settings` (the `live` parameters), `feed` (the read-only ib_insync subscription
and the feed's clock), `session` (one trading session's minutes, bars, features and
predictions, through the data_processing and inference nodes), `loop` (one instrument's
life: catch-up, sleep until the open, stream, recover from faults), `stopping` (signals
and the kill-switch file) and `runner` (the Kedro session, the simulator, the loops).
"""
