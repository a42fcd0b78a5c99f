"""Issue 14's statement budgets for an update: what every update reads (the sender's account
and roster entry, the chat's conversation state, whether notices wait for them) is one
statement, so a plain update costs a few statements, not nine."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import event
from sqlmodel import select

from bot.dispatcher import Dispatcher
from domain.messages import HandleResult, Inbound, Outbound
from domain.outbox import enqueue
from storage.inbox import ChatLocks, drain_chat, take_in, take_in_all
from storage.models import InboxUpdate, OutboxMessage, Request
from tests.harness import ZONE, Harness
from tests.test_conversation_report import report_need
from tests.test_verdict import RESIDENT, WANG, setup


async def statements_of_updates(
    harness: Harness, act: Callable[[], Awaitable[object]]
) -> list[str]:
    """The statements the dispatcher ran while `act` ran (not the outbox's delivery after)."""
    seen: list[str] = []
    counting = False
    real = harness.dispatcher.handle

    async def handle(inbound: Inbound) -> HandleResult:
        nonlocal counting
        counting = True
        try:
            return await real(inbound)
        finally:
            counting = False

    def note(_conn: object, _cursor: object, statement: str, *_args: Any) -> None:
        if counting:
            seen.append(" ".join(statement.split()))

    harness.dispatcher.handle = handle  # type: ignore[method-assign]
    event.listen(harness.db.engine.sync_engine, "before_cursor_execute", note)
    try:
        await act()
    finally:
        event.remove(harness.db.engine.sync_engine, "before_cursor_execute", note)
        harness.dispatcher.handle = real  # type: ignore[method-assign]
    return seen


def read_alone(seen: list[str], table: str) -> int:
    """Statements that read `table` on its own (not joined to the sender's one-row table)."""
    return sum(s.startswith(f"SELECT {table}.") and "FROM (SELECT" not in s for s in seen)


async def test_a_plain_update_reads_the_sender_in_one_statement(harness: Harness) -> None:
    """A registered resident's stray words: the sender's read (one statement, with no staff row
    and no conversation), the two questions the idle handlers ask (a verdict or a question
    waiting for an answer), and the menu written to the outbox: 4 statements (7 before); on
    PostgreSQL also the NOTIFY that wakes the outbox sender."""
    await setup(harness)
    seen = await statements_of_updates(harness, lambda: harness.say(RESIDENT, "hello"))
    assert "Report a need" in harness.last_text(RESIDENT)
    assert len([s for s in seen if not s.startswith("NOTIFY")]) <= 4, seen
    for table in ("accounts", "staff", "conversation_states", "outbox"):
        assert read_alone(seen, table) == 0, (table, seen)


async def test_a_staff_members_stray_words_ask_for_a_waiting_verdict_once(
    harness: Harness,
) -> None:
    """A grid member who has written before (a roster entry and an account) types stray words:
    one statement asks whether a verdict waits for them in either role (their follow-up calls
    first, then their own requests: two statements before), one whether an answer does, and
    the menu is written: 4 statements with the sender's read."""
    await setup(harness)
    await harness.say(WANG, "/start")
    seen = await statements_of_updates(harness, lambda: harness.say(WANG, "hello"))
    assert sum(s.startswith("SELECT requests.") for s in seen) == 2, seen
    assert len([s for s in seen if not s.startswith("NOTIFY")]) <= 4, seen


async def test_the_one_statement_finds_staff_and_their_conversation(harness: Harness) -> None:
    """The same read finds a staff member's roster entry (their task list, not the welcome) and
    a conversation in progress (the resolve step takes the typed note)."""
    await setup(harness)
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:accept:1")
    seen = await statements_of_updates(harness, lambda: harness.say(WANG, "/tasks"))
    assert "HY000001" in harness.last_text(WANG)
    assert read_alone(seen, "staff") == 0 and read_alone(seen, "accounts") == 0
    await harness.press(WANG, "t:resolve:1")
    seen = await statements_of_updates(harness, lambda: harness.say(WANG, "Washer replaced"))
    assert read_alone(seen, "conversation_states") == 0
    async with harness.db.session() as session:
        request = await session.get(Request, 1)
        assert request is not None
        assert (request.status, request.result_note) == ("resolved", "Washer replaced")


# The whole lifecycle (bench/lifecycle.py) ---------------------------------------------------


def load_lifecycle() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "lifecycle.py"
    spec = importlib.util.spec_from_file_location("bench_lifecycle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Statements and commits of issue 14's lifecycle, by phase, that this code must not exceed:
# on SQLite updates 66 statements / 11 commits, the sweep tick 6 / 1, the outbox 38 / 24 (124 / 36
# in all before this round: updates 68, outbox 50, its claim three statements a pass). PostgreSQL
# runs one statement fewer in the updates and the tick, plus each update's NOTIFY (not counted).
# Commits: one per update and one for the tick; the outbox commits each pass's claim before it
# sends and its marks after, so that no row goes out twice, whatever crashes.
LIFECYCLE_BUDGET = {
    "updates": (66, 11),
    "sweep": (6, 1),
    "outbox": (38, 24),
}


async def test_a_lifecycle_stays_within_its_statement_budget(harness: Harness) -> None:
    """A resident reports a need through the menu, the grid member accepts and resolves it, the
    sweep asks for the verdict an hour later and the resident gives it (11 updates, 16 outbox
    rows), the outbox delivered by the real sender after each: every message arrives once, in
    at most the budgeted statements and commits of each phase."""
    bench = load_lifecycle()
    await setup(harness)
    figures = bench.Figures()
    await bench.lifecycle(harness, bench.Meter(harness.db, figures))
    assert (figures.updates, figures.rows, figures.messages) == (11, 16, 16)
    async with harness.db.session() as session:
        pending = await session.exec(select(OutboxMessage.id).where(OutboxMessage.status != "sent"))
        assert pending.all() == []
    notifies = sum(
        count for shape, count in figures.seen["updates"].items() if shape.startswith("NOTIFY")
    )
    spent = {
        phase: (figures.statements[phase], figures.commits[phase]) for phase in LIFECYCLE_BUDGET
    }
    spent["updates"] = (spent["updates"][0] - notifies, spent["updates"][1])
    for phase, (statements, commits) in LIFECYCLE_BUDGET.items():
        assert spent[phase][0] <= statements and spent[phase][1] <= commits, (phase, spent)


async def test_an_inbox_update_is_marked_handled_once(harness: Harness) -> None:
    """An update drained from the inbox is marked handled by the dispatcher, in the update's
    transaction, and not again by `drain_chat` (two marks and two commits before); an update
    the dispatcher never took (a kind the framework ignores) is still marked, by `drain_chat`."""
    await setup(harness)
    db, clock = harness.db, harness.clock
    dispatcher = Dispatcher(db, clock, ZONE, use_inbox=True)

    def update(update_id: int, text: str) -> dict[str, Any]:
        chat = {"id": RESIDENT, "type": "private"}
        return {"update_id": update_id, "message": {"chat": chat, "text": text}}

    async def feed(payload: dict[str, Any]) -> None:
        text = payload["message"]["text"]
        if text == "ignored":  # as a framework drops an update it has no handler for
            return
        inbound = Inbound(kind="text", user_id=RESIDENT, chat_id=RESIDENT, language="en", text=text)
        await dispatcher.handle(replace(inbound, update_id=payload["update_id"]))

    assert await take_in(db, update(501, "hello"), clock.now())
    assert await take_in(db, update(502, "ignored"), clock.now())
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        handled = await drain_chat(db, ChatLocks(db), RESIDENT, feed, clock.now)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
    assert handled == 2
    marks = [s for s in seen if s.startswith("UPDATE inbox_updates SET processed_at")]
    assert len(marks) == 2, marks  # one for each update: the dispatcher's, drain_chat's
    # The chat's pending rows are read together, then once more to find none left (a read
    # per update and one more before).
    reads = [s for s in seen if s.startswith("SELECT inbox_updates.")]
    assert len(reads) == 2, reads
    async with db.session() as session:
        rows = (await session.exec(select(InboxUpdate))).all()
    assert sorted((r.update_id, r.processed_at is not None) for r in rows) == [
        (501, True),
        (502, True),
    ]
    async with db.session() as session:
        texts = (await session.exec(select(OutboxMessage.payload))).all()
    assert not any("went wrong" in str(payload) for payload in texts), texts  # handled, no apology


async def test_a_polled_batch_is_kept_in_one_statement_and_one_commit(harness: Harness) -> None:
    """A getUpdates answer goes into the inbox in one INSERT and one commit, not one of each per
    update; an update id kept before is skipped, and the new ones' chats come back in the
    batch's order, so each is handled once."""
    db, clock = harness.db, harness.clock

    def update(update_id: int, chat_id: int) -> dict[str, Any]:
        chat = {"id": chat_id, "type": "private"}
        return {"update_id": update_id, "message": {"chat": chat, "text": "hi"}}

    assert await take_in(db, update(700, 11), clock.now())
    statements: list[str] = []
    commits: list[object] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def committed(*_args: object) -> None:
        commits.append(None)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    event.listen(db.engine.sync_engine, "commit", committed)
    try:
        batch = [update(700, 11), update(701, 12), update(702, 11), update(703, 13)]
        chats = await take_in_all(db, batch, clock.now())
        again = await take_in_all(db, batch, clock.now())
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
        event.remove(db.engine.sync_engine, "commit", committed)
    assert chats == [12, 11, 13]
    assert again == []
    assert len(statements) == 2 and len(commits) == 2, (statements, commits)
    async with db.session() as session:
        rows = (await session.exec(select(InboxUpdate))).all()
    assert sorted((r.update_id, r.chat_id) for r in rows) == [
        (700, 11),
        (701, 12),
        (702, 11),
        (703, 13),
    ]


async def test_the_sender_read_sees_notices_held_for_the_morning(harness: Harness) -> None:
    """The sender's statement (built once, its values bound per update) still finds a notice
    held for the end of quiet hours in this chat, and that notice goes out when they write."""
    await setup(harness)
    clock = harness.clock
    async with harness.db.transaction() as session:
        held = Outbound(chat_id=RESIDENT, text="held till morning")
        enqueue(session, held, clock.now(), not_before=clock.now() + timedelta(hours=8))
        enqueue(session, Outbound(chat_id=WANG, text="for someone else"), clock.now())
    dispatcher = harness.dispatcher
    async with harness.db.session() as session:
        for chat, expected in ((RESIDENT, True), (WANG, False)):
            inbound = Inbound(kind="text", user_id=chat, chat_id=chat, language="en", text="x")
            account, _staff, _state, any_held = await dispatcher._speaker(session, inbound)
            assert any_held is expected and account is not None, chat
    await harness.say(RESIDENT, "hello")
    async with harness.db.session() as session:
        row = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.chat_id == RESIDENT))
        ).first()
    assert row is not None and row.next_attempt_at <= clock.now()
