"""One instrument's live loop: catch up, sleep until the open, stream a session, predict at
each completed bar, recover from faults, and stop when told.

Time is the feed's: bar times and TWS's currentTime (`LiveFeed.now`), never this
machine's clock, so a session replayed at 1000x runs exactly as a live one.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pandas as pd

from ml_lstm.backfill import SessionWindow
from ml_lstm.calendars import utc
from ml_lstm.pipelines.inference.nodes import forecast_test_range

from .bar_path import BarPredictor, Prediction, load_served_model
from .feed import FeedFault, LiveFeed
from .logs import held_logs
from .session import EarlierRows, StreamedSession, bars_and_rejected, raw_text, session_at
from .settings import LiveSettings
from .stats import LiveStats
from .stopping import Stopper
from .store import LiveStore

logger = logging.getLogger(__name__)


class InstrumentLoop:
    def __init__(
        self,
        instrument: dict,
        parameters: dict,
        feed: LiveFeed,
        store: LiveStore,
        settings: LiveSettings,
        stopper: Stopper,
        run_id: str,
    ) -> None:
        self.instrument = instrument
        self.parameters = parameters
        self.data_processing = parameters["data_processing"]
        self.feed = feed
        self.store = store
        self.settings = settings
        self.stopper = stopper
        self.run_id = run_id
        self.stats = LiveStats()
        self.model: dict | None = None
        self.test_range: pd.DataFrame | None = None
        self.frequency = self.data_processing["frequency"]
        self.last_predicted: pd.Timestamp | None = None
        self._reconnects = 0
        self._session: StreamedSession | None = None
        self._closed: set[str] = set()
        # Every minute before this is complete and stored (a later bar came, or the
        # catch-up's historical answer had it).
        self._complete_until = pd.Timestamp(0, tz="UTC")
        self._history_before: str | None = None
        self._earlier_rows = EarlierRows()
        self.predictor: BarPredictor | None = None
        self._chart: asyncio.Future | None = None
        self._chart_features: pd.DataFrame | None = None

    @property
    def stopper_reason(self) -> str | None:
        """Why the loop was stopped (a signal, the kill-switch file), None for `until`."""
        return self.stopper.reason

    @property
    def symbol(self) -> str:
        return self.instrument["symbol"]

    # -- the life of the loop ----------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.stopper.stopped:
                try:
                    if await self._step():
                        break
                    self._reconnects = 0
                except FeedFault as fault:
                    await self._recover(str(fault))
        finally:
            self.feed.disconnect()
            if self._chart is not None:
                # A chart being drawn is finished, never left half-written.
                await self._chart
        logger.info("%s: live loop ended (%s)", self.symbol, self.stopper.reason or "until")

    async def _step(self) -> bool:
        """Up to the end of one session (or a sleep); True when `until` has passed."""
        await self.feed.connect()
        now = await self.feed.current_time()
        session = self._session
        if (
            session is not None
            and session.window.session not in self._closed
            and (now >= session.window.close)
        ):
            # The session ended while the stream was down: settle it now.
            await self._close_session(session.window)
        if self._past_until(now):
            return True
        window, previous_close = session_at(self.instrument, now)
        if now < window.open:
            await self._sleep_until(min(window.open, self.settings.until or window.open))
            return False
        await self._catch_up(now)
        self._open(window, now)
        return await self._stream(window, previous_close)

    async def _recover(self, fault: str) -> None:
        self._reconnects += 1
        self.stats.faults.append(fault)
        self.feed.disconnect()
        limit = self.settings.max_reconnects
        if limit is not None and self._reconnects > limit:
            raise ConnectionError(f"{self.symbol}: gave up after {limit} reconnections ({fault}).")
        delay = min(
            self.settings.retry_backoff_s * 2 ** (self._reconnects - 1),
            self.settings.retry_backoff_max_s,
        )
        logger.warning(
            "%s: %s; reconnecting in %.1f s (attempt %d), then backfilling and resubscribing",
            self.symbol,
            fault,
            delay,
            self._reconnects,
        )
        await self.stopper.wait(delay)

    def _past_until(self, now: pd.Timestamp) -> bool:
        until = self.settings.until
        return until is not None and now >= until

    async def _sleep_until(self, moment: pd.Timestamp) -> None:
        """Sleeps (feed time) until `moment`, asking TWS's time ever less often."""
        now = self.feed.now
        logger.info(
            "%s: outside sessions; sleeping until %s (feed time now %s)", self.symbol, moment, now
        )
        self.stats.sleeps.append((now, moment))
        while not self.stopper.stopped:
            remaining = (moment - now).total_seconds()
            if remaining <= 0:
                return
            # Half the remaining time at the feed's measured speed, so never past `moment`
            # (a short first step measures the speed: a replay may run 1000x).
            if self.feed.measured_speed:
                step = min(self.settings.max_sleep_s, 0.5 * remaining / self.feed.speed())
            else:
                step = 0.2
            if await self.stopper.wait(max(step, 0.01)):
                return
            now = await self.feed.current_time()

    async def _catch_up(self, now: pd.Timestamp) -> None:
        """The batch ingestion up to `now` (in a thread: it drives its own event loop)."""
        try:
            await asyncio.to_thread(self.store.catch_up, now)
            # The historical answer holds every minute that had ended by `now`.
            self._complete_until = max(self._complete_until, now.floor("min"))
        except ConnectionError as error:
            # TWS went away during the backfill (e.g. its restart): try again after backoff.
            raise FeedFault(f"the catch-up backfill lost TWS ({error})") from None

    def prepare(self) -> None:
        """Loads the served model (champion or pinned) once, checked against the features of
        the stored bars, before the feed is touched."""
        self.model, features = load_served_model(self.store, self.instrument, self.parameters)
        self.predictor = BarPredictor(self.instrument, self.parameters, self.model, self.run_id)
        if self.settings.chart:
            self.test_range = forecast_test_range(
                self.model, features, self.parameters["modelling"]
            )

    def _open(self, window: SessionWindow, now: pd.Timestamp) -> None:
        """The session's stored minutes and the bars of the sessions before it."""
        if self._history_before != window.session:
            # Earlier sessions do not change while this one streams: read them once.
            table = self.store.raw_table()
            bars, rejected = bars_and_rejected(table, self.instrument, self.data_processing, now)
            earlier = bars["session"].astype(str) < window.session
            self.predictor.use_history(bars[earlier].reset_index(drop=True))
            self._earlier_rows = EarlierRows.before(window.session, table, rejected)
            self._history_before = window.session
        session = StreamedSession(window, self.instrument, self.frequency)
        session.earlier = self._earlier_rows
        stored = self.store.stored_text(window.session)
        if stored is not None and stored.count("\n") > 1:
            session.adopt(stored)
        self._session = session
        if self.last_predicted is None:
            # Bars completed before the loop started are the batch's: predict from the next.
            done = session.bars_completed(now)
            self.last_predicted = (
                done["bar_start"].iloc[-1] if len(done) else window.open - pd.Timedelta(seconds=1)
            )

    # -- streaming a session -----------------------------------------------------------

    async def _stream(self, window: SessionWindow, previous_close: pd.Timestamp) -> bool:
        feed = self.feed
        # The first answer must hold a bar (ib_insync drops updates to an empty list): from
        # the open once the session has bars, else from the end of the session before.
        # The seconds-long duration also keeps a resubscription from being the identical
        # request that IB's pacing rules make wait 15 s.
        stored = self._session.rows > 0
        await feed.subscribe(window.open if stored else previous_close - pd.Timedelta(minutes=30))
        self._reconnects = 0
        while True:
            await self._process()
            if feed.now >= window.close:
                await self._close_session(window)
                return self._past_until(feed.now)
            if self._past_until(feed.now) or self.stopper.stopped:
                feed.cancel()
                return True
            if feed.fault is not None:
                raise FeedFault(feed.fault)
            feed.changed.clear()
            if not await self._wait_for_change():
                feed.check_stall(True, self.settings.stall_after_s)
                if feed.fault is None and not feed.offline:
                    await feed.current_time()

    async def _wait_for_change(self) -> bool:
        """True when the feed changed (or a stop came) within `clock_poll_s`."""
        changed = asyncio.ensure_future(self.feed.changed.wait())
        stopped = asyncio.ensure_future(self.stopper.event.wait())
        done, pending = await asyncio.wait(
            {changed, stopped},
            timeout=self.settings.clock_poll_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in pending:
            task.cancel()
        return bool(done)

    async def _process(self) -> None:
        """Stores the minutes the stream has completed and predicts at each bar they complete.

        Order: the bar's prediction is computed from the session's new minutes, then the
        session's text is written (atomically, locked), and the row is appended only after
        that write, so a row never exists for unstored minutes. Not in a thread: beside the
        computation a writing thread made it ~40% slower on 2 cores, and after it the
        hand-over cost ~1.5 ms, more than the write (~0.4 ms with its fsync). Log lines wait
        until the rows are written (`held_logs`).
        """
        session, feed = self._session, self.feed
        bars = feed.bars or []
        with held_logs():
            minutes = session.completed_minutes(bars, feed.what_to_show)
            pending = None
            if len(minutes):
                session.add(minutes)
                pending = session.text
                self.stats.minutes_written += len(minutes)
                logger.info(
                    "%s %s: stored %d minute(s) up to %s (%d in the session)",
                    self.symbol,
                    session.window.session,
                    len(minutes),
                    minutes["timestamp"].iloc[-1],
                    session.rows,
                )
            if bars:
                self._complete_until = max(self._complete_until, utc(bars[-1].date))
            self._predict_completed((feed.arrived_at, feed.arrived_cpu), pending)

    def _store(self, text: str) -> bool:
        """Writes the session's `text`; False when its file then holds rows of another
        writer too, which the session adopts (see `save_session_file`)."""
        session = self._session
        stored = self.store.save_session(session.window.session, text)
        if stored == session.text:
            return True
        session.adopt(stored)
        return False

    def _predict_completed(
        self, completed: tuple[float, float], pending: str | None = None
    ) -> None:
        """`completed`: perf_counter and thread CPU time when the ending update came;
        `pending`: the session's text still to be written before any row is appended (and
        written even when a prediction fails: the minutes are never lost)."""
        try:
            for bar_start, bar_end in self._session.bars_ended(
                self.last_predicted, self._complete_until
            ):
                if bar_start > self.last_predicted:
                    prediction = self._predictor_at(bar_start, bar_end)
                    if pending is not None:
                        unchanged, pending = self._store(pending), None
                        if not unchanged:
                            # Another writer's rows were kept: predict from what is stored.
                            prediction = self._predictor_at(bar_start, bar_end)
                    if prediction is not None:
                        self._record(prediction, completed, time.perf_counter())
                    self.last_predicted = bar_start
        finally:
            if pending is not None:
                self._store(pending)

    def _predictor_at(self, bar_start: pd.Timestamp, bar_end: pd.Timestamp) -> Prediction | None:
        prediction = self.predictor.predict(self._session, bar_start, bar_end)
        if prediction is None:
            logger.info(
                "%s: bar %s completed without a trade: no prediction", self.symbol, bar_start
            )
        else:
            logger.info("%s: bar %s completed", self.symbol, bar_start)
        return prediction

    def _record(
        self, prediction: Prediction, completed: tuple[float, float], stored_at: float
    ) -> None:
        """Appends the row (its latency measured up to now) and keeps the loop's figures."""
        row = prediction.row
        row["latency_ms"] = round((time.perf_counter() - completed[0]) * 1000, 3)
        self.store.append_prediction(row)
        self.stats.add(prediction, completed, stored_at, time.perf_counter(), time.thread_time())
        if self.settings.chart and self.test_range is not None:
            self._chart_features = prediction.features
            if self._chart is None or self._chart.done():
                self._chart = asyncio.ensure_future(self._refresh_chart())

    async def _refresh_chart(self) -> None:
        """Redraws the latest-prediction chart off the bar's path (in a thread), once more
        if a newer prediction came meanwhile."""
        while self._chart_features is not None:
            features, self._chart_features = self._chart_features, None
            await asyncio.to_thread(
                self.store.refresh_chart, features, self.test_range, self.run_id
            )

    async def _predict_last_bar(self, window: SessionWindow, completed: tuple) -> None:
        """The session's last minutes, which no later bar proves complete, from TWS's
        historical bars over the stream's own connection: stored and predicted at once,
        before the closing backfill (a connection of its own and the ingestion pipeline,
        a few hundred ms) settles the ledger. Left to that backfill when TWS does not answer."""
        since = self._session.last_minute or window.open
        try:
            bars = await self.feed.historical_minutes(since, window.close)
        except FeedFault as fault:
            logger.info("%s: %s; the closing backfill brings the last minutes", self.symbol, fault)
            self.stats.last_minutes_from_backfill.append(window.session)
            return
        if not bars:
            return
        with held_logs():
            minutes = self._session.new_minutes(list(bars), self.feed.what_to_show)
            if len(minutes):
                self._session.add(minutes)
                self.stats.minutes_written += len(minutes)
            self._complete_until = window.close
            self._predict_completed(completed, self._session.text)

    async def _close_session(self, window: SessionWindow) -> None:
        """The session is over: stop the stream and let the batch ingestion settle it. Its
        historical answer adds the last minute(s), which no later bar proved complete, and
        makes the ledger entry what a backfill writes; then the last bar is predicted."""
        completed = (self.feed.arrived_at, self.feed.arrived_cpu)
        self.feed.cancel()
        self._closed.add(window.session)
        streamed = raw_text(self._session.raw)
        self.stats.streamed_sessions[window.session] = streamed
        await self._predict_last_bar(window, completed)
        await self._catch_up(self.feed.now)
        stored = self.store.stored_text(window.session)
        if stored is not None:
            if not stored.startswith(streamed):
                logger.warning(
                    "%s %s: the session as streamed differs from TWS's historical bars; "
                    "the historical bars are kept",
                    self.symbol,
                    window.session,
                )
            self._session.adopt(stored)
        self._complete_until = window.close
        self._predict_completed(completed)
        logger.info(
            "%s: session %s closed (%d minutes stored)",
            self.symbol,
            window.session,
            self._session.rows,
        )
