"""The inbox: every update, from the webhook or from polling, is recorded here before Telegram
is told it arrived, and handled from here once, in update order per chat.

`take_in` records an update (`take_in_all` a polled batch; a second arrival of the same update
id is a no-op); `drain_chat` handles a chat's pending updates oldest first while holding that
chat's lock, so two replicas never handle one chat at the same time. On PostgreSQL the lock is
an advisory lock; on SQLite (one process) an asyncio lock is enough. `InboxDrains` runs the
drains of one process: at most `parallel` chats at once (each holds two pooled connections on
PostgreSQL, one for its lock and one to handle the update), so a burst of chats waits its turn
instead of emptying the pool, and the webhook's answer and /healthz always find a connection.

The dispatcher marks an update handled in the transaction that handles it
(`claim_in_transaction`) and notes it (`handled_here`), so `drain_chat` marks with a statement
of its own only the updates the dispatcher did not take (a kind the framework ignores, an update
whose handling failed): one mark an update, not two (issue 14).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import BigInteger, Integer, Update, bindparam, delete, func, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from storage.database import Database
from storage.models import InboxUpdate

log = logging.getLogger(__name__)

# Advisory locks are keyed by two int4s: this namespace and the chat id folded into an int4.
CHAT_LOCK_NAMESPACE = 0x4859  # "HY"


def chat_of(payload: dict[str, Any]) -> int:
    """The chat an update belongs to (0 when it names none, or in a shape that is not
    Telegram's: such an update is still kept, and fails alone when handled)."""

    def id_in(holder: Any, key: str) -> int:
        inner = holder.get(key) if isinstance(holder, dict) else None
        value = inner.get("id") if isinstance(inner, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    message = payload.get("message") or payload.get("edited_message")
    if isinstance(message, dict):
        return id_in(message, "chat")
    query = payload.get("callback_query")
    if isinstance(query, dict):
        if isinstance(query.get("message"), dict):
            return id_in(query["message"], "chat")
        return id_in(query, "from")
    return 0


async def take_in(db: Database, payload: dict[str, Any], now: datetime) -> bool:
    """Record the update; False when this update id was taken in before.

    One INSERT ... ON CONFLICT DO NOTHING: what Telegram waits for is this statement alone."""
    insert = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(InboxUpdate)
        .values(
            update_id=int(payload["update_id"]),
            chat_id=chat_of(payload),
            payload=payload,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["update_id"])
    )
    async with db.transaction() as session:
        result = await session.exec(statement)  # type: ignore[call-overload]
    return bool(result.rowcount)


async def take_in_all(db: Database, payloads: list[dict[str, Any]], now: datetime) -> list[int]:
    """Record a batch of updates (one getUpdates answer) in one transaction; return the chats of
    the updates new to the inbox, in batch order (an update id taken in before is skipped).

    One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING and one commit for the batch, not
    one of each per update (issue 14): the batch is confirmed to Telegram only after this
    commits, so it is kept or fetched again, whole, as before."""
    if not payloads:
        return []
    insert = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    new: dict[int, int] = {}
    async with db.transaction() as session:
        # Chunks keep the statement's parameters well under SQLite's limit (getUpdates gives at
        # most 100 updates, four parameters each).
        for start in range(0, len(payloads), TAKE_IN_CHUNK):
            rows = [
                {
                    "update_id": int(payload["update_id"]),
                    "chat_id": chat_of(payload),
                    "payload": payload,
                    "received_at": now,
                }
                for payload in payloads[start : start + TAKE_IN_CHUNK]
            ]
            statement = (
                insert(InboxUpdate)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["update_id"])
                .returning(col(InboxUpdate.update_id), col(InboxUpdate.chat_id))
            )
            result = await session.exec(statement)  # type: ignore[call-overload]
            new.update((int(update_id), int(chat_id)) for update_id, chat_id in result.all())
    # RETURNING gives no order: the batch's order is Telegram's (update ids ascending).
    return [new[int(p["update_id"])] for p in payloads if int(p["update_id"]) in new]


TAKE_IN_CHUNK = 200


# The update ids each `Database`'s dispatcher marked handled and committed in this process, not
# yet seen by `drain_chat` (which takes each one out). Bounded, in case a dispatcher with the
# inbox is fed other than by `drain_chat`: past the bound the ids are forgotten, and
# `drain_chat` then marks those updates again (a no-op statement), as before.
_HANDLED: WeakKeyDictionary[Database, set[int]] = WeakKeyDictionary()
HANDLED_KEPT = 10_000


def handled_here(db: Database, update_id: int) -> None:
    """Note that the dispatcher's committed transaction marked `update_id` handled."""
    handled = _HANDLED.setdefault(db, set())
    if len(handled) >= HANDLED_KEPT:
        handled.clear()
    handled.add(update_id)


async def claim_in_transaction(session: AsyncSession, update_id: int, now: datetime) -> bool:
    """Mark the update handled in the session's transaction; False if another delivery of it
    got there first."""
    params = {"b_update_id": update_id, "b_now": now}
    result = await session.exec(_claim_statement(), params=params)  # type: ignore[call-overload]
    return bool(result.rowcount)


@functools.cache
def _claim_statement() -> Update:
    """`claim_in_transaction`'s UPDATE, built once with the update id and moment as parameters
    (it runs for every update; issue 14)."""
    return (
        update(InboxUpdate)
        .where(col(InboxUpdate.update_id) == bindparam("b_update_id", type_=BigInteger))
        .where(col(InboxUpdate.processed_at).is_(None))
        .values(processed_at=bindparam("b_now"))
    )


async def mark_processed(db: Database, update_id: int, now: datetime) -> None:
    async with db.transaction() as session:
        await session.exec(
            update(InboxUpdate)
            .where(col(InboxUpdate.update_id) == update_id, col(InboxUpdate.processed_at).is_(None))
            .values(processed_at=now)
        )


async def next_pending(db: Database, chat_id: int) -> InboxUpdate | None:
    pending = await pending_of(db, chat_id, 1)
    return pending[0] if pending else None


# How many of a chat's pending updates `drain_chat` reads at once.
PENDING_READ = 50


async def pending_of(db: Database, chat_id: int, most: int = PENDING_READ) -> list[InboxUpdate]:
    """The chat's oldest pending updates (at most `most`), oldest first."""
    async with db.session() as session:
        rows = await session.exec(_pending_query(), params={"chat_id": chat_id, "most": most})
        return list(rows.all())


@functools.cache
def _pending_query() -> SelectOfScalar[InboxUpdate]:
    """`pending_of`'s statement, built once with the chat and the count as parameters."""
    return (
        select(InboxUpdate)
        .where(
            col(InboxUpdate.chat_id) == bindparam("chat_id", type_=BigInteger),
            col(InboxUpdate.processed_at).is_(None),
        )
        .order_by(col(InboxUpdate.update_id))
        .limit(bindparam("most", type_=Integer))
    )


async def stalled_chats(db: Database, received_before: datetime) -> list[int]:
    """Chats with an update that has waited since before `received_before` (a replica died)."""
    async with db.session() as session:
        rows = await session.exec(
            select(InboxUpdate.chat_id)
            .where(col(InboxUpdate.processed_at).is_(None))
            .where(InboxUpdate.received_at < received_before)
            .group_by(col(InboxUpdate.chat_id))
        )
        return list(rows.all())


async def pending_chats(db: Database) -> list[int]:
    """Every chat with an update not handled yet (at start-up: what a crash interrupted)."""
    async with db.session() as session:
        rows = await session.exec(
            select(InboxUpdate.chat_id)
            .where(col(InboxUpdate.processed_at).is_(None))
            .group_by(col(InboxUpdate.chat_id))
        )
        return list(rows.all())


async def forget_processed(db: Database, before: datetime) -> None:
    """Drop handled updates older than Telegram's retry window; their ids will not come again."""
    async with db.transaction() as session:
        await session.exec(
            delete(InboxUpdate)
            .where(col(InboxUpdate.processed_at).is_not(None))
            .where(InboxUpdate.received_at < before)
        )


async def pending_count(db: Database) -> int:
    async with db.session() as session:
        result = await session.exec(
            select(func.count())
            .select_from(InboxUpdate)
            .where(col(InboxUpdate.processed_at).is_(None))
        )
        return int(result.one())


class ChatLocks:
    """One chat handled by one task at a time, across processes on PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._local: dict[int, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        lock = self._local.setdefault(chat_id, asyncio.Lock())
        async with lock:
            if self.db.engine.dialect.name != "postgresql":
                yield
                return
            key = {"ns": CHAT_LOCK_NAMESPACE, "key": chat_id % 2_147_483_647}
            async with self.db.engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:ns, :key)"), key)
                try:
                    yield
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), key)


async def drain_chat(
    db: Database,
    locks: ChatLocks,
    chat_id: int,
    feed: Callable[[dict[str, Any]], Awaitable[None]],
    now: Callable[[], datetime],
) -> int:
    """Handle the chat's pending updates in order; return how many were handled here."""
    handled = 0
    async with locks.hold(chat_id):
        # The pending rows are read a batch at a time, not one read per update plus one to find
        # none left (issue 14). Holding the chat's lock, no one else handles them meanwhile;
        # the rows read are only ever marked handled, and the dispatcher's mark is conditional
        # (`claim_in_transaction`), so a row read here is still handled exactly once.
        while rows := await pending_of(db, chat_id):
            for row in rows:
                try:
                    await feed(row.payload)
                except Exception:
                    # Marked handled all the same: retrying a poison update forever helps no one.
                    log.exception("update %s could not be handled", row.update_id)
                # The dispatcher marks the row in its own transaction; this covers updates the
                # framework ignores (an edited message, say), which would otherwise stay pending.
                marked = _HANDLED.get(db)
                if marked is not None and row.update_id in marked:
                    marked.discard(row.update_id)
                else:
                    await mark_processed(db, row.update_id, now())
                handled += 1
    return handled


RETRY_WINDOW = timedelta(days=2)


def parallel_drains(pool_size: int, max_overflow: int) -> int:
    """How many chats one process handles at once so that its connection pool never runs dry:
    each drain holds two connections on PostgreSQL, and a third of the pool stays free for
    taking updates in, the worker and /healthz."""
    return max(1, (pool_size + max_overflow) // 3)


class InboxDrains:
    """Handles the inbox of one process: a chat named by `handle_soon` is drained by one task
    (a second call while it drains makes it look again when done, never a second task), and at
    most `parallel` chats are drained at once."""

    def __init__(
        self,
        db: Database,
        feed: Callable[[dict[str, Any]], Awaitable[None]],
        now: Callable[[], datetime],
        *,
        parallel: int = 4,
    ) -> None:
        self.db = db
        self.feed = feed
        self.now = now
        self.locks = ChatLocks(db)
        self.parallel = parallel
        self._slots = asyncio.Semaphore(parallel)
        self._draining: set[int] = set()
        self._again: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def handle_soon(self, chat_id: int) -> None:
        if chat_id in self._draining:
            self._again.add(chat_id)
            return
        self._draining.add(chat_id)
        task = asyncio.create_task(self._drain(chat_id), name=f"inbox-chat-{chat_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, chat_id: int) -> None:
        try:
            while True:
                self._again.discard(chat_id)
                async with self._slots:
                    await drain_chat(self.db, self.locks, chat_id, self.feed, self.now)
                if chat_id not in self._again:
                    return
        except Exception:
            # The rows stay pending; the periodic recovery hands the chat out again.
            log.exception("inbox: handling chat %s failed", chat_id)
        finally:
            self._draining.discard(chat_id)
            self._again.discard(chat_id)

    async def recover(self, received_before: datetime | None = None) -> int:
        """Hand out the chats with updates left pending (all of them when `received_before` is
        None, as at start-up); return how many chats."""
        if received_before is None:
            chats = await pending_chats(self.db)
        else:
            chats = await stalled_chats(self.db, received_before)
        for chat_id in chats:
            self.handle_soon(chat_id)
        return len(chats)

    def cancel(self) -> None:
        """Stop at once (the process is going down hard): what is being handled is rolled back
        and stays in the inbox for the next start."""
        for task in self._tasks:
            task.cancel()

    async def settle(self) -> None:
        """Wait for the drains under way (tests, and a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
