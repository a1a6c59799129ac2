"""The IB path for real: ib_insync over a loopback socket against the project's TWS simulator.

Every test runs the ingestion pipeline with Kedro's runner on real files in tmp_path and
checks the stored sessions against the synthetic market the simulator serves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import subprocess
import sys

import pandas as pd
import pytest
from ib_insync import IB, LimitOrder, Stock
from ingestion_support import (
    NVDA,
    RUN_STARTED_AT,
    XAGUSD,
    assert_stored_equal_market,
    ingestion_parameters,
    market_sessions,
    run_ingestion,
    stored_sessions,
    window_sessions,
)

from ml_lstm.ib_connection import IBConnectionDataset
from ml_lstm.ib_data import IngestionError
from ml_lstm.pacing import PacingBook, PacingRules
from ml_lstm.pipelines.ingestion.nodes import fetch_minute_bars, plan_backfill
from ml_lstm.tws_simulator import (
    ORDER_MESSAGES,
    ORDER_STATE_REQUESTS,
    PLACE_ORDER,
    REQ_AUTO_OPEN_ORDERS,
    REQ_HISTORICAL_DATA,
    Faults,
    SimulatorThread,
    instrument_from_parameters,
)

START, END = "2024-01-02", "2024-01-19"
SESSIONS = window_sessions(NVDA, START, END)  # 13 sessions (MLK day is a holiday)


@pytest.fixture
def simulator(request):
    """A simulator on an ephemeral loopback port serving NVDA, with the faults given by
    `@pytest.mark.parametrize("simulator", [Faults(...)], indirect=True)`."""
    faults = getattr(request, "param", None) or Faults()
    with SimulatorThread([instrument_from_parameters(NVDA, 42)], faults) as running:
        yield running


def connection(simulator: SimulatorThread) -> dict:
    return {"host": "127.0.0.1", "port": simulator.port, "client_id": 7}


def ledger(tmp_path, name="nvda") -> dict:
    return json.loads((tmp_path / name / "ingestion_ledger.json").read_text())["sessions"]


@pytest.mark.parametrize("format_date", [1, 2])
def test_backfill_equals_the_simulated_market_and_a_second_run_fetches_nothing(
    tmp_path, format_date
):
    parameters = ingestion_parameters()
    parameters["requests"]["format_date"] = format_date
    run_ingestion(tmp_path, parameters)
    assert_stored_equal_market(tmp_path, NVDA, SESSIONS)
    assert {entry["status"] for entry in ledger(tmp_path).values()} == {"complete"}

    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "nvda/minute_bars").iterdir()}
    stored = {s: (lambda s=s: stored_sessions(tmp_path)[s]) for s in SESSIONS}
    run_info = {"started_at": "2024-06-03T12:00:00+00:00"}
    assert plan_backfill(stored, {"sessions": ledger(tmp_path)}, NVDA, parameters, run_info) == []
    run_ingestion(tmp_path, parameters)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "nvda/minute_bars").iterdir()}
    assert after == mtimes


FAULTS = {
    "socket drop mid-backfill": Faults(drop_after_requests=frozenset({3, 9})),
    "pacing violations": Faults(pacing_violation_requests=frozenset({2, 5, 6})),
    "unanswered requests": Faults(unanswered_requests=frozenset({4, 10})),
    "connectivity lost (1100/1102)": Faults(
        connectivity_loss_after_requests=frozenset({5}), outage_s=0.3
    ),
    "enforced pacing rules": Faults(
        pacing=PacingRules(
            identical_interval_s=0.2,
            same_contract_max=4,
            same_contract_window_s=0.3,
            window_max=10,
            window_s=1.0,
        )
    ),
    "latency": Faults(latency_s=0.05),
}


# The simulator counts a request when it reads it, a little after the client sent it; on a
# loaded machine (two CPUs, several test runs) that delay varies by up to tenths of a second. The
# client applies the simulator's rules with windows this much longer, so that the delay of
# one request cannot make two of them look closer than they were sent.
PACING_ALLOWANCE_S = 0.5


def client_pacing(enforced: PacingRules) -> dict:
    return dataclasses.asdict(
        dataclasses.replace(
            enforced,
            same_contract_window_s=enforced.same_contract_window_s + PACING_ALLOWANCE_S,
            window_s=enforced.window_s + PACING_ALLOWANCE_S,
        )
    )


@pytest.mark.parametrize("simulator", list(FAULTS.values()), ids=list(FAULTS), indirect=True)
def test_backfill_under_faults_loses_and_duplicates_nothing(tmp_path, simulator):
    parameters = ingestion_parameters(source="ib")
    faults = simulator.simulator.faults
    if faults.pacing is not None:
        parameters["requests"]["pacing"] = client_pacing(faults.pacing)
    if not faults.unanswered_requests:
        # Every request is answered: the short timeout the unanswered case needs would only
        # turn a slow answer on a loaded machine into a retry, and this test counts requests.
        parameters["requests"]["request_timeout_s"] = 15.0
    run_ingestion(tmp_path, parameters, connection=connection(simulator))
    assert_stored_equal_market(tmp_path, NVDA, SESSIONS)
    entries = ledger(tmp_path)
    assert {entry["status"] for entry in entries.values()} == {"complete"}
    stats = simulator.stats
    injected = (
        len(faults.drop_after_requests)
        + len(faults.pacing_violation_requests)
        + len(faults.unanswered_requests)
        + len(faults.connectivity_loss_after_requests)
    )
    assert stats.pacing_errors_sent == len(faults.pacing_violation_requests)
    # A refused or unanswered request costs one retry and nothing else is asked twice; a
    # drop or an outage also loses the requests in flight, which are asked again.
    if faults.drop_after_requests or faults.connectivity_loss_after_requests:
        assert stats.historical_requests >= len(SESSIONS) + injected
    else:
        assert stats.historical_requests == len(SESSIONS) + injected
    if faults.drop_after_requests:
        assert stats.connections == 1 + len(faults.drop_after_requests)


def test_pacing_limiter_spaces_requests_by_the_rules():
    now = [0.0]
    rules = PacingRules(
        identical_interval_s=15,
        same_contract_max=6,
        same_contract_window_s=2,
        window_max=8,
        window_s=600,
    )
    book = PacingBook(rules, clock=lambda: now[0])
    sent = []
    for number in range(10):
        request = ("session", number % 9)  # the 10th repeats the 1st: an identical request
        for _ in range(100):
            wait = book.wait_time(request, "NVDA")
            if wait <= 0:
                break
            now[0] += wait
        assert book.violation(request, "NVDA") is None
        book.record(request, "NVDA")
        sent.append(now[0])
    assert sent[:6] == [0.0] * 6  # six at once are allowed ...
    assert sent[6] == 2.0  # ... the seventh waits for the 2 s window to move on
    assert sent[8] == 600.0  # at most 8 in 600 s
    assert sent[9] == 600.0  # the identical request, 600 s after the first, is fine
    now[0] += 1.0
    assert "identical" in book.violation(("session", 0), "NVDA")
    assert book.wait_time(("session", 0), "NVDA") == 14.0


def test_no_data_sessions_are_recorded_and_not_retried(tmp_path):
    holes = {"2024-01-09", "2024-01-16"}
    faults = Faults(no_data_dates=frozenset(holes))
    with SimulatorThread([instrument_from_parameters(NVDA, 42)], faults) as simulator:
        run_ingestion(tmp_path, ingestion_parameters(source="ib"), connection=connection(simulator))
        assert simulator.stats.historical_requests == len(SESSIONS)
        run_ingestion(tmp_path, ingestion_parameters(source="ib"), connection=connection(simulator))
        assert simulator.stats.historical_requests == len(SESSIONS)
    assert_stored_equal_market(tmp_path, NVDA, sorted(set(SESSIONS) - holes))
    entries = ledger(tmp_path)
    assert {s for s, e in entries.items() if e["status"] == "no_data"} == holes


def test_failed_sessions_are_retried_by_later_runs_up_to_the_limit(tmp_path):
    parameters = ingestion_parameters(source="ib", end_date="2024-01-05", max_attempts=2)
    parameters["requests"].update(max_retries=1, request_timeout_s=0.3)
    # Requests 1-2 (the first session, tried twice) are never answered.
    faults = Faults(unanswered_requests=frozenset({1, 2}))
    sessions = window_sessions(NVDA, START, "2024-01-05")
    with SimulatorThread([instrument_from_parameters(NVDA, 42)], faults) as simulator:
        parameters["requests"]["max_concurrent_requests"] = 1
        run_ingestion(tmp_path, parameters, connection=connection(simulator))
        first = ledger(tmp_path)["2024-01-02"]
        assert first["status"] == "failed" and first["failures"] == 1
        assert "2024-01-02" not in stored_sessions(tmp_path)
        run_ingestion(tmp_path, parameters, connection=connection(simulator))
        assert ledger(tmp_path)["2024-01-02"]["status"] == "complete"
    assert_stored_equal_market(tmp_path, NVDA, sessions)


def test_interrupted_run_resumes_without_losing_or_duplicating(tmp_path):
    parameters = ingestion_parameters(batch_sessions=3)
    raw = tmp_path / "nvda" / "minute_bars"
    plan = [{"session": s, "stored_bars": 0} for s in SESSIONS]
    run_info = {"run_id": "killed", "started_at": RUN_STARTED_AT}
    batches = fetch_minute_bars(plan, {"sessions": {}}, NVDA, parameters, {}, run_info)
    from ml_lstm.datasets import AtomicJSONDataset, SessionPartitionsDataset

    raw_dataset = SessionPartitionsDataset(path=str(raw))
    ledger_dataset = AtomicJSONDataset(str(tmp_path / "nvda" / "ingestion_ledger.json"))
    for _ in range(2):  # two batches are saved, then the run is killed
        partitions, entries = next(batches)
        raw_dataset.save(partitions)
        ledger_dataset.save(entries)
    batches.close()
    assert len(stored_sessions(tmp_path)) == 6

    run_ingestion(tmp_path, parameters)
    assert_stored_equal_market(tmp_path, NVDA, SESSIONS)
    assert all(entry["attempts"] == 1 for entry in ledger(tmp_path).values())


def test_incomplete_stored_session_is_replaced_by_a_complete_one(tmp_path):
    parameters = ingestion_parameters(end_date="2024-01-05")
    sessions = window_sessions(NVDA, START, "2024-01-05")
    run_ingestion(tmp_path, parameters)
    path = tmp_path / "nvda" / "minute_bars" / "2024-01-03.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:100]) + "\n")  # a session cut short, e.g. by a crash
    ledger_path = tmp_path / "nvda" / "ingestion_ledger.json"
    content = json.loads(ledger_path.read_text())
    del content["sessions"]["2024-01-03"]  # ... and never recorded as complete
    ledger_path.write_text(json.dumps(content))
    run_ingestion(tmp_path, parameters)
    assert_stored_equal_market(tmp_path, NVDA, sessions)


def test_session_open_at_the_run_start_is_partial_and_completed_by_the_next_run(tmp_path):
    # end_date null: up to the run's "today". The first run starts during the 2024-01-05
    # session (09:30-16:00 New York = 14:30-21:00 UTC), the second the day after.
    parameters = ingestion_parameters(start_date="2024-01-04", end_date=None)
    run_ingestion(tmp_path, parameters, started_at="2024-01-05T17:00:00+00:00")
    first = ledger(tmp_path)
    assert {s: e["status"] for s, e in first.items()} == {
        "2024-01-04": "complete",
        "2024-01-05": "partial",
    }
    assert {e["fetched_at"] for e in first.values()} == {"2024-01-05T17:00:00Z"}
    assert sorted(stored_sessions(tmp_path)) == ["2024-01-04", "2024-01-05"]

    run_ingestion(tmp_path, parameters, started_at="2024-01-06T12:00:00+00:00")
    second = ledger(tmp_path)
    assert second["2024-01-04"] == first["2024-01-04"]  # settled: not asked for again
    assert second["2024-01-05"]["status"] == "complete"
    assert second["2024-01-05"]["attempts"] == 2
    assert second["2024-01-05"]["fetched_at"] == "2024-01-06T12:00:00Z"
    assert_stored_equal_market(tmp_path, NVDA, ["2024-01-04", "2024-01-05"])


def test_xagusd_midpoint_bars_have_zero_volume(tmp_path):
    parameters = ingestion_parameters(start_date="2024-03-05", end_date="2024-03-07")
    sessions = window_sessions(XAGUSD, "2024-03-05", "2024-03-07")
    run_ingestion(tmp_path, parameters, instrument=XAGUSD, name="xagusd")
    assert_stored_equal_market(tmp_path, XAGUSD, sessions, name="xagusd")
    for bars in stored_sessions(tmp_path, "xagusd").values():
        assert len(bars) == 23 * 60  # METALS-NY: 18:00 to 17:00 New York, every minute quoted
        assert (bars["volume"] == 0).all()


def test_trades_for_a_quotes_only_contract_is_a_clear_error(tmp_path):
    trades = {**XAGUSD, "what_to_show": "TRADES"}
    parameters = ingestion_parameters(source="ib", start_date="2024-03-05", end_date="2024-03-05")
    with (
        SimulatorThread([instrument_from_parameters(XAGUSD, 42)]) as simulator,
        pytest.raises(IngestionError, match=r"TRADES.*what_to_show"),
    ):
        run_ingestion(
            tmp_path, parameters, instrument=trades, connection=connection(simulator), name="xagusd"
        )


@pytest.mark.parametrize("simulator", [Faults(naive_format1_times=True)], indirect=True)
def test_bar_times_without_a_zone_are_refused_not_guessed(tmp_path, simulator):
    # Older TWS versions answer formatDate 1 with "yyyymmdd  hh:mm:ss" in the exchange's
    # zone, unnamed; ib_insync makes naive datetimes of them.
    parameters = ingestion_parameters(source="ib", end_date="2024-01-03")
    parameters["requests"]["format_date"] = 1
    with pytest.raises(IngestionError, match=r"NVDA session 2024-01-0[23]: .*format_date: 2"):
        run_ingestion(tmp_path, parameters, connection=connection(simulator))
    assert simulator.stats.bars_served > 0  # the bars came, and were refused
    assert stored_sessions(tmp_path) == {}

    parameters["requests"]["format_date"] = 2
    run_ingestion(tmp_path, parameters, connection=connection(simulator))
    assert_stored_equal_market(tmp_path, NVDA, ["2024-01-02", "2024-01-03"])


def test_unknown_symbol_is_a_clear_error_naming_it(tmp_path, simulator):
    unknown = {**NVDA, "symbol": "NOSUCH"}
    with pytest.raises(IngestionError, match="NOSUCH"):
        run_ingestion(
            tmp_path,
            ingestion_parameters(source="ib"),
            instrument=unknown,
            connection=connection(simulator),
        )


def test_connection_refused_is_a_clear_error_without_the_address(tmp_path, simulator, caplog):
    port = simulator.port
    simulator.stop()  # a real refused connection, on a loopback port that was just freed
    caplog.set_level(logging.INFO, logger="ib_insync")  # more than conf/logging.yml lets out
    with pytest.raises(ConnectionError, match="Could not connect to TWS") as raised:
        run_ingestion(
            tmp_path,
            ingestion_parameters(source="ib"),
            connection={"host": "127.0.0.1", "port": port, "client_id": 3},
        )
    assert str(port) not in str(raised.value)
    # ib_insync's own lines (INFO "Connecting to ...", ERROR "API connection failed: ...")
    # are still logged, without the address.
    failed = [r for r in caplog.records if "API connection failed" in r.getMessage()]
    assert failed and failed[0].levelno == logging.ERROR
    assert str(port) not in caplog.text
    assert "127.0.0.1" not in caplog.text


def test_a_backfill_logs_no_tws_address(tmp_path, simulator, caplog):
    caplog.set_level(logging.INFO, logger="ib_insync")
    run_ingestion(
        tmp_path,
        ingestion_parameters(source="ib", end_date="2024-01-03"),
        connection=connection(simulator),
    )
    assert "Connecting to" in caplog.text  # ib_insync's line, redacted
    assert str(simulator.port) not in caplog.text
    assert "127.0.0.1" not in caplog.text


@pytest.mark.parametrize("where", ["credentials", "environment"])
def test_client_id_0_is_refused_before_connecting(tmp_path, simulator, monkeypatch, where):
    # With client id 0 ib_insync sends reqAutoOpenOrders, an order-state request.
    credentials = tmp_path / "credentials.yml"
    client_id = "0" if where == "credentials" else "5"
    credentials.write_text(
        f"ib:\n  host: 127.0.0.1\n  port: {simulator.port}\n  client_id: {client_id}\n"
    )
    if where == "environment":
        monkeypatch.setenv("IB_CLIENT_ID", "0")
    settings = IBConnectionDataset(str(credentials)).load()
    with pytest.raises(ValueError, match=r"client id 0 is refused.*reqAutoOpenOrders"):
        run_ingestion(tmp_path, ingestion_parameters(source="ib"), connection=settings)
    assert simulator.stats.connections == 0
    assert REQ_AUTO_OPEN_ORDERS not in simulator.stats.messages_received


def test_the_backfill_connects_read_only_and_sends_no_order_message(tmp_path, simulator):
    # What the product's own client sent, as the simulator received it. ib_insync asks for
    # open and completed orders while connecting unless the connection is read-only.
    run_ingestion(
        tmp_path,
        ingestion_parameters(source="ib", end_date="2024-01-05"),
        connection=connection(simulator),
    )
    received = simulator.stats.messages_received
    assert received.get(REQ_HISTORICAL_DATA) == len(window_sessions(NVDA, START, "2024-01-05"))
    assert set(received) & ORDER_MESSAGES == set()
    assert set(received) & ORDER_STATE_REQUESTS == set()
    assert simulator.stats.rejected_orders == 0


@pytest.fixture
def event_loop_of_its_own():
    """A fresh current event loop for ib_insync's synchronous calls: an earlier test's
    `asyncio.run` leaves the main thread with none (Python 3.11 then refuses to make one)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


def test_the_simulator_refuses_orders(simulator, event_loop_of_its_own):
    ib = IB()
    ib.connect("127.0.0.1", simulator.port, clientId=9, readonly=True, timeout=5)
    try:
        errors = []
        ib.errorEvent += lambda req_id, code, message, contract: errors.append(code)
        # Sent at the wire level on purpose: the product never calls placeOrder.
        ib.client.placeOrder(1, Stock("NVDA", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
        ib.sleep(0.3)
    finally:
        ib.disconnect()
    assert simulator.stats.rejected_orders == 1
    assert simulator.stats.messages_received[PLACE_ORDER] == 1
    assert 321 in errors


def test_importing_the_ib_client_leaves_logger_levels_alone():
    # Levels are configuration (conf/logging.yml), not a side effect of an import.
    script = (
        "import logging\n"
        "names = ['ib_insync', 'ib_insync.client', 'ib_insync.ib', 'ib_insync.wrapper']\n"
        "before = [logging.getLogger(n).level for n in names]\n"
        "import ml_lstm.ib_client, ml_lstm.pipelines.ingestion.sources\n"
        "after = [logging.getLogger(n).level for n in names]\n"
        "assert before == after, (before, after)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_refetch_replaces_settled_sessions_with_the_sources(tmp_path):
    parameters = ingestion_parameters(end_date="2024-01-05")
    sessions = window_sessions(NVDA, START, "2024-01-05")
    run_ingestion(tmp_path, parameters)
    path = tmp_path / "nvda" / "minute_bars" / "2024-01-03.csv"
    header, first, *rest = path.read_text().splitlines()
    stamp, *_ = first.split(",")
    path.write_text("\n".join([header, f"{stamp},-1,-1,-1,-1,0", *rest]) + "\n")  # damaged
    run_ingestion(tmp_path, parameters)  # complete in the ledger: not fetched again
    assert "-1,-1" in path.read_text()

    run_ingestion(tmp_path, {**parameters, "refetch": True})
    assert_stored_equal_market(tmp_path, NVDA, sessions)
    assert {entry["attempts"] for entry in ledger(tmp_path).values()} == {2}


@pytest.mark.parametrize("format_date", [1, 2])
def test_a_backfill_from_a_simulator_replaying_a_csv_stores_that_csv(tmp_path, format_date):
    """The simulator's CSV replay (`--csv`): pandas reads its times at a resolution of its
    choosing (microseconds here), and the answers must still carry the real bar times."""
    sessions = SESSIONS[:2]
    replayed = pd.concat(market_sessions(NVDA, sessions).values(), ignore_index=True)
    csv_path = tmp_path / "replay.csv"
    replayed.to_csv(csv_path, index=False)
    parameters = ingestion_parameters(source="ib", start_date=sessions[0], end_date=sessions[-1])
    parameters["requests"]["format_date"] = format_date

    instrument = instrument_from_parameters(NVDA, 42, csv_path=str(csv_path))
    with SimulatorThread([instrument]) as simulator:
        run_ingestion(tmp_path / "raw", parameters, connection=connection(simulator))

    assert_stored_equal_market(tmp_path / "raw", NVDA, sessions)
