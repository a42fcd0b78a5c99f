"""The deadline sweep: each reminder and escalation exactly once — when sweeps repeat, when two
run at once over one database (SQLite, and PostgreSQL when configured), when one crashes
half-way, and when the bot restarts after days of downtime."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import event
from sqlmodel import col, select

import schedules.sweep as sweep_module
from bot.app import build_worker
from bot.channels.memory import MemorySender
from bot.settings import load_settings
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.requests import submit_request
from schedules.sweep import SweepReport, sweep
from schedules.worker import Tick
from storage.database import Database
from storage.models import Account, Beneficiary, OutboxMessage, Request, RequestEvent, Staff
from storage.roster import import_roster, sample_district_dir
from tests.conftest import everyone_opened

ZONE = ZoneInfo("Asia/Shanghai")
POLICY = DEFAULT_POLICY
RESIDENT = 900001
WANG = 700000001  # grid member, Tianhe Grid 1 (repair; safety; errand)
XU = 700000011  # coordinator, Tianhe community
HU = 700000017  # town officer, Jiangbei Street
LUO = 700000022  # district housing bureau (housing; repair)
CAO = 700000026  # district admin
YANG = 700000006  # grid member, Qianjin Grid 1 (its coordinator has no Telegram account)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def submit(
    db: Database,
    clock: ManualClock,
    category: str = "repair",
    grid: str = "QS-JB-TH-01",
    resident: int = RESIDENT,
) -> int:
    """A request from `resident` (registered on first use), routed as the bot would."""
    async with db.transaction() as session:
        account = (
            await session.exec(select(Account).where(Account.telegram_id == resident))
        ).first()
        if account is None:
            account = Account(
                telegram_id=resident,
                chat_id=resident,
                consent_at=clock.now(),
                home_grid_code=grid,
                created_at=clock.now(),
            )
            session.add(account)
            await session.flush()
        assert account.id is not None
        beneficiary = Beneficiary(
            owner_account_id=account.id,
            is_self=True,
            name="Resident",
            grid_code=grid,
            created_at=clock.now(),
        )
        session.add(beneficiary)
        await session.flush()
        request, route = await submit_request(
            session,
            reporter=account,
            beneficiary=beneficiary,
            kind="living",
            category=category,
            description="Please help",
            media_kind=None,
            media_file_id=None,
            now=clock.now(),
            zone=ZONE,
            policy=POLICY,
        )
        assert route is not None and request.id is not None
        return request.id


async def load(db: Database, request_id: int) -> Request:
    async with db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        return request


async def events(db: Database, request_id: int) -> list[RequestEvent]:
    async with db.session() as session:
        rows = await session.exec(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(col(RequestEvent.id))
        )
        return list(rows.all())


async def actions(db: Database, request_id: int) -> list[str]:
    return [e.action for e in await events(db, request_id)]


async def outbox(db: Database, chat_id: int) -> list[OutboxMessage]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id)
            .order_by(col(OutboxMessage.id))
        )
        return list(rows.all())


async def cards(db: Database, chat_id: int) -> list[str]:
    """The task cards sent (not edits) to a staff chat: their refs."""
    return [
        m.ref_key or ""
        for m in await outbox(db, chat_id)
        if m.ref_key and m.ref_key.startswith("card:") and not m.payload.get("edit_ref")
    ]


async def staff_id(db: Database, telegram_id: int) -> int:
    async with db.session() as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()
        assert staff.id is not None
        return staff.id


async def run(db: Database, clock: ManualClock) -> SweepReport:
    return await sweep(db, clock, ZONE, POLICY)


# One request, step by step -----------------------------------------------------------------------


async def test_reminder_then_escalation_each_once(db: Database, clock: ManualClock) -> None:
    request_id = await submit(db, clock)  # Monday 30 Nov 10:00
    assert (await run(db, clock)).total == 0
    assert (await load(db, request_id)).overdue_since is None

    clock.set(at(11, 30, 16, 44))
    assert (await run(db, clock)).total == 0
    clock.set(at(11, 30, 16, 45))  # 75% of the working day
    report = await run(db, clock)
    assert (report.reminded, report.actions) == (1, [(request_id, "remind:accept")])
    assert (await run(db, clock)).total == 0
    clock.advance(timedelta(hours=3))
    assert (await run(db, clock)).total == 0

    clock.set(at(12, 1, 10))  # Tuesday 10:00: the accept deadline
    report = await run(db, clock)
    assert report.actions == [(request_id, "escalate:grid->community")]
    assert (await run(db, clock)).total == 0

    request = await load(db, request_id)
    assert (request.level, request.assignee_staff_id) == ("community", await staff_id(db, XU))
    assert request.level_assigned_at == at(12, 1, 10)
    assert request.accept_due_at == at(12, 2, 10)  # a full working day for the coordinator
    assert request.resolve_due_at == at(12, 10, 10)
    # Overdue from the deadline it missed, whatever the new holder's clocks say.
    assert request.overdue_since == at(12, 1, 10)
    assert await actions(db, request_id) == ["create", "route", "remind", "escalate"]
    escalation = (await events(db, request_id))[-1]
    assert escalation.note == "why:accept_overdue"
    assert (escalation.from_level, escalation.to_level) == ("grid", "community")

    wang = [m.payload for m in await outbox(db, WANG)]
    assert sum("⏰" in p["text"] for p in wang) == 1  # the reminder, once
    assert sum(bool(p.get("edit_ref")) for p in wang) == 1  # the card shows it moved on
    assert sum("⏫" in p["text"] for p in wang) == 1  # and he is told where it went
    assert await cards(db, XU) == [f"card:{request_id}:{await staff_id(db, XU)}"]
    resident = [m.payload["text"] for m in await outbox(db, RESIDENT)]
    assert sum("⏫" in text for text in resident) == 1


async def test_levels_nobody_can_reach_are_skipped_and_recorded(
    db: Database, clock: ManualClock
) -> None:
    request_id = await submit(db, clock, grid="QS-JB-QJ-01")
    clock.set(at(12, 1, 10))
    await run(db, clock)
    request = await load(db, request_id)
    assert (request.level, request.assignee_staff_id) == ("town", await staff_id(db, HU))
    assert (await events(db, request_id))[-1].note == (
        "why:accept_overdue\nskip:community:unreachable"
    )


async def test_no_one_above_the_top_tells_the_owner_once_per_round(
    db: Database, clock: ManualClock
) -> None:
    request_id = await submit(db, clock)
    for day in (1, 2, 3, 4):  # grid → community → town → department → district
        clock.set(at(12, day, 10))
        await run(db, clock)
    request = await load(db, request_id)
    assert (request.level, request.assignee_staff_id) == ("district", await staff_id(db, CAO))

    clock.set(at(12, 7, 10))  # Monday: the admin did not accept either
    report = await run(db, clock)
    assert report.actions == [(request_id, "overdue:accept")]
    assert (await run(db, clock)).total == 0
    request = await load(db, request_id)
    assert request.assignee_staff_id == await staff_id(db, CAO)
    assert request.accept_due_at == at(12, 8, 10)  # a new round, so it is not forgotten
    assert request.overdue_since == at(12, 1, 10)  # late since the first missed deadline
    assert (await events(db, request_id))[-1].note == "why:accept_overdue\nwhy:nobody_above"
    warnings = [m for m in await outbox(db, CAO) if "⚠" in m.payload["text"]]
    assert len(warnings) == 1


async def test_requests_from_before_deadlines_get_clocks_quietly(
    db: Database, clock: ManualClock
) -> None:
    request_id = await submit(db, clock)
    async with db.transaction() as session:  # as migration 0003 leaves an open request
        request = await session.get(Request, request_id)
        assert request is not None
        request.level_assigned_at = request.accept_due_at = request.resolve_due_at = None
        request.accept_remind_at = request.resolve_remind_at = None
        request.next_due_at = clock.now()
        session.add(request)
    before = len(await outbox(db, WANG))
    report = await run(db, clock)
    assert report.actions == [(request_id, "start")]
    request = await load(db, request_id)
    assert request.accept_due_at == at(12, 1, 10)
    assert len(await outbox(db, WANG)) == before
    assert await actions(db, request_id) == ["create", "route"]


async def test_a_closed_request_has_nothing_due(db: Database, clock: ManualClock) -> None:
    request_id = await submit(db, clock)
    async with db.transaction() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        request.status = "cancelled"  # as if a bug had left its due time behind
        session.add(request)
    clock.set(at(12, 1, 10))
    assert (await run(db, clock)).total == 0
    assert (await load(db, request_id)).next_due_at is None
    assert await actions(db, request_id) == ["create", "route"]


# Two sweeps at once -----------------------------------------------------------------------------


async def prepared(db: Database) -> Database:
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    await everyone_opened(db)
    return db


async def test_two_sweeps_at_once_act_once(any_empty_db: Database, clock: ManualClock) -> None:
    first = await prepared(any_empty_db)
    second = Database(first.url)  # another process's engine on the same database
    try:
        ids = [await submit(first, clock, resident=900001 + n) for n in range(8)]
        ids.append(await submit(first, clock, category="safety", resident=900100))
        clock.set(at(11, 30, 16, 45))  # every normal request's reminder; the urgent escalates
        reports = await asyncio.gather(*(sweep(db, clock, ZONE, POLICY) for db in (first, second)))
        assert sum(r.failed for r in reports) == 0
        done = Counter(action for r in reports for action in r.actions)
        assert sorted(done) == sorted(
            [(i, "remind:accept") for i in ids[:-1]] + [(ids[-1], "escalate:grid->community")]
        )
        assert set(done.values()) == {1}

        clock.set(at(12, 1, 10))  # every normal request escalates
        reports = await asyncio.gather(*(sweep(db, clock, ZONE, POLICY) for db in (first, second)))
        # In chunks, though their cards' rows are in the outbox now (the chunk's read of them
        # once failed on every such chunk, and each was redone one by one).
        assert sum(r.chunks_redone for r in reports) == 0
        escalated = Counter(action for r in reports for action in r.actions)
        assert sum(escalated.values()) == len(ids)  # 8 escalations and the urgent one's due step
        assert set(escalated.values()) == {1}

        for request_id in ids[:-1]:
            assert await actions(first, request_id) == ["create", "route", "remind", "escalate"]
        xu = await staff_id(first, XU)
        assert Counter(await cards(first, XU)) == Counter(
            f"card:{request_id}:{xu}" for request_id in ids
        )
    finally:
        await second.dispose()


async def test_two_sweeps_over_a_chunked_backlog_act_once(
    any_empty_db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes sweep a backlog handled in chunks (of 4, read in batches of 6, so chunks
    and batches interleave): each escalation and its card happen once, whichever sweep claims
    the chunk, and the load balancing counts what the other chunks assigned."""
    first = await prepared(any_empty_db)
    second = Database(first.url)
    monkeypatch.setattr(sweep_module, "CHUNK", 4)
    monkeypatch.setattr(sweep_module, "BATCH", 6)
    try:
        ids = [await submit(first, clock, resident=930000 + n) for n in range(15)]
        clock.set(at(12, 1, 10))
        reports = await asyncio.gather(
            *(
                sweep(db, clock, ZONE, POLICY, burst_window=timedelta(minutes=30))
                for db in (first, second)
            )
        )
        assert sum(r.failed for r in reports) == 0
        done = Counter(action for r in reports for action in r.actions)
        assert done == Counter({(i, "escalate:grid->community"): 1 for i in ids})
        for request_id in ids:
            assert await actions(first, request_id) == ["create", "route", "escalate"]
        xu = await staff_id(first, XU)
        assert Counter(await cards(first, XU)) == Counter(f"card:{i}:{xu}" for i in ids)
        assert (await run(first, clock)).total == 0
        assert (await run(second, clock)).total == 0
    finally:
        await second.dispose()


async def test_a_chunk_balances_its_escalations_as_one_at_a_time_would(
    db: Database, clock: ManualClock
) -> None:
    """Two coordinators: the needs of one chunk go to them in turn, the open counts read once
    for the chunk following each assignment (read once and not followed, all would go to the
    first)."""
    async with db.transaction() as session:
        xu = (await session.exec(select(Staff).where(Staff.telegram_id == XU))).one()
        session.add(
            Staff(
                name="Second coordinator",
                phone="13900000999",
                telegram_id=700000999,
                role=xu.role,
                unit_code=xu.unit_code,
                opened_at=xu.opened_at,
            )
        )
    ids = [await submit(db, clock, resident=940000 + n) for n in range(6)]
    clock.set(at(12, 1, 10))
    report = await run(db, clock)
    assert report.escalated == 6
    owners = [(await load(db, request_id)).assignee_staff_id for request_id in ids]
    second = await staff_id(db, 700000999)
    assert owners == [await staff_id(db, XU), second] * 3


# A crash half-way -----------------------------------------------------------------------------


async def test_a_crash_half_way_loses_and_repeats_nothing(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies in the middle of a chunk (an exception the sweep does not catch): the
    chunk's transaction rolls back whole, nothing of it was sent, and the next sweep does all
    of it, each action once."""
    ids = [await submit(db, clock, resident=900001 + n) for n in range(3)]
    clock.set(at(12, 1, 10))
    real = sweep_module.announce_new_owner
    calls = 0

    class Died(BaseException):
        pass

    async def die_on_the_second(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Died("the process died here")
        await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sweep_module, "announce_new_owner", die_on_the_second)
    with pytest.raises(Died):
        await run(db, clock)
    for request_id in ids:
        # Rolled back whole: still at the grid, still due (its reminder time, never sent).
        crashed = await load(db, request_id)
        assert (crashed.level, crashed.next_due_at) == ("grid", at(11, 30, 16, 45))
        assert await actions(db, request_id) == ["create", "route"]
    assert await cards(db, XU) == []

    monkeypatch.setattr(sweep_module, "announce_new_owner", real)
    report = await run(db, clock)
    assert report.actions == [(i, "escalate:grid->community") for i in ids]
    for request_id in ids:
        assert (await actions(db, request_id)).count("escalate") == 1
    assert len(await cards(db, XU)) == 3
    assert (await run(db, clock)).total == 0


async def test_a_request_that_fails_costs_only_itself(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request of a chunk raises: the chunk is rolled back and its requests are done one
    per transaction, so the others are done once (not twice: the chunk's work was never
    committed), the failing one is counted and left for the next sweep."""
    ids = [await submit(db, clock, resident=900001 + n) for n in range(3)]
    clock.set(at(12, 1, 10))
    real = sweep_module.announce_new_owner
    tried: list[int] = []

    async def fail_the_second(*args: object, **kwargs: object) -> None:
        request = args[2]
        assert isinstance(request, Request) and request.id is not None
        tried.append(request.id)
        if request.id == ids[1]:
            raise RuntimeError("this one fails")
        await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sweep_module, "announce_new_owner", fail_the_second)
    report = await run(db, clock)
    assert (report.escalated, report.failed) == (2, 1)
    assert report.actions == [
        (ids[0], "escalate:grid->community"),
        (ids[2], "escalate:grid->community"),
    ]
    # The chunk (the first two, then the failure), then each on its own.
    assert tried == [ids[0], ids[1], *ids]
    crashed = await load(db, ids[1])
    assert (crashed.level, crashed.next_due_at) == ("grid", at(11, 30, 16, 45))
    assert await actions(db, ids[1]) == ["create", "route"]
    xu = await staff_id(db, XU)
    assert Counter(await cards(db, XU)) == Counter(
        {f"card:{ids[0]}:{xu}": 1, f"card:{ids[2]}:{xu}": 1}
    )
    for request_id in (ids[0], ids[2]):
        assert await actions(db, request_id) == ["create", "route", "escalate"]

    monkeypatch.setattr(sweep_module, "announce_new_owner", real)
    report = await run(db, clock)
    assert report.actions == [(ids[1], "escalate:grid->community")]
    for request_id in ids:
        assert (await actions(db, request_id)).count("escalate") == 1
    assert len(await cards(db, XU)) == 3


async def test_a_long_backlog_binds_few_values_and_handles_each_row_once_a_tick(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The structural form of 33,000 due rows on PostgreSQL (asyncpg binds at most 32,767
    values in one statement): with batches of 4, a tick over 40 due needs binds no more values
    in any statement it reads or updates with than it would for a handful, and a need that
    fails is left for the next tick rather than tried again in this one."""
    ids = [await submit(db, clock, resident=910000 + n) for n in range(40)]
    clock.set(at(12, 1, 10))
    monkeypatch.setattr(sweep_module, "BATCH", 4)
    real = sweep_module.announce_new_owner

    async def fail_one(*args: object, **kwargs: object) -> None:
        request = args[2]
        assert isinstance(request, Request)
        if request.id == ids[17]:
            raise RuntimeError("this one fails")
        await real(*args, **kwargs)  # type: ignore[arg-type]

    widest: list[tuple[int, str]] = []

    def note(
        _conn: object, _cursor: object, statement: str, parameters: object, _ctx: object, many: bool
    ) -> None:
        rows = parameters if many else [parameters]
        assert isinstance(rows, (list, tuple))
        width = max((len(row) for row in rows if isinstance(row, (list, tuple, dict))), default=0)
        if not statement.lstrip().upper().startswith("INSERT"):  # rows written, not read
            widest.append((width, statement.split("\n")[0][:80]))

    monkeypatch.setattr(sweep_module, "announce_new_owner", fail_one)
    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        report = await run(db, clock)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
    assert (report.escalated, report.failed) == (39, 1)
    assert [request_id for request_id, _ in report.actions] == [i for i in ids if i != ids[17]]
    assert max(widest) < (20, "")  # a `NOT IN` list of the ids seen would reach 36

    monkeypatch.setattr(sweep_module, "announce_new_owner", real)
    report = await run(db, clock)
    assert report.actions == [(ids[17], "escalate:grid->community")]
    assert (await run(db, clock)).total == 0


async def test_an_escalation_runs_few_statements(db: Database, clock: ManualClock) -> None:
    """Issue 14's budget: 10 needs escalating in one tick, handled in one chunk, cost 9
    statements in all on PostgreSQL (the tick's read of what is due, the claim, the outbox
    rows of their cards, an UPDATE of the first need before the candidates are read, the
    candidates, the outbox INSERT, the requests' UPDATEs in two executemanys, the events'
    INSERT), and on SQLite 19: the write lock more, and an event INSERT per need rather than
    one for all (the ORM inserts them one by one there to learn their ids). It was 10
    statements per need (9 on PostgreSQL) with a transaction each; 40 before the roster cache,
    the held session rows and the batched outbox writes. The units are not read once per
    need."""
    for n in range(10):
        await submit(db, clock, resident=920000 + n)
    clock.set(at(12, 1, 10))
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        report = await run(db, clock)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
    assert report.escalated == 10
    sqlite = db.url.startswith("sqlite")
    assert len(seen) <= (9 + 1 + 9 if sqlite else 9), seen
    assert sum("FROM units" in statement for statement in seen) <= 2
    assert sum(statement.startswith("INSERT INTO outbox") for statement in seen) == 1
    assert sum(statement.startswith("SELECT accounts") for statement in seen) == 0

    # A tick with nothing due reads once.
    seen.clear()
    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        assert (await run(db, clock)).total == 0
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
    assert len(seen) == 1, seen


# A restart after downtime -----------------------------------------------------------------------


async def test_restart_after_downtime_runs_each_due_action_once(
    db: Database, clock: ManualClock
) -> None:
    settings = load_settings(_env_file=None, database_url=db.url)
    normal = await submit(db, clock)  # Monday 10:00
    urgent = await submit(db, clock, category="safety", resident=900002)

    # The bot runs: its first tick at start finds nothing due.
    worker = build_worker(db, MemorySender(), clock, settings)
    (tick,) = [t for t in worker.ticks if t.name == "sweep"]
    assert tick.seconds == 30
    job = worker.build_scheduler().get_job("sweep")
    assert job is not None and job.trigger.interval == timedelta(seconds=30)
    assert (await tick.job()).total == 0  # type: ignore[attr-defined]

    # It stops at 10:30 and comes back on Thursday: the normal request's reminder (Mon 16:45)
    # and deadline (Tue 10:00), and the urgent one's (10:45, 11:00) and those its next owners
    # would have had, all passed meanwhile.
    clock.set(at(12, 3, 10))
    restarted = build_worker(db, MemorySender(), clock, settings)
    (tick,) = [t for t in restarted.ticks if t.name == "sweep"]
    report = await tick.job()
    assert sorted(report.actions) == sorted(  # type: ignore[attr-defined]
        [(normal, "escalate:grid->community"), (urgent, "escalate:grid->community")]
    )
    for _ in range(3):  # the next ticks, at the same moment: nothing more
        assert (await tick.job()).total == 0  # type: ignore[attr-defined]
    for request_id in (normal, urgent):
        assert await actions(db, request_id) == ["create", "route", "escalate"]
    assert len(await cards(db, XU)) == 2
    # The new owner's clocks start at the restart: the coordinator has the full time.
    assert (await load(db, normal)).accept_due_at == at(12, 4, 10)
    assert (await load(db, urgent)).accept_due_at == at(12, 3, 11)

    # The escalation notices go out at once.
    delivered = await restarted.outbox.deliver_due()
    assert delivered >= 4
    assert restarted.outbox.wake.is_set()


async def test_the_worker_sweeps_once_as_it_starts(db: Database, clock: ManualClock) -> None:
    """Through APScheduler itself: the tick runs at start, once, on the injected clock, however
    far that clock is from the real time APScheduler keeps."""
    request_id = await submit(db, clock, category="safety")  # Monday 10:00, due at 11:00
    settings = load_settings(_env_file=None, database_url=db.url)
    sender = MemorySender()
    worker = build_worker(db, sender, clock, settings)
    ran = asyncio.Event()
    reports: list[SweepReport] = []

    def observed(tick: Tick) -> Tick:
        async def job() -> object:
            reports.append(await tick.job())  # type: ignore[arg-type]
            ran.set()
            return reports[-1]

        return Tick(tick.name, job, tick.seconds)

    worker.ticks = [observed(t) if t.name == "sweep" else t for t in worker.ticks]
    stop = asyncio.Event()
    clock.advance(timedelta(hours=3))  # the bot was down for three hours
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(ran.wait(), timeout=20)
    finally:
        stop.set()
        await running
    assert len(reports) == 1
    assert reports[0].actions == [(request_id, "escalate:grid->community")]
    assert await actions(db, request_id) == ["create", "route", "escalate"]


@pytest.mark.parametrize(
    "moment",
    [datetime(2000, 1, 3, 2, 0, tzinfo=UTC), datetime(2100, 1, 4, 2, 0, tzinfo=UTC)],
    ids=["clock-in-the-past", "clock-in-the-future"],
)
async def test_the_first_runs_are_at_the_real_now_whatever_the_clock_says(
    db: Database, moment: datetime
) -> None:
    """APScheduler waits in real time, so each job's first run is the real "now", not the
    injected clock's: from a clock years back it would otherwise step through every interval
    since then before running, and from one ahead it would not run at start at all."""
    worker = build_worker(db, MemorySender(), ManualClock(moment), load_settings(_env_file=None))
    before = datetime.now(UTC)
    scheduler = worker.build_scheduler()
    after = datetime.now(UTC)
    first_runs = {job.id: job.next_run_time for job in scheduler.get_jobs()}
    assert set(first_runs) == {
        "sweep",
        "claim_confirm",
        "digest",
        "exports",
        "ratings",
        "offers",
        "retention",
    }
    for first in first_runs.values():
        assert before <= first <= after


async def test_stopping_the_worker_waits_for_the_ticks_under_way(
    db: Database, clock: ManualClock
) -> None:
    """A tick still running when the worker stops is finished before the worker returns, not
    left behind to meet a closed database (which once hung the test run at the event loop's
    close)."""
    worker = build_worker(db, MemorySender(), clock, load_settings(_env_file=None))
    started, release = asyncio.Event(), asyncio.Event()
    returned: list[bool] = []
    worker_had_returned: list[bool] = []

    async def slow() -> object:
        started.set()
        await release.wait()
        worker_had_returned.append(bool(returned))
        return None

    worker.ticks = [Tick("slow", slow, 3600)]
    worker.dailies = []
    shut = asyncio.Event()
    build = worker.build_scheduler

    def observed_scheduler() -> AsyncIOScheduler:
        """The scheduler, telling when the worker begins to stop it (pausing or shutting)."""
        scheduler = build()
        pause, shutdown = scheduler.pause, scheduler.shutdown

        def pause_observed() -> None:
            pause()
            shut.set()

        def shutdown_observed(wait: bool = True) -> None:
            shutdown(wait=wait)
            shut.set()

        scheduler.pause = pause_observed  # type: ignore[method-assign]
        scheduler.shutdown = shutdown_observed  # type: ignore[method-assign]
        return scheduler

    worker.build_scheduler = observed_scheduler  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    running.add_done_callback(lambda _task: returned.append(True))
    await asyncio.wait_for(started.wait(), timeout=20)
    stop.set()
    await asyncio.wait_for(shut.wait(), timeout=20)  # the worker is stopping
    for _ in range(10):  # nothing but bookkeeping is left between here and returning
        await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(running, timeout=20)
    assert worker_had_returned == [False]
