"""The outbox sender: delivers pending rows through a channel's `Sender`.

Each chat's messages go out in the order they were written (a row waiting for a retry holds back
the rows behind it in the same chat); different chats proceed in parallel. A row is marked sent
only after the Bot API accepted it. Temporary failures (network, 5xx, 429) are retried, a 429
after the `retry_after` Telegram asked for, others with exponential backoff; refusals (400, 403)
are recorded as failed and not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import timedelta

from sqlmodel import col, select

from bot.channels.types import DeliveryRefused, DeliveryRetry, NotModified, Outbound, Sender
from bot.clock import Clock
from storage.database import Database
from storage.models import OutboxMessage
from storage.outbox import latest_sent_message_id

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
MAX_BACKOFF_SECONDS = 300.0
BATCH = 500


def backoff_seconds(attempts: int) -> float:
    return min(2.0**attempts, MAX_BACKOFF_SECONDS)


class OutboxSender:
    def __init__(
        self, db: Database, sender: Sender, clock: Clock, *, parallel_chats: int = 8
    ) -> None:
        self.db = db
        self.sender = sender
        self.clock = clock
        self.wake = asyncio.Event()
        self._parallel = asyncio.Semaphore(parallel_chats)
        self._delivering = asyncio.Lock()

    async def deliver_due(self) -> int:
        """Deliver every row that is due now; return how many were accepted by the Bot API."""
        async with self._delivering:
            async with self.db.session() as session:
                rows = (
                    await session.exec(
                        select(OutboxMessage)
                        .where(OutboxMessage.status == "pending")
                        .order_by(col(OutboxMessage.id))
                        .limit(BATCH)
                    )
                ).all()
            by_chat: dict[int, list[OutboxMessage]] = defaultdict(list)
            for row in rows:
                by_chat[row.chat_id].append(row)
            results = await asyncio.gather(*(self._deliver_chat(c) for c in by_chat.values()))
            return sum(results)

    async def _deliver_chat(self, rows: list[OutboxMessage]) -> int:
        delivered = 0
        async with self._parallel:
            for row in rows:
                if row.next_attempt_at > self.clock.now():
                    break
                outcome = await self._deliver_one(row)
                if outcome == "retry":
                    break
                delivered += outcome == "sent"
        return delivered

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
            await self._update(row.id, status="failed", last_error=str(refused)[:500])
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
