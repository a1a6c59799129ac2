"""The TWS simulator's keepUpToDate stream and restart fault, through a real ib_insync
client over loopback, replaying a CSV of minute bars on the simulator's own clock."""

from __future__ import annotations

import asyncio

import pandas as pd
from ib_insync import IB

from ml_lstm.calendars import utc
from ml_lstm.ib_data import build_contract
from ml_lstm.tws_simulator import (
    Faults,
    FrameFeed,
    SimulatedInstrument,
    SimulatorClock,
    SimulatorThread,
)

NVDA = {"symbol": "NVDA", "sec_type": "STK", "exchange": "SMART", "currency": "USD"}
START = pd.Timestamp("2024-06-03T13:40:00Z")


def csv_feed(tmp_path) -> FrameFeed:
    minutes = pd.date_range("2024-06-03T13:30:00Z", periods=60, freq="1min")
    closes = [20.0 + 0.01 * i for i in range(60)]
    bars = pd.DataFrame(
        {
            "timestamp": minutes.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": [20.0, *closes[:-1]],
            "high": [c + 0.05 for c in closes],
            "low": [min(o, c) - 0.05 for o, c in zip([20.0, *closes[:-1]], closes, strict=True)],
            "close": closes,
            "volume": range(1000, 1060),
        }
    )
    # Minute 13:45 had no trade: it is neither served nor streamed.
    bars = bars[bars["timestamp"] != "2024-06-03T13:45:00Z"]
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    return FrameFeed.from_csv(path, "XNYS")


def simulator(tmp_path, faults: Faults | None = None) -> SimulatorThread:
    instrument = SimulatedInstrument("STK", "NVDA", "USD", csv_feed(tmp_path))
    return SimulatorThread([instrument], faults, clock=SimulatorClock(START, speed=600))


async def stream(
    port: int, seconds: float, clock: SimulatorClock
) -> tuple[list, pd.Timestamp, tuple[pd.Timestamp, pd.Timestamp], int]:
    """The subscription's bars after `seconds`, TWS's time then, the simulator clock's
    readings just before and after that answer, and how many updates came."""
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=7, readonly=True)
    contract = build_contract(NVDA)
    await ib.qualifyContractsAsync(contract)
    bars = await ib.reqHistoricalDataAsync(
        contract, "", "600 S", "1 min", "TRADES", True, 2, keepUpToDate=True
    )
    updates = []
    bars.updateEvent += lambda _bars, has_new: updates.append(has_new)
    await asyncio.sleep(seconds)
    before = clock.now()
    now = utc(await ib.reqCurrentTimeAsync())
    after = clock.now()
    ib.disconnect()
    return list(bars), now, (before, after), len(updates)


def test_a_subscription_streams_each_minute_with_its_final_values(tmp_path):
    feed = csv_feed(tmp_path)
    with simulator(tmp_path) as running:
        clock = running.simulator.clock
        bars, now, (before, after), updates = asyncio.run(stream(running.port, 1.0, clock))

    # The simulator's clock, not this machine's: TWS's time (whole seconds) is the replay
    # clock's at its answer, at least the 10 simulated minutes slept after the subscription
    # (more when this machine is busy: the clock runs on while the client connects).
    assert before.floor("s") <= now <= after
    assert now >= START + pd.Timedelta(minutes=10)
    streamed = [bar for bar in bars if utc(bar.date) > START]
    assert updates > 2 * len(streamed)  # the forming bar's updates, not one per minute
    complete = bars[:-1]  # the last one may still be forming
    first, last = utc(complete[0].date), utc(complete[-1].date)
    expected = feed.bars_between(first, last + pd.Timedelta(minutes=1))
    columns = ["open", "high", "low", "close", "volume"]
    assert [utc(bar.date) for bar in complete] == list(expected["timestamp"])
    assert [tuple(getattr(bar, name) for name in columns) for bar in complete] == list(
        expected[columns].itertuples(index=False, name=None)
    )
    assert pd.Timestamp("2024-06-03T13:45:00Z") not in [utc(bar.date) for bar in bars]


def test_a_subscription_made_in_a_minute_without_trade_answers_the_bars_times(tmp_path):
    """Its answer then holds no forming bar: only the feed's own rows (a CSV feed's times
    are microseconds), which must still go out as the bars' times (this was the flaky
    failure: a slow start landed the subscription in the minute without a trade, 13:45,
    and every bar of the answer came back dated January 1970)."""
    feed = csv_feed(tmp_path)
    instrument = SimulatedInstrument("STK", "NVDA", "USD", feed)
    # A paused replay clock: the answer is made at 13:45:10 whatever this machine's speed.
    clock = SimulatorClock(pd.Timestamp("2024-06-03T13:45:10Z"), speed=600, paused=True)

    async def subscribe(port: int) -> list:
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=7, readonly=True)
        contract = build_contract(NVDA)
        await ib.qualifyContractsAsync(contract)
        bars = await ib.reqHistoricalDataAsync(
            contract, "", "600 S", "1 min", "TRADES", True, 2, keepUpToDate=True
        )
        answered = list(bars)
        ib.disconnect()
        return answered

    with SimulatorThread([instrument], clock=clock) as running:
        answered = asyncio.run(subscribe(running.port))
    expected = feed.bars_between(utc("2024-06-03T13:35:10Z"), utc("2024-06-03T13:45:00Z"))
    assert [utc(bar.date) for bar in answered] == list(expected["timestamp"])
    assert [bar.close for bar in answered] == list(expected["close"])


def test_a_restart_closes_every_socket_and_listens_again_on_the_same_port(tmp_path):
    restart = Faults(restart_at=(START + pd.Timedelta(minutes=2),), restart_minutes=3)
    with simulator(tmp_path, restart) as running:

        async def around_the_restart() -> tuple[bool, bool]:
            ib = IB()
            await ib.connectAsync("127.0.0.1", running.port, clientId=7, readonly=True)
            await asyncio.sleep(0.3)  # 3 simulated minutes: the restart has begun
            dropped = not ib.isConnected()
            await asyncio.sleep(0.3)  # back after 3 simulated minutes down
            again = IB()
            await again.connectAsync("127.0.0.1", running.port, clientId=7, readonly=True)
            reconnected = again.isConnected()
            again.disconnect()
            return dropped, reconnected

        dropped, reconnected = asyncio.run(around_the_restart())
        assert running.stats.restarts == 1
    assert dropped and reconnected
