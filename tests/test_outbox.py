"""The outbox: splitting long texts, and the sender's ordering, retries, refusals and edits."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlmodel import col, select

from bot.channels.memory import MemorySender
from domain.clock import ManualClock
from domain.messages import MAX_TEXT, Button, DeliveryRefused, DeliveryRetry, Outbound
from domain.outbox import enqueue, split_text
from schedules.outbox import OutboxSender, SendLimits
from storage.database import Database
from storage.models import OutboxMessage

ALICE, BOB = 900001, 900002
BUTTONS = ((Button("OK", data="m:home"),),)


# split_text -------------------------------------------------------------------------------------


def test_short_text_is_one_piece() -> None:
    assert split_text("hello\nworld") == ["hello\nworld"]


def test_long_text_is_cut_at_line_breaks() -> None:
    assert split_text("one\ntwo\nthree", limit=8) == ["one\ntwo", "three"]
    first, second = "a" * 3000, "b" * 3000
    assert split_text(f"{first}\n{second}") == [first, second]


def test_single_line_longer_than_the_limit_is_cut_into_full_pieces() -> None:
    pieces = split_text("x" * 10_000)
    assert [len(p) for p in pieces] == [MAX_TEXT, MAX_TEXT, 10_000 - 2 * MAX_TEXT]
    assert "".join(pieces) == "x" * 10_000


def test_long_line_after_short_lines_keeps_everything_in_order() -> None:
    text = "head\n" + "y" * 12 + "\ntail"
    pieces = split_text(text, limit=10)
    assert all(len(p) <= 10 for p in pieces)
    assert pieces == ["head", "y" * 10, "yy\ntail"]


def test_long_line_of_escaped_text_is_never_cut_inside_an_entity() -> None:
    text = "x" + "&lt;" * 2000  # a description of "<<<<…", escaped for HTML
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(len(p) <= MAX_TEXT for p in pieces)
    for piece in pieces[1:]:
        assert piece.startswith("&lt;") and piece.endswith(";")


# enqueue ---------------------------------------------------------------------------------------


async def outbox_rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as session:
        return list(
            (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
        )


async def put(db: Database, clock: ManualClock, *messages: Outbound) -> None:
    async with db.transaction() as session:
        for message in messages:
            enqueue(session, message, clock.now())


async def test_enqueue_of_a_long_text_makes_two_rows_with_buttons_on_the_last(
    empty_db: Database, clock: ManualClock
) -> None:
    text = "\n".join(["line of text " * 10] * 38)  # about 5000 characters
    assert 4096 < len(text) < 6000
    await put(empty_db, clock, Outbound(chat_id=ALICE, text=text, buttons=BUTTONS, ref="card:1:1"))

    first, last = await outbox_rows(empty_db)
    assert first.payload["buttons"] == [] and first.ref_key is None
    assert last.payload["buttons"] == [[{"text": "OK", "data": "m:home", "url": ""}]]
    assert last.ref_key == "card:1:1"
    assert first.payload["text"] + "\n" + last.payload["text"] == text


# OutboxSender ---------------------------------------------------------------------------------


@dataclass
class FlakySender:
    """Delivers into a MemorySender, but first raises the failures queued for a text."""

    shown: MemorySender = field(default_factory=MemorySender)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    attempts: list[str] = field(default_factory=list)

    def fail(self, text: str, *errors: Exception) -> None:
        self.failures.setdefault(text, []).extend(errors)

    def _maybe_fail(self, message: Outbound) -> None:
        self.attempts.append(message.text)
        queued = self.failures.get(message.text)
        if queued:
            raise queued.pop(0)

    async def send(self, message: Outbound) -> int:
        self._maybe_fail(message)
        return await self.shown.send(message)

    async def edit(self, message: Outbound, message_id: int) -> None:
        self._maybe_fail(message)
        await self.shown.edit(message, message_id)

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        await self.shown.answer_callback(callback_id, text, alert)

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.shown.messages(chat_id)]


def texts(chat_id: int, *lines: str) -> list[Outbound]:
    return [Outbound(chat_id=chat_id, text=line) for line in lines]


async def test_each_chat_gets_its_messages_in_order_and_once(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(
        empty_db,
        clock,
        *texts(ALICE, "a1"),
        *texts(BOB, "b1"),
        *texts(ALICE, "a2", "a3"),
        *texts(BOB, "b2"),
    )
    channel = FlakySender()
    outbox = OutboxSender(empty_db, channel, clock)

    assert await outbox.deliver_due() == 5
    assert await outbox.deliver_due() == 0
    assert channel.texts(ALICE) == ["a1", "a2", "a3"]
    assert channel.texts(BOB) == ["b1", "b2"]
    assert {row.status for row in await outbox_rows(empty_db)} == {"sent"}


async def test_retry_after_holds_the_chat_until_the_clock_passes_it(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(empty_db, clock, *texts(ALICE, "first", "second"), *texts(BOB, "other"))
    channel = FlakySender()
    channel.fail("first", DeliveryRetry("Too Many Requests", after=30))
    outbox = OutboxSender(empty_db, channel, clock)
    start = clock.now()

    await outbox.deliver_due()
    first = (await outbox_rows(empty_db))[0]
    assert (first.status, first.attempts, first.next_attempt_at) == (
        "pending",
        1,
        start + timedelta(seconds=30),
    )
    assert channel.texts(ALICE) == []  # "second" waits behind "first"
    assert channel.texts(BOB) == ["other"]  # other chats are not held up

    clock.advance(timedelta(seconds=29))
    await outbox.deliver_due()
    assert channel.attempts.count("first") == 1  # not tried again too early

    clock.advance(timedelta(seconds=2))
    await outbox.deliver_due()
    assert channel.texts(ALICE) == ["first", "second"]


async def test_network_errors_back_off_exponentially(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(empty_db, clock, *texts(ALICE, "hello"))
    channel = FlakySender()
    channel.fail("hello", DeliveryRetry("connection reset"), DeliveryRetry("connection reset"))
    outbox = OutboxSender(empty_db, channel, clock)

    await outbox.deliver_due()
    (row,) = await outbox_rows(empty_db)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=2)
    assert row.last_error == "connection reset"

    clock.advance(timedelta(seconds=2))
    await outbox.deliver_due()
    (row,) = await outbox_rows(empty_db)
    assert (row.attempts, row.next_attempt_at) == (2, clock.now() + timedelta(seconds=4))

    clock.advance(timedelta(seconds=4))
    await outbox.deliver_due()
    assert channel.texts(ALICE) == ["hello"]
    assert (await outbox_rows(empty_db))[0].status == "sent"


async def test_refused_row_is_failed_and_the_rest_of_the_chat_still_goes(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(empty_db, clock, *texts(ALICE, "bad", "good"))
    channel = FlakySender()
    channel.fail("bad", DeliveryRefused("Bad Request: can't parse entities"))
    outbox = OutboxSender(empty_db, channel, clock)

    assert await outbox.deliver_due() == 1
    bad, good = await outbox_rows(empty_db)
    assert (bad.status, bad.last_error) == ("failed", "Bad Request: can't parse entities")
    assert good.status == "sent"
    assert channel.texts(ALICE) == ["good"]

    await outbox.deliver_due()
    assert channel.attempts.count("bad") == 1  # a refusal is not retried


async def test_edit_ref_changes_the_card_sent_earlier(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(
        empty_db, clock, Outbound(chat_id=ALICE, text="card v1", buttons=BUTTONS, ref="card:1:1")
    )
    channel = FlakySender()
    outbox = OutboxSender(empty_db, channel, clock)
    await outbox.deliver_due()

    await put(empty_db, clock, Outbound(chat_id=ALICE, text="card v2", edit_ref="card:1:1"))
    await outbox.deliver_due()
    (card,) = channel.shown.messages(ALICE)
    assert (card.text, card.buttons, card.edits) == ("card v2", [], 1)

    await put(empty_db, clock, Outbound(chat_id=ALICE, text="card v3", edit_ref="card:1:1"))
    await outbox.deliver_due()
    assert [(m.text, m.edits) for m in channel.shown.messages(ALICE)] == [("card v3", 2)]


async def test_edit_that_changes_nothing_counts_as_sent(
    empty_db: Database, clock: ManualClock
) -> None:
    card = Outbound(chat_id=ALICE, text="card", ref="card:1:1")
    await put(empty_db, clock, card)
    channel = FlakySender()
    outbox = OutboxSender(empty_db, channel, clock)
    await outbox.deliver_due()

    await put(empty_db, clock, Outbound(chat_id=ALICE, text="card", edit_ref="card:1:1"))
    assert await outbox.deliver_due() == 1
    assert [row.status for row in await outbox_rows(empty_db)] == ["sent", "sent"]
    assert [(m.text, m.edits) for m in channel.shown.messages(ALICE)] == [("card", 0)]


async def test_edit_ref_with_nothing_sent_yet_sends_a_new_message(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(empty_db, clock, Outbound(chat_id=ALICE, text="card v2", edit_ref="card:9:9"))
    channel = FlakySender()
    outbox = OutboxSender(empty_db, channel, clock)
    await outbox.deliver_due()
    assert channel.texts(ALICE) == ["card v2"]

    # ... and that message is the one a later edit changes.
    await put(empty_db, clock, Outbound(chat_id=ALICE, text="card v3", edit_ref="card:9:9"))
    await outbox.deliver_due()
    assert [(m.text, m.edits) for m in channel.shown.messages(ALICE)] == [("card v3", 1)]


# One chat's backlog and everyone else ----------------------------------------------------------


class SteppedTime:
    """A monotonic time that only the pacing's sleeps move: a sleep wakes at the moment it
    asked for (never earlier), after letting the other tasks run."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        until = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, until)


@dataclass
class WatchedSender(FlakySender):
    """Records when (on the stepped time) each message goes out; chat A's sixth message waits
    until B's message has gone out (or the test lets A go), so a sender that makes B wait fails
    instead of hanging."""

    time: SteppedTime = field(default_factory=SteppedTime)
    sent_at: list[tuple[float, int, str]] = field(default_factory=list)
    a_started: asyncio.Event = field(default_factory=asyncio.Event)
    b_sent: asyncio.Event = field(default_factory=asyncio.Event)
    give_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: Outbound) -> int:
        if message.chat_id == ALICE and len(self.texts(ALICE)) == 5:
            self.a_started.set()
            gates = [asyncio.ensure_future(e.wait()) for e in (self.b_sent, self.give_up)]
            await asyncio.wait(gates, return_when=asyncio.FIRST_COMPLETED)
            for gate in gates:
                gate.cancel()
        message_id = await super().send(message)
        self.sent_at.append((self.time.now, message.chat_id, message.text))
        if message.chat_id == BOB:
            self.b_sent.set()
        return message_id


async def test_a_reply_to_one_chat_is_not_queued_behind_another_chats_backlog(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(empty_db, clock, *texts(ALICE, *(f"a{n}" for n in range(60))))
    channel = WatchedSender()
    limits = SendLimits(per_second=3.0, monotonic=channel.time.monotonic, sleep=channel.time.sleep)
    outbox = OutboxSender(empty_db, channel, clock, limits=limits)
    stop = asyncio.Event()
    running = asyncio.create_task(outbox.run(stop, interval=3600))

    await channel.a_started.wait()  # A's backlog is draining...
    # ...when B's reply is written, and one more message for A.
    await put(empty_db, clock, *texts(BOB, "reply"), *texts(ALICE, "a60"))
    outbox.wake.set()
    # B's reply goes out while A's sixth message is held. A sender that serves no wake-up while
    # A drains never sends it: A is let go then (the bound only ends a failing run; a passing one
    # never waits for it), and the assertions below say what happened.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(channel.b_sent.wait(), timeout=20)
    channel.give_up.set()

    stop.set()
    await running
    await outbox.deliver_due()  # whatever the old sender left for its next pass

    order = [(chat, text) for _at, chat, text in channel.sent_at]
    b_index = order.index((BOB, "reply"))
    a_before_b = sum(1 for chat, _text in order[:b_index] if chat == ALICE)
    assert 60 - a_before_b > 50, f"B waited for {a_before_b} of A's messages"
    assert channel.texts(ALICE) == [f"a{n}" for n in range(61)]  # A's order kept
    # The deployment's bucket (3 at once, then 3 a second) holds over every stretch of time.
    moments = [at for at, _chat, _text in channel.sent_at]
    for first in range(len(moments)):
        for last in range(first, len(moments)):
            assert last - first + 1 <= 3 + 3.0 * (moments[last] - moments[first]) + 1e-6


@dataclass
class PausingSender(FlakySender):
    """Holds the third message until let go, so a stop comes while it is being sent."""

    sending_third: asyncio.Event = field(default_factory=asyncio.Event)
    go_on: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: Outbound) -> int:
        if message.text == "m2":
            self.sending_third.set()
            await self.go_on.wait()
        return await super().send(message)


class StoppingOutbox(OutboxSender):
    """Says when the worker starts winding down its drains."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.finishing = asyncio.Event()

    async def _finish_drains(self) -> None:
        self.finishing.set()
        await super()._finish_drains()


async def test_a_stop_lets_the_send_under_way_finish_and_releases_the_rest(
    empty_db: Database, clock: ManualClock
) -> None:
    await put(empty_db, clock, *texts(ALICE, *(f"m{n}" for n in range(6))))
    channel = PausingSender()
    outbox = StoppingOutbox(empty_db, channel, clock)
    stop = asyncio.Event()
    running = asyncio.create_task(outbox.run(stop, interval=3600))
    await channel.sending_third.wait()

    stop.set()
    await outbox.finishing.wait()  # the worker has taken the stop in, with the send under way
    channel.go_on.set()
    await running
    assert channel.texts(ALICE) == ["m0", "m1", "m2"]
    rows = await outbox_rows(empty_db)
    assert [row.status for row in rows] == ["sent"] * 3 + ["pending"] * 3
    assert all(row.claimed_at is None for row in rows[3:])  # free for the next worker at once

    await outbox.deliver_due()
    assert channel.texts(ALICE) == [f"m{n}" for n in range(6)]


# The statement budget (issue 14) -----------------------------------------------------------


@contextlib.contextmanager
def statements_on(db: Database) -> Any:
    seen: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", executed)


async def test_a_batch_is_claimed_and_marked_sent_in_a_few_statements(
    empty_db: Database, clock: ManualClock
) -> None:
    """90 rows to 9 chats: one claim (read, who is busy, one UPDATE for the batch) and the
    rows marked sent together, far under one statement a row; each row marked once, with the
    id of the message it became."""
    chats = [ALICE + n for n in range(9)]
    await put(
        empty_db, clock, *[m for c in chats for m in texts(c, *[f"{c}:{i}" for i in range(10)])]
    )
    channel = FlakySender()
    outbox = OutboxSender(empty_db, channel, clock, parallel_chats=9)
    with statements_on(empty_db) as seen:
        assert await outbox.deliver_due() == 90
    assert len(seen) <= 12, seen
    rows = await outbox_rows(empty_db)
    assert {(row.status, row.attempts) for row in rows} == {("sent", 1)}
    assert all(row.sent_message_id is not None and row.sent_at == clock.now() for row in rows)
    for chat in chats:
        assert channel.texts(chat) == [f"{chat}:{i}" for i in range(10)]
    shown = {m.message_id for c in chats for m in channel.shown.messages(c)}
    assert {row.sent_message_id for row in rows} == shown


async def test_a_full_page_of_one_chats_backlog_does_not_hide_the_next_chat(
    empty_db: Database, clock: ManualClock
) -> None:
    """A's backlog fills the first page the claim reads; B's reply comes after it. One claim
    starts both chats (before, B waited for the next interval while its row was due)."""
    from schedules.outbox import BATCH

    await put(empty_db, clock, *texts(ALICE, *[f"a{i}" for i in range(BATCH + 20)]))
    await put(empty_db, clock, *texts(BOB, "b1"))
    outbox = OutboxSender(empty_db, FlakySender(), clock)
    claimed = await outbox._claim(slots=8)
    assert set(claimed) == {ALICE, BOB}
    assert [row.payload["text"] for row in claimed[BOB]] == ["b1"]
