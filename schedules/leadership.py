"""Exactly one active worker: whoever holds the lease does the background work.

On PostgreSQL the lease is a session-level advisory lock on a connection kept open while the
worker runs: if the process dies, the connection closes, the lock frees, and a standby (retrying
every `retry_seconds`) takes over within seconds. The `worker_leases` row records who holds it
and a heartbeat, for `/healthz`; it is a report, not the lock. On SQLite there is one process,
so the lease is always granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.clock import Clock
from storage.database import Database
from storage.models import WorkerLease

log = logging.getLogger(__name__)

WORKER_LOCK_KEY = 0x48_55_49_59_49_4E  # "HUIYIN"
LEASE_NAME = "worker"

Work = Callable[[asyncio.Event], Awaitable[None]]


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        holder: str | None = None,
        retry_seconds: float = 2.0,
        heartbeat_seconds: float = 5.0,
        grace_seconds: float = 10.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.holder = holder or default_holder()
        self.retry_seconds = retry_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.grace_seconds = grace_seconds
        self.active = asyncio.Event()

    async def run(self, stop: asyncio.Event, work: Work) -> None:
        """Wait for the lease, do `work` while holding it, and stand by again if it is lost."""
        while not stop.is_set():
            if self.db.engine.dialect.name != "postgresql":
                await self._lead(None, stop, work)
                return
            conn = await self.db.engine.connect()
            try:
                acquired = await self._try_lock(conn)
                if acquired:
                    await self._lead(conn, stop, work)
            except Exception:
                log.exception("worker lease: lost the database; standing by")
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry_seconds)

    async def _try_lock(self, conn: AsyncConnection) -> bool:
        result = await conn.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": WORKER_LOCK_KEY}
        )
        return bool(result.scalar())

    async def _lead(self, conn: AsyncConnection | None, stop: asyncio.Event, work: Work) -> None:
        log.info("worker lease: %s is now the active worker", self.holder)
        await self._record(acquired=True)
        self.active.set()
        lost = asyncio.Event()
        work_stop = asyncio.Event()
        working = asyncio.create_task(work(work_stop), name="worker")
        beating = asyncio.create_task(self._heartbeat(conn, lost), name="worker-heartbeat")
        stopping = asyncio.create_task(stop.wait())
        losing = asyncio.create_task(lost.wait())
        graceful = False
        try:
            await asyncio.wait({working, stopping, losing}, return_when=asyncio.FIRST_COMPLETED)
            graceful = not lost.is_set()
        finally:
            work_stop.set()
            for task in (beating, stopping, losing):
                task.cancel()
            # A clean stop lets the current send finish; a lost lease or a cancelled process
            # stops at once, since another worker may already be taking over.
            if graceful:
                await asyncio.wait({working}, timeout=self.grace_seconds)
            working.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await working
            self.active.clear()
        if lost.is_set():
            log.error("worker lease: %s lost the lease; standing by", self.holder)
        elif conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": WORKER_LOCK_KEY}
                )

    async def _heartbeat(self, conn: AsyncConnection | None, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                if conn is not None:
                    await conn.execute(text("SELECT 1"))
                await self._record(acquired=False)
            except Exception:
                log.exception("worker lease: heartbeat failed")
                lost.set()
                return

    async def _record(self, *, acquired: bool) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            lease = await session.get(WorkerLease, LEASE_NAME)
            if lease is None:
                lease = WorkerLease(
                    name=LEASE_NAME, holder=self.holder, acquired_at=now, heartbeat_at=now
                )
            if acquired:
                lease.holder = self.holder
                lease.acquired_at = now
            lease.heartbeat_at = now
            session.add(lease)
