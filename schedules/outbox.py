"""The outbox sender: delivers pending rows through a channel's `Sender`.

Each chat's messages go out in the order they were written (a row waiting for a retry holds back
the rows behind it in the same chat); different chats proceed in parallel, each in its own task,
so a chat draining a backlog at Telegram's one message a second never delays a reply to another.
A row is marked sent only after the Bot API accepted it; the rows sent are marked together, in
one statement, before the sender waits, claims again or looks up a message to edit, so a
delivered row costs well under one statement (issue 14). Temporary failures (network, 5xx, 429)
are retried, a 429 after the `retry_after` Telegram asked for, others with exponential backoff;
refusals (400, 403) are recorded as failed and not retried. `SendLimits` paces sending within
Telegram's limits (about 30 a second in all, whichever chats they go to), and claims keep two
workers from sending the same row (see `OutboxSender`).

A refusal that says the person is out of reach (blocked, deactivated, chat not found) is also
recorded on them (domain.reach), in the same transaction that marks the row failed, and
`on_refused` decides what follows (a task card nobody received moves the request on).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.clock import Clock
from domain.messages import DeliveryRefused, DeliveryRetry, NotModified, Outbound, Sender
from domain.reach import Refusal, record_refusal, refusal_of
from storage.database import Database
from storage.models import OutboxMessage
from storage.outbox import latest_sent_message_id, release_dead_claims

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
MAX_BACKOFF_SECONDS = 300.0
BATCH = 500
# A claim reads at most this many pages of BATCH rows looking for chats to serve.
MAX_PAGES = 4
# At most this many rows of one chat are claimed at once: at one a second they go out well
# within `claim_timeout`, so no claim goes stale while its own drain still holds it.
CHAT_CLAIM = 30
# Chats drained at once without pacing (the console and tests).
UNPACED_PARALLEL_CHATS = 64
# How long a stop waits for the drains under way before cancelling them.
STOP_GRACE_SECONDS = 30.0
# A refused task card moves the request on, which writes a new card: `deliver_due` delivers it
# too, up to once per level of the ladder (the worker is woken for it).
FOLLOW_UP_ROUNDS = 5

# What follows a refusal that put someone out of reach, inside the transaction that records it.
# `first` is True for the refusal that put the person out of reach (not for rows queued after).
RefusalHandler = Callable[[AsyncSession, OutboxMessage, Refusal, bool], Awaitable[None]]


def backoff_seconds(attempts: int) -> float:
    return min(2.0**attempts, MAX_BACKOFF_SECONDS)


class SendLimits:
    """Keeps the whole deployment inside Telegram's send limits: about 30 messages a second in
    all and about one a second per chat, with the short bursts Telegram tolerates (a reply of
    two or three messages goes out at once).

    The total is a sliding window: never more than `per_second` sends in any second. A token
    bucket that starts full, as it was, let a backlog's burst and the refill behind it through
    in the same second (59 in the first second at 30 a second), which Telegram answers with
    429s (bench/send_rate.py). Each chat keeps a bucket of `chat_burst`: Telegram documents
    short bursts to one chat as tolerated, as long as they average one a second. Both keep time
    to spare, for the network delivering two sends closer together than they left: the window
    is `margin` longer, a chat's messages after its burst `chat_margin` further apart (one
    chat's sends are few, so more room costs nothing; the total's room costs throughput)."""

    def __init__(
        self,
        *,
        per_second: float = 30.0,
        per_chat_per_second: float = 1.0,
        chat_burst: int = 3,
        margin: float = 0.05,
        chat_margin: float = 0.15,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_second = per_second
        self.per_chat_per_second = per_chat_per_second
        self.chat_burst = chat_burst
        self.monotonic = monotonic
        self.sleep = sleep
        count = max(1, int(per_second))
        self._global = _Window(count, count / per_second + margin)
        self._chat_rate = 1 / (1 / per_chat_per_second + chat_margin)
        self._chats: dict[int, _Bucket] = {}
        self._lock = asyncio.Lock()

    def would_wait(self, chat_id: int) -> bool:
        """Whether `wait` would have to sleep now (the sender marks what it sent first)."""
        now = self.monotonic()
        chat = self._chats.get(chat_id)
        return (chat is not None and chat.delay(now) > 0) or self._global.delay(now) > 0

    async def wait(self, chat_id: int) -> None:
        while True:
            async with self._lock:
                now = self.monotonic()
                chat = self._chats.get(chat_id)
                if chat is None:
                    chat = self._chats[chat_id] = _Bucket(self._chat_rate, self.chat_burst)
                delay = max(chat.delay(now), self._global.delay(now))
                if delay <= 0:
                    chat.take(now)
                    self._global.take(now)
                    self._forget_idle_chats(now)
                    return
            await self.sleep(delay)

    def _forget_idle_chats(self, now: float) -> None:
        """A chat whose bucket is full again limits nothing: dropped once the map has grown, so
        a district's worth of chats does not stay in memory."""
        if len(self._chats) > 4096:
            self._chats = {key: chat for key, chat in self._chats.items() if not chat.full(now)}


class _Window:
    """At most `count` events in any `seconds`: the times of the last `count`."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count = count
        self.seconds = seconds
        self.times: deque[float] = deque(maxlen=count)

    def delay(self, now: float) -> float:
        if len(self.times) < self.count:
            return 0.0
        # The tolerance keeps float rounding from asking for a wait too short to pass.
        wait = self.times[0] + self.seconds - now
        return wait if wait > 1e-9 else 0.0

    def take(self, now: float) -> None:
        self.times.append(now)


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

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity - 1e-9

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


def default_parallel_chats(limits: SendLimits | None) -> int:
    """Enough chats draining at once to keep the total rate busy when each chat waits on its
    own, twice over (some wait on their burst window)."""
    if limits is None:
        return UNPACED_PARALLEL_CHATS
    return max(8, 2 * math.ceil(limits.per_second / limits.per_chat_per_second))


class _Chat:
    """One chat's drain: the rows claimed for it, delivered in order by one task."""

    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id
        self.rows: deque[OutboxMessage] = deque()
        # Claim this chat again once `rows` is done: its claim was cut at CHAT_CLAIM, or a
        # claim found new rows for it while it was draining (left for this task, to keep order).
        self.again = False
        self.task: asyncio.Task[None] | None = None


class OutboxSender:
    """Claims due rows and delivers them, each chat in its own task.

    Rows are claimed (`claimed_at`) with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so
    even two active workers never send one row twice; a claim older than `claim_timeout` (its
    worker died mid-send) is taken over. Only a chat's due prefix is claimed (at most CHAT_CLAIM
    rows, so a backlog's claims stay fresh while it drains at one a second), and a chat with a
    row claimed elsewhere is left alone, which keeps each chat's order.

    A claim is two statements whatever its size: the due rows read (page after page while a
    page comes back full, so one chat's backlog never hides the chats behind it), and one
    UPDATE of the rows claimed that leaves out the chats with a live claim (RETURNING the
    chats it claimed).

    Each claimed chat drains in its own task, at most `parallel_chats` at once: a chat waiting
    on its own pacing never holds up another (a reply is not queued behind someone's backlog).
    By default twice as many chats as it takes to fill the total rate at one message a second
    each (60 for Telegram's limits): with 8, a morning's backlog of chats with a few messages
    each went out at 8 a second, not 30 (bench/send_rate.py).
    A claim leaves the chats already draining here to their own task, which claims its chat
    again when its rows are done, so their new rows follow the old ones.
    """

    def __init__(
        self,
        db: Database,
        sender: Sender,
        clock: Clock,
        *,
        parallel_chats: int | None = None,
        limits: SendLimits | None = None,
        claim_timeout: timedelta = timedelta(seconds=60),
        only_chats: frozenset[int] | None = None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.clock = clock
        self.wake = asyncio.Event()
        # None: no pacing (the console and tests); the worker passes Telegram's limits.
        self.limits = limits
        self.claim_timeout = claim_timeout
        self.parallel_chats = parallel_chats or default_parallel_chats(limits)
        # Deliver these chats' rows only (`huiyin console` on a live database: its own chat's,
        # leaving everyone else's to the worker); None: every chat.
        self.only_chats = only_chats
        self._chats: dict[int, _Chat] = {}  # the chats draining now
        # One claim of new chats at a time, so the free slots it counts stay free.
        self._claiming = asyncio.Lock()
        self._crowded = False  # the last claim left due chats for want of a free slot
        self._stopping = False  # the worker is stopping: finish the row under way, no more
        self._sent = 0  # rows accepted by the Bot API, ever (deliver_due reports its share)
        self.on_refused: RefusalHandler | None = None
        self._followed_up = False  # `on_refused` ran (it may have written rows)
        # Rows the Bot API accepted, not yet marked sent: (row id, when, message id), of every
        # chat. They are marked together, in one statement (`_mark_sent`): before any claim,
        # before a drain waits on the limits, looks up a message to edit or records a failure,
        # when CHAT_CLAIM of them have gathered, and when the last drain ends.
        self._marks: list[tuple[int, datetime, int | None]] = []

    async def deliver_due(self) -> int:
        """Deliver every row that is due now and wait until it is done (deliveries already
        under way included); return how many rows the Bot API accepted meanwhile.

        For callers that need everything out when this returns (the console, tests); the worker
        uses `run`, which does not wait for one chat before serving another.
        """
        before = self._sent
        follow_ups = 0
        while True:
            await self._drained()
            self._followed_up = False
            await self._claim_and_start()
            await self._drained()
            if self._crowded:
                continue
            if not self._followed_up or follow_ups >= FOLLOW_UP_ROUNDS - 1:
                break
            follow_ups += 1
        return self._sent - before

    async def _drained(self) -> None:
        """Wait for every chat draining now (and any started meanwhile) to finish."""
        while self._chats:
            tasks = [chat.task for chat in self._chats.values() if chat.task is not None]
            await asyncio.gather(*tasks)

    async def _claim_and_start(self) -> None:
        """Claim the due rows of chats not draining here, up to the free slots, and start a
        drain for each."""
        async with self._claiming:
            free = self.parallel_chats - len(self._chats)
            if free <= 0:
                self._crowded = True
                return
            claimed = await self._claim(slots=free)
            for chat_id, rows in claimed.items():
                chat = self._chats[chat_id] = _Chat(chat_id)
                chat.rows.extend(rows)
                chat.again = len(rows) >= CHAT_CLAIM
                chat.task = asyncio.create_task(self._drain(chat), name=f"outbox-chat-{chat_id}")
                chat.task.add_done_callback(_log_failure)

    async def _claim(
        self, *, slots: int | None = None, chat_id: int | None = None
    ) -> dict[int, list[OutboxMessage]]:
        """Claim the due prefix of up to `slots` chats (or of `chat_id` only, for its drain).

        The chats draining here are left to their drains (marked to claim again), and the chats
        with a live claim are left alone. Two statements: the due rows read (locked), then one
        UPDATE that claims the rows chosen unless their chat has a live claim, and returns the
        chats it claimed. The UPDATE is a statement of its own, after the rows are locked, so a
        claim another worker committed meanwhile is seen (on PostgreSQL each statement sees
        what was committed before it began). The rows sent and not yet marked are marked first,
        in the same transaction: their chats would look busy."""
        now = self.clock.now()
        stale = now - self.claim_timeout
        live_claim = col(OutboxMessage.claimed_at).is_not(None) & (
            col(OutboxMessage.claimed_at) >= stale
        )
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .where(~live_claim)
            .order_by(col(OutboxMessage.id))
            .limit(BATCH)
        )
        if self.only_chats is not None:
            query = query.where(col(OutboxMessage.chat_id).in_(sorted(self.only_chats)))
        if chat_id is None:
            query = query.with_for_update(skip_locked=True)
        else:
            # Its own chat: wait for a lock another claim holds rather than skip a row of it.
            query = query.where(OutboxMessage.chat_id == chat_id).with_for_update()
        marks, self._marks = self._marks, []
        try:
            async with self.db.transaction() as session:
                await self._write_marks(session, marks)
                rows: list[OutboxMessage] = []
                # Page on while a page comes back full, so that a backlog of a few chats filling
                # a page never hides the chats behind it (the sender would idle until the next
                # interval while their rows are due).
                for _page in range(MAX_PAGES):
                    after = rows[-1].id if rows else 0
                    page = (await session.exec(query.where(col(OutboxMessage.id) > after))).all()
                    rows.extend(page)
                    if chat_id is not None or len(page) < BATCH:
                        break
                    waiting = {r.chat_id for r in rows} - self._chats.keys()
                    if slots is not None and len(waiting) > slots:
                        break
                claimed = await self._claim_rows(session, rows, now, slots, whole=chat_id is None)
                if not marks and not claimed:
                    # Nothing written (the worker's idle look every few seconds, a tick with
                    # nothing to send): end without a commit, which costs a sync to disk.
                    await session.rollback()
        except BaseException:
            self._marks[:0] = marks  # not written: marked with the next ones
            raise
        for chat_rows in claimed.values():
            for row in chat_rows:  # detached now: what the claim wrote, for the drain
                row.claimed_at = now
                row.claimed_by = self.db.name
        return claimed

    async def _claim_rows(
        self,
        session: AsyncSession,
        rows: list[OutboxMessage],
        now: datetime,
        slots: int | None,
        *,
        whole: bool,
    ) -> dict[int, list[OutboxMessage]]:
        """Claim each chat's due prefix among `rows` (read in id order), up to `slots` chats,
        in one UPDATE; a chat with a live claim (another worker's) is left out by the UPDATE
        itself. `whole`: a claim for every chat, which sets `_crowded` and marks the chats
        draining here to claim again."""
        stale = now - self.claim_timeout
        busy_chats = (
            select(OutboxMessage.chat_id)
            .where(OutboxMessage.status == "pending")
            .where(col(OutboxMessage.claimed_at).is_not(None))
            .where(col(OutboxMessage.claimed_at) >= stale)
        )
        by_chat: dict[int, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            draining = self._chats.get(row.chat_id)
            if whole and draining is not None:
                draining.again = True
                continue
            by_chat[row.chat_id].append(row)
        due_chats = {
            chat: due[:CHAT_CLAIM]
            for chat, chat_rows in by_chat.items()
            if (due := list(itertools.takewhile(lambda r: r.next_attempt_at <= now, chat_rows)))
        }
        claimed: dict[int, list[OutboxMessage]] = {}
        busy: set[int] = set()
        if whole:
            self._crowded = False
        # Mostly one round; another only when the UPDATE found chats busy while chats were
        # left for want of a slot, so those get the slots the busy ones would have taken.
        while True:
            chosen: dict[int, list[OutboxMessage]] = {}
            for chat, due in due_chats.items():
                if chat in claimed or chat in busy:
                    continue
                if slots is not None and len(claimed) + len(chosen) >= slots:
                    break
                chosen[chat] = due
            left = len(due_chats) - len(claimed) - len(busy) - len(chosen)
            if not chosen:
                break
            ids = [r.id for chat_rows in chosen.values() for r in chat_rows if r.id is not None]
            # One statement for the whole claim (at most MAX_PAGES * BATCH ids).
            result = await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids))
                .where(col(OutboxMessage.chat_id).not_in(busy_chats))
                .values(claimed_at=now, claimed_by=self.db.name)
                .returning(col(OutboxMessage.chat_id))
                .execution_options(synchronize_session=False)
            )  # type: ignore[call-overload]
            taken = set(result.scalars().all())
            for chat, due in chosen.items():
                if chat in taken:
                    claimed[chat] = due
                else:
                    busy.add(chat)
            if not left or taken == chosen.keys():
                break
        if whole and len(due_chats) > len(claimed) + len(busy):
            self._crowded = True
        return claimed

    async def _drain(self, chat: _Chat) -> None:
        """Deliver the chat's rows in order; then, if more may be due, claim them and go on."""
        try:
            while chat.rows or chat.again:
                if self._stopping:
                    break
                if not chat.rows:
                    chat.again = False
                    more = (await self._claim(chat_id=chat.chat_id)).get(chat.chat_id, [])
                    chat.rows.extend(more)
                    chat.again = chat.again or len(more) >= CHAT_CLAIM
                    continue
                row = chat.rows.popleft()
                if self.limits is not None:
                    if self._marks and self.limits.would_wait(row.chat_id):
                        await self._mark_sent()
                    await self.limits.wait(row.chat_id)
                outcome = await self._deliver_one(row, chat)
                if outcome == "retry":
                    # The rows behind it wait with it, to keep the chat's order.
                    break
                self._sent += outcome == "sent"
                if len(self._marks) >= CHAT_CLAIM:
                    await self._mark_sent()
            if len(self._chats) == 1:  # the last drain: nobody else will mark them soon
                await self._mark_sent()
            await self._release_rest(chat)
        except BaseException:  # cancelled too: what was sent is marked, not sent again
            with contextlib.suppress(Exception):
                await self._mark_sent()
            with contextlib.suppress(Exception):
                await self._release_rest(chat)
            raise
        finally:
            # Nothing is awaited between the last look at `chat.rows` and this: a claim either
            # gave its rows to this drain or finds the chat free.
            del self._chats[chat.chat_id]
            if self._crowded:
                self.wake.set()  # a slot is free for a chat the last claim had to leave

    async def _release_rest(self, chat: _Chat) -> None:
        while chat.rows:
            row_ids = [r.id for r in chat.rows if r.id is not None]
            chat.rows.clear()
            await self._release(row_ids)

    async def _release(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        async with self.db.transaction() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(row_ids))
                .values(claimed_at=None, claimed_by=None)
                .execution_options(synchronize_session=False)
            )  # type: ignore[call-overload]

    async def _mark_sent(self) -> None:
        """Mark the rows the Bot API accepted as sent, all in one statement (an executemany)."""
        if not self._marks:
            return
        marks, self._marks = self._marks, []
        async with self.db.transaction() as session:
            await self._write_marks(session, marks)

    @staticmethod
    async def _write_marks(
        session: AsyncSession, marks: list[tuple[int, datetime, int | None]]
    ) -> None:
        if not marks:
            return
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(
                status="sent",
                sent_at=bindparam("at", type_=table.c.sent_at.type),
                sent_message_id=bindparam("message_id", type_=table.c.sent_message_id.type),
                attempts=table.c.attempts + 1,
            )
        )
        connection = await session.connection()
        await connection.execute(
            statement,
            [{"row_id": row_id, "at": at, "message_id": mid} for row_id, at, mid in marks],
        )

    async def _deliver_one(self, row: OutboxMessage, chat: _Chat) -> str:
        """Send the row; a row sent joins `_marks`, to be marked with the others."""
        assert row.id is not None
        message = Outbound.from_payload(row.chat_id, row.payload, row.ref_key)
        if self._marks and message.edit_ref:
            await self._mark_sent()  # the message to edit may be among them
        try:
            message_id = await self._transmit(message)
        except DeliveryRetry as retry:
            await self._mark_sent()
            await self._record_retry(row.id, str(retry), retry.after)
            return "retry"
        except DeliveryRefused as refused:
            log.warning("outbox row %s refused: %s", row.id, refused)
            await self._mark_sent()
            await self._refused(row, str(refused))
            return "failed"
        except Exception as error:
            # A bug in a channel must not stop delivery to everyone else: retry with backoff.
            log.exception("outbox row %s: unexpected error", row.id)
            await self._mark_sent()
            await self._record_retry(row.id, f"{type(error).__name__}: {error}", None)
            return "retry"
        self._marks.append((row.id, self.clock.now(), message_id or None))
        return "sent"

    async def _transmit(self, message: Outbound) -> int:
        """Send, or edit the message `edit_ref` names; return the id of the message shown."""
        if message.edit_message_id is not None:
            # A pressed message whose buttons go: if the user deleted it, nothing is lost.
            try:
                await self.sender.edit(message, message.edit_message_id)
            except NotModified:
                pass
            except DeliveryRefused as refused:
                if "not found" not in str(refused).lower():
                    raise
            return message.edit_message_id
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
                self.wake.set()

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
            row.claimed_by = None
            session.add(row)

    async def run(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """Deliver whenever woken (after each handled update) and every `interval` seconds.

        Each wake-up claims at once for the chats not draining yet, without waiting for the
        drains under way. On `stop`, each drain finishes the row it is sending and releases the
        rest; any still going after STOP_GRACE_SECONDS is cancelled (its claims time out).

        First, the claims of processes that are gone (a crash, kill -9) are released, so their
        chats go on at once instead of after `claim_timeout`."""
        try:
            released = await release_dead_claims(self.db)
        except Exception:
            log.exception("outbox: could not release the claims of stopped processes")
        else:
            if released:
                log.warning("outbox: released %s rows claimed by a stopped process", released)
        try:
            while not stop.is_set():
                self.wake.clear()
                try:
                    await self._claim_and_start()
                except Exception:
                    log.exception("outbox delivery failed; will try again")
                waiters = [
                    asyncio.ensure_future(self.wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait(
                        waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED
                    )
                for waiter in waiters:
                    waiter.cancel()
        except asyncio.CancelledError:
            for chat in list(self._chats.values()):
                if chat.task is not None:
                    chat.task.cancel()
            raise
        await self._finish_drains()

    async def _finish_drains(self) -> None:
        tasks = {chat.task for chat in self._chats.values() if chat.task is not None}
        if not tasks:
            return
        self._stopping = True
        try:
            _done, late = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._stopping = False


def _log_failure(task: asyncio.Task[None]) -> None:
    """A drain's error is logged here (the worker awaits no drain); deliver_due re-raises it."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("outbox delivery failed; will try again", exc_info=error)
