"""The worker: the background work of a deployment, run by exactly one process at a time.

It delivers the outbox (woken after each handled update, and every few seconds) and runs the
periodic ticks on an APScheduler 3 `AsyncIOScheduler` with its in-memory job store. Nothing that
must survive a restart lives in the scheduler: each tick reads what is due from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from domain.clock import Clock
from domain.messages import Sender
from schedules.outbox import OutboxSender, SendLimits
from storage.database import Database
from storage.outbox import OUTBOX_CHANNEL

log = logging.getLogger(__name__)

TickJob = Callable[[], Awaitable[object]]
STOP_GRACE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Tick:
    """A job run every `seconds`; a run still going when the next is due is skipped."""

    name: str
    job: TickJob
    seconds: float


@dataclass(frozen=True, slots=True)
class Daily:
    """A job run every day at `at`, local time (the job decides whether the day counts)."""

    name: str
    job: TickJob
    at: time


class Worker:
    def __init__(
        self,
        db: Database,
        sender: Sender,
        clock: Clock,
        zone: ZoneInfo,
        *,
        outbox_interval: float = 2.0,
        limits: SendLimits | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.zone = zone
        self.outbox = OutboxSender(db, sender, clock, limits=limits or SendLimits())
        self.outbox_interval = outbox_interval
        self.ticks: list[Tick] = []
        self.dailies: list[Daily] = []
        # Ticks running now: stopping waits for them, so none is cut off mid-transaction or
        # left running after the database it uses is closed.
        self._running: set[asyncio.Task[None]] = set()

    def every(self, name: str, seconds: float, job: TickJob) -> None:
        self.ticks.append(Tick(name, job, seconds))

    def daily(self, name: str, at: time, job: TickJob) -> None:
        self.dailies.append(Daily(name, job, at))

    def build_scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=self.zone)
        # The first run of every job is "now" in APScheduler's own time, which is the real
        # time, not the injected clock's: the scheduler waits for and compares real moments,
        # while the jobs themselves read `self.clock`. Given an injected moment in the past (a
        # test's clock, days back), the interval trigger would first step through every
        # interval missed since then (hundreds of thousands for a 2-second tick); given one in
        # the future, nothing would run at start at all.
        start = datetime.now(self.zone)
        for tick in self.ticks:
            scheduler.add_job(
                self._guarded(tick),
                "interval",
                seconds=tick.seconds,
                id=tick.name,
                max_instances=1,
                coalesce=True,
                # A tick that starts late (a busy start-up) still runs, once.
                misfire_grace_time=None,
                # Run once at start too: after downtime, what fell due runs now, once.
                next_run_time=start,
            )
        for daily in self.dailies:
            scheduler.add_job(
                self._guarded(daily),
                "cron",
                hour=daily.at.hour,
                minute=daily.at.minute,
                timezone=self.zone,
                id=daily.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                # Once at start as well: a bot that was down at that time catches up (the job
                # knows whether today's run is still to do).
                next_run_time=start,
            )
        return scheduler

    def _guarded(self, tick: Tick | Daily) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await tick.job()
            except Exception:
                log.exception("tick %s failed; it runs again at its next time", tick.name)
            finally:
                if task is not None:
                    self._running.discard(task)

        return run

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver and tick until `stop` is set."""
        scheduler = self.build_scheduler()
        scheduler.start()
        async with self._woken_by_other_processes():
            try:
                await self.outbox.run(stop, self.outbox_interval)
            finally:
                # No new runs, then let those under way finish: APScheduler's shutdown would
                # cancel them mid-transaction.
                scheduler.pause()
                await self._finish_running_ticks()
                scheduler.shutdown(wait=False)

    async def _finish_running_ticks(self) -> None:
        """Let the ticks under way finish (each is one short transaction, an export at most a
        few seconds); any still going after STOP_GRACE_SECONDS is cancelled, and awaited."""
        if not self._running:
            return
        _done, late = await asyncio.wait(set(self._running), timeout=STOP_GRACE_SECONDS)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _woken_by_other_processes(self) -> AsyncIterator[None]:
        """On PostgreSQL, LISTEN for the NOTIFY web replicas send when they write messages."""
        if self.db.engine.dialect.name != "postgresql":
            yield
            return
        async with self.db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            listener = raw.driver_connection

            def wake(*_args: object) -> None:
                self.outbox.wake.set()

            await listener.add_listener(OUTBOX_CHANNEL, wake)  # type: ignore[union-attr]
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(OUTBOX_CHANNEL, wake)  # type: ignore[union-attr]
