"""The outbox sender: delivers pending rows through a channel's `Sender`.

Each chat's messages go out in the order they were written (a row waiting for a retry holds back
the rows behind it in the same chat); different chats proceed in parallel. A row is marked sent
only after the Bot API accepted it. Temporary failures (network, 5xx, 429) are retried, a 429
after the `retry_after` Telegram asked for, others with exponential backoff; refusals (400, 403)
are recorded as failed and not retried. `SendLimits` paces sending within Telegram's limits,
and claims keep two workers from sending the same row (see `OutboxSender`).

A refusal that says the person is out of reach (blocked, deactivated, chat not found) is also
recorded on them (domain.reach), in the same transaction that marks the row failed, and
`on_refused` decides what follows (a task card nobody received moves the request on).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.clock import Clock
from domain.messages import DeliveryRefused, DeliveryRetry, NotModified, Outbound, Sender
from domain.reach import Refusal, record_refusal, refusal_of
from storage.database import Database
from storage.models import OutboxMessage
from storage.outbox import latest_sent_message_id

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
MAX_BACKOFF_SECONDS = 300.0
BATCH = 500
# A refused task card moves the request on, which writes a new card: delivered in the same
# pass, up to once per level of the ladder.
FOLLOW_UP_ROUNDS = 5

# What follows a refusal that put someone out of reach, inside the transaction that records it.
# `first` is True for the refusal that put the person out of reach (not for rows queued after).
RefusalHandler = Callable[[AsyncSession, OutboxMessage, Refusal, bool], Awaitable[None]]


def backoff_seconds(attempts: int) -> float:
    return min(2.0**attempts, MAX_BACKOFF_SECONDS)


class SendLimits:
    """Keeps the whole deployment inside Telegram's send limits: about 30 messages a second in
    all and about one a second per chat, with the short bursts Telegram tolerates (a reply of
    two or three messages goes out at once)."""

    def __init__(
        self,
        *,
        per_second: float = 30.0,
        per_chat_per_second: float = 1.0,
        chat_burst: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_second = per_second
        self.per_chat_per_second = per_chat_per_second
        self.chat_burst = chat_burst
        self.monotonic = monotonic
        self.sleep = sleep
        self._global = _Bucket(per_second, max(1.0, per_second))
        self._chats: dict[int, _Bucket] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat_id: int) -> None:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Bucket(self.per_chat_per_second, self.chat_burst)
        while True:
            async with self._lock:
                now = self.monotonic()
                delay = max(chat.delay(now), self._global.delay(now))
                if delay <= 0:
                    chat.take(now)
                    self._global.take(now)
                    return
            await self.sleep(delay)


class _Bucket:
    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.at: float | None = None

    def _refill(self, now: float) -> None:
        if self.at is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def delay(self, now: float) -> float:
        self._refill(now)
        # The tolerance keeps float rounding from asking for a wait too short to pass.
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


class OutboxSender:
    """Claims due rows and delivers them.

    Rows are claimed (`claimed_at`) with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so
    even two active workers never send one row twice; a claim older than `claim_timeout` (its
    worker died mid-send) is taken over. Only a chat's due prefix is claimed, and a chat with a
    row claimed elsewhere is left alone, which keeps each chat's order.
    """

    def __init__(
        self,
        db: Database,
        sender: Sender,
        clock: Clock,
        *,
        parallel_chats: int = 8,
        limits: SendLimits | None = None,
        claim_timeout: timedelta = timedelta(seconds=60),
    ) -> None:
        self.db = db
        self.sender = sender
        self.clock = clock
        self.wake = asyncio.Event()
        # None: no pacing (the console and tests); the worker passes Telegram's limits.
        self.limits = limits
        self.claim_timeout = claim_timeout
        self._parallel = asyncio.Semaphore(parallel_chats)
        self._delivering = asyncio.Lock()
        self.on_refused: RefusalHandler | None = None
        self._followed_up = False  # `on_refused` ran in this round (it may have written rows)

    async def deliver_due(self) -> int:
        """Deliver every row that is due now; return how many were accepted by the Bot API."""
        delivered = 0
        async with self._delivering:
            for _round in range(FOLLOW_UP_ROUNDS):
                self._followed_up = False
                claimed = await self._claim()
                results = await asyncio.gather(*(self._deliver_chat(c) for c in claimed.values()))
                delivered += sum(results)
                if not self._followed_up:
                    break
        return delivered

    async def _claim(self) -> dict[int, list[OutboxMessage]]:
        now = self.clock.now()
        stale = now - self.claim_timeout
        live_claim = col(OutboxMessage.claimed_at).is_not(None) & (
            col(OutboxMessage.claimed_at) >= stale
        )
        async with self.db.transaction() as session:
            busy = set(
                (
                    await session.exec(
                        select(OutboxMessage.chat_id)
                        .where(OutboxMessage.status == "pending")
                        .where(live_claim)
                        .distinct()
                    )
                ).all()
            )
            rows = (
                await session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.status == "pending")
                    .where(~live_claim)
                    .order_by(col(OutboxMessage.id))
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            by_chat: dict[int, list[OutboxMessage]] = defaultdict(list)
            for row in rows:
                if row.chat_id not in busy:
                    by_chat[row.chat_id].append(row)
            claimed: dict[int, list[OutboxMessage]] = {}
            for chat_id, chat_rows in by_chat.items():
                due = list(itertools.takewhile(lambda r: r.next_attempt_at <= now, chat_rows))
                for row in due:
                    row.claimed_at = now
                    session.add(row)
                if due:
                    claimed[chat_id] = due
        return claimed

    async def _deliver_chat(self, rows: list[OutboxMessage]) -> int:
        delivered = 0
        async with self._parallel:
            for index, row in enumerate(rows):
                if self.limits is not None:
                    await self.limits.wait(row.chat_id)
                outcome = await self._deliver_one(row)
                if outcome == "retry":
                    # The rows behind it wait with it, to keep the chat's order.
                    await self._release([r.id for r in rows[index + 1 :] if r.id is not None])
                    break
                delivered += outcome == "sent"
        return delivered

    async def _release(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        async with self.db.transaction() as session:
            for row_id in row_ids:
                row = await session.get(OutboxMessage, row_id)
                if row is not None:
                    row.claimed_at = None
                    session.add(row)

    async def _deliver_one(self, row: OutboxMessage) -> str:
        assert row.id is not None
        message = Outbound.from_payload(row.chat_id, row.payload, row.ref_key)
        try:
            message_id = await self._transmit(message)
        except DeliveryRetry as retry:
            await self._record_retry(row.id, str(retry), retry.after)
            return "retry"
        except DeliveryRefused as refused:
            log.warning("outbox row %s refused: %s", row.id, refused)
            await self._refused(row, str(refused))
            return "failed"
        except Exception as error:
            # A bug in a channel must not stop delivery to everyone else: retry with backoff.
            log.exception("outbox row %s: unexpected error", row.id)
            await self._record_retry(row.id, f"{type(error).__name__}: {error}", None)
            return "retry"
        await self._update(
            row.id, status="sent", sent_at=self.clock.now(), sent_message_id=message_id
        )
        return "sent"

    async def _transmit(self, message: Outbound) -> int:
        """Send, or edit the message `edit_ref` names; return the id of the message shown."""
        if message.edit_ref:
            async with self.db.session() as session:
                existing = await latest_sent_message_id(session, message.chat_id, message.edit_ref)
            if existing is not None:
                try:
                    await self.sender.edit(message, existing)
                except NotModified:
                    pass
                except DeliveryRefused as refused:
                    if "not found" not in str(refused).lower():
                        raise
                    # The user deleted the card: show its new state as a new message.
                    return await self.sender.send(message)
                return existing
        return await self.sender.send(message)

    async def _refused(self, row: OutboxMessage, reason: str) -> None:
        """Mark the row failed; if the refusal means the person is out of reach, record that
        and let `on_refused` act on it, all in one transaction."""
        refusal = refusal_of(reason)
        async with self.db.transaction() as session:
            stored = await session.get(OutboxMessage, row.id)
            if stored is None:
                return
            stored.status = "failed"
            stored.last_error = reason[:500]
            stored.attempts += 1
            session.add(stored)
            if refusal is None:
                return
            now = self.clock.now()
            first = await record_refusal(session, stored.chat_id, refusal, now)
            if self.on_refused is not None:
                await self.on_refused(session, stored, refusal, first)
                self._followed_up = True

    async def _record_retry(self, row_id: int, reason: str, after: float | None) -> None:
        async with self.db.transaction() as session:
            row = await session.get(OutboxMessage, row_id)
            if row is None:
                return
            row.attempts += 1
            row.last_error = reason[:500]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                log.error(
                    "outbox row %s gave up after %s attempts: %s", row_id, row.attempts, reason
                )
            delay = after if after is not None else backoff_seconds(row.attempts)
            row.next_attempt_at = self.clock.now() + timedelta(seconds=delay)
            row.claimed_at = None
            session.add(row)

    async def _update(self, row_id: int, **values: object) -> None:
        async with self.db.transaction() as session:
            row = await session.get(OutboxMessage, row_id)
            if row is None:
                return
            for name, value in values.items():
                setattr(row, name, value)
            row.attempts += 1
            session.add(row)

    async def run(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """Deliver whenever woken (after each handled update) and every `interval` seconds."""
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                log.exception("outbox delivery failed; will try again")
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
