"""The yardstick of issue 14: a district's year of needs replayed through the real code.

    .venv/bin/python bench/replay.py [--needs 260000] [--seed 14] [--postgres URL]

A district at the practice's scale (tests/big_district.py: 13 towns, 651 villages, 2,604 grids,
3,268 staff, from a seed) is imported through the roster importer; every staff member has a
Telegram id and an open chat. Needs arrive by a daily and weekly pattern (more on weekday
mornings and afternoons, some in the evening, few at night, fewer at weekends), at the
practice's pace of 260,000 a year (712 a day): `--needs N` replays the first N/712 days of that
year. Residents (one for about every two needs, each in a seeded grid) register through the
place picker and report their needs through the menu (kind, category, text, submit); the
categories are the catalogue's living, development and emotional ones except `safety` (urgent,
with its one-hour night-time clocks) and `other`.

Everybody then acts on what they are shown, as in the chat, each by a seeded distribution:

- a grid member shown a new task card accepts it (75%), accepts and asks the resident a question
  first (8%), passes it up before accepting (5%), accepts and never resolves it (3%: its resolve
  deadline passes and the sweep moves it up), or ignores it (9%: the sweep escalates it after a
  working day); within 5 minutes to 3 working hours;
- anyone above the grid shown a task card accepts and resolves it;
- a resident asked a question answers within 10 minutes to 6 hours;
- a resident asked for the verdict answers (within 5 minutes to 8 hours) solved and satisfied
  (65%), solved and fairly satisfied (15%), not solved (7%: reopened one level up, and the
  second verdict is satisfied), or not at all (13%: one reminder, then closed as not rated).

The clock is a `ManualClock` that jumps from one event to the next; between events the sweep runs
every 30 minutes and the morning digest at 08:30 on working days, as the worker would, and the
outbox is delivered after every update and every tick into an in-process sender with no rate
limit (bot.channels.memory). After the last need the simulation runs 14 more days, so deadlines,
verdicts and "not rated" closings play out, and ends at noon.

It prints the wall time, updates/s, messages/s, SQL statements and commits per need (counted with
SQLAlchemy engine events) in all and split by phase (the updates, the sweep, the digest, the
outbox), peak RSS, lost messages (outbox rows not delivered, or marked sent without reaching the
sender) and duplicated ones (an outbox row delivered twice), and the three rates of docs/metrics.md
as `domain.metrics.tally` computes them from the database next to the simulation's own count of
what its people did. SQLite in a temporary directory by default; with --postgres, a database of
its own on that server (created and dropped). `run()` returns the figures (tests/test_replay.py).

This is a measurement, not a test: nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import heapq
import itertools
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, make_url, text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, func, select, true

from bot.channels.console import ChatDriver
from bot.channels.memory import MemorySender, ShownMessage
from domain.catalog import CATEGORIES
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.messages import HandleResult, Inbound, InboundKind
from domain.metrics import Rates, tally
from schedules.digest import send_digests
from schedules.outbox import OutboxSender
from schedules.sweep import sweep
from storage.database import Database
from storage.models import OutboxMessage, Request, Staff
from storage.roster import import_roster

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 1, 5, 0, 0, tzinfo=ZONE).astimezone(UTC)  # a Monday
YEAR = 260_000
PER_DAY = YEAR / 365
TICK = timedelta(minutes=30)
DIGEST_AT = clock_time(8, 30)
TAIL = timedelta(days=14)
FIRST_STAFF_ID = 800_000_000
FIRST_RESIDENT_ID = 600_000_000
WEEKDAY_WEIGHT = (1.2, 1.0, 1.0, 1.0, 1.0, 0.7, 0.6)  # Monday first
HOUR_WEIGHT = (
    0.1, 0.05, 0.05, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 3.0, 2.5,
    1.5, 1.5, 2.5, 2.5, 2.0, 1.5, 1.0, 1.5, 1.5, 1.0, 0.5, 0.2,
)  # fmt: skip
CATEGORY_CODES = [c.code for c in CATEGORIES if c.code not in ("safety", "other")]
KIND_OF = {c.code: c.kind for c in CATEGORIES}
GRID_PLANS = (("accept", 75), ("ask", 8), ("pass_up", 5), ("stall", 3), ("ignore", 9))
VERDICTS = (("satisfied", 65), ("fairly", 15), ("not_solved", 7), ("silent", 13))


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in weighted], [w for _, w in weighted])[0]


@dataclass
class Need:
    """One need and what the simulation's people did about it (the ground truth)."""

    number: int
    resident: int
    category: str
    plan: str  # what the grid member does with the task card
    verdict: str  # the resident's first answer
    request_id: int | None = None
    accepted: bool = False
    responded: bool = False  # first accepted before anyone let its accept deadline pass
    resolved: bool = False  # stands resolved (or closed) after the last thing anyone did
    rated: bool = False
    satisfied: bool = False
    verdicts_given: int = 0


@dataclass
class Meter:
    """SQL statements and commits, counted by phase through engine events."""

    phase: str = "setup"
    statements: Counter[str] = field(default_factory=Counter)
    commits: Counter[str] = field(default_factory=Counter)
    # With --top: each phase's statements by their text (the first line of it), to find the
    # ones run most often.
    texts: dict[str, Counter[str]] | None = None

    def attach(self, db: Database) -> None:
        def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            self.statements[self.phase] += 1
            if self.texts is not None:
                shape = " ".join(statement.split())[:160]
                self.texts.setdefault(self.phase, Counter())[shape] += 1

        def committed(*_args: Any) -> None:
            self.commits[self.phase] += 1

        event.listen(db.engine.sync_engine, "before_cursor_execute", executed)
        event.listen(db.engine.sync_engine, "commit", committed)


@dataclass
class Figures:
    needs: int = 0
    residents: int = 0
    days: int = 0
    updates: int = 0
    lifecycle_updates: int = 0  # updates after registration
    messages: int = 0  # new messages and edits shown
    new_messages: int = 0
    escalations: int = 0
    digests: int = 0
    outbox_rows: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0  # the simulation found no button it expected (0 when the code works)
    missing: list[str] = field(default_factory=list)
    stale: int = 0  # a card's accept button gone when its holder came to it
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    statements: Counter[str] = field(default_factory=Counter)
    commits: Counter[str] = field(default_factory=Counter)
    texts: dict[str, Counter[str]] = field(default_factory=dict)
    measured: Rates | None = None
    truth: Rates | None = None


DELIVERING: ContextVar[int | None] = ContextVar("delivering", default=None)


class CountingOutbox(OutboxSender):
    """The real sender; remembers which outbox row each message it shows came from (chats are
    drained in tasks of their own, so the row is a context variable)."""

    async def _deliver_one(self, row: OutboxMessage, chat: Any) -> str:
        token = DELIVERING.set(row.id)
        try:
            return await super()._deliver_one(row, chat)
        finally:
            DELIVERING.reset(token)


class Replay(ChatDriver):
    """The users' side: the real dispatcher, then the outbox, each counted as its own phase."""

    def __init__(self, db: Database, clock: ManualClock, meter: Meter) -> None:
        super().__init__(db, clock, ZONE, sender=MemorySender())
        self.meter = meter
        self.outbox = CountingOutbox(db, self.sender, clock)
        self.delivered: Counter[int] = Counter()
        self.updates = 0
        self.update_phase = "updates"  # "register" while a resident signs up

    async def deliver(self) -> None:
        self.meter.phase = "outbox"
        await self.outbox.deliver_due()

    async def send(self, user: int, kind: InboundKind, **fields: object) -> list[ShownMessage]:
        chat_id = int(fields.pop("chat_id", user))  # type: ignore[call-overload]
        before = len(self.sender.messages(chat_id))
        inbound = Inbound(
            kind=kind,
            user_id=user,
            chat_id=chat_id,
            chat_type="private",
            language="zh-hans",
            display_name=f"user{user}",
            update_id=next(self._updates),
            **fields,  # type: ignore[arg-type]
        )
        self.meter.phase = self.update_phase
        self.updates += 1
        result: HandleResult = await self.dispatcher.handle(inbound)
        del result  # answered callbacks are not outbox rows
        await self.deliver()
        return self.sender.messages(chat_id)[before:]

    def newest(self, user: int, data: str) -> ShownMessage | None:
        for shown in reversed(self.sender.messages(user)):
            if any(b.data == data for b in shown.buttons):
                return shown
        return None


async def open_database(postgres: str | None, workdir: str) -> tuple[Database, str | None]:
    if postgres is None:
        return Database(f"sqlite+aiosqlite:///{workdir}/replay.db"), None
    name = f"huiyin_replay_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(make_url(postgres), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return Database(make_url(postgres).set(database=name).render_as_string(False)), name


async def drop_database(postgres: str, name: str) -> None:
    admin = create_async_engine(make_url(postgres), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def write_roster(directory: Path, seed: int) -> dict[int, tuple[str, str]]:
    """The generated district with a Telegram id for every staff member: id → (role, unit)."""
    # Here, not at the top: tests.big_district imports pypinyin with its phrase dictionary
    # (english names), which the bot's own process no longer loads (bench/day_rss.py).
    from tests.big_district import write_district

    write_district(directory, seed)
    people = directory / "people.csv"
    with people.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    staff: dict[int, tuple[str, str]] = {}
    for n, row in enumerate(rows):
        row["telegram_id"] = str(FIRST_STAFF_ID + n)
        staff[FIRST_STAFF_ID + n] = (row["role"], row["unit"])
    with people.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return staff


# The roster written and imported in a process of its own, as `huiyin import-roster` is: reading
# the names' pinyin loads pypinyin's phrase dictionary, which the bot's process never needs.
IMPORT_ELSEWHERE = """
import asyncio, importlib.util, json, sys
from pathlib import Path
from storage.database import Database
from storage.roster import import_roster
spec = importlib.util.spec_from_file_location("bench_replay_roster", sys.argv[1])
replay = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = replay
spec.loader.exec_module(replay)
url, directory, seed = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
staff = replay.write_roster(directory, seed)

async def main():
    db = Database(url)
    try:
        await import_roster(db, directory)
    finally:
        await db.dispose()

asyncio.run(main())
print(json.dumps(staff))
"""


def import_elsewhere(db: Database, directory: Path, seed: int) -> dict[int, tuple[str, str]]:
    """`write_roster` and `import_roster` in a child process; the staff as `write_roster`'s."""
    url = db.engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ELSEWHERE, __file__, url, str(directory), str(seed)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the roster import failed:\n{done.stderr[-3000:]}")
    staff = json.loads(done.stdout)
    return {int(key): (role, unit) for key, (role, unit) in staff.items()}


def arrivals(rng: random.Random, needs: int) -> tuple[list[datetime], int]:
    """When each need arrives: days by weekday weight, hours by the daily pattern."""
    days = max(1, math.ceil(needs / PER_DAY))
    day_weights = [WEEKDAY_WEIGHT[d % 7] for d in range(days)]
    moments = []
    for _ in range(needs):
        day = rng.choices(range(days), day_weights)[0]
        hour = rng.choices(range(24), HOUR_WEIGHT)[0]
        local = START.astimezone(ZONE) + timedelta(
            days=day, hours=hour, seconds=rng.randrange(3600)
        )
        moments.append(local.astimezone(UTC))
    return sorted(moments), days


class Simulation:
    def __init__(
        self, db: Database, needs: int, seed: int, staff: dict[int, tuple[str, str]]
    ) -> None:
        self.db = db
        self.rng = random.Random(seed)
        self.clock = ManualClock(START)
        self.meter = Meter()
        self.meter.attach(db)
        self.driver = Replay(db, self.clock, self.meter)
        self.driver.sender.on_show = self.shown
        self.staff = staff
        self.working = DEFAULT_POLICY.working(ZONE)
        self.queue: list[tuple[datetime, int, Callable[[], Awaitable[None]]]] = []
        self.order = itertools.count()
        self.figures = Figures()
        grids = sorted(unit for role, unit in staff.values() if role == "grid_member")
        residents = max(1, needs // 2)
        self.home = {FIRST_RESIDENT_ID + n: self.rng.choice(grids) for n in range(residents)}
        self.registered: set[int] = set()
        self.needs: list[Need] = []
        self.by_request: dict[int, Need] = {}
        self.reacted: set[tuple[int, int]] = set()  # (chat, message id) acted on
        self.missing: list[str] = []  # buttons looked for and not found
        self.digest = True
        self.figures.residents = residents

    # The event queue ---------------------------------------------------------------------

    def at(self, moment: datetime, action: Callable[[], Awaitable[None]]) -> None:
        heapq.heappush(self.queue, (moment, next(self.order), action))

    def working_delay(self, low: timedelta, high: timedelta) -> datetime:
        span = low + (high - low) * self.rng.random()
        return self.working.add(self.clock.now(), span)

    def wall_delay(self, low: timedelta, high: timedelta) -> datetime:
        return self.clock.now() + low + (high - low) * self.rng.random()

    # What people see -----------------------------------------------------------------------

    def shown(self, shown: ShownMessage, edited: bool) -> None:
        self.figures.messages += 1
        row = DELIVERING.get()
        if row is not None:
            self.driver.delivered[row] += 1
        if edited:
            return
        self.figures.new_messages += 1
        chat = shown.message.chat_id
        if (chat, shown.message_id) in self.reacted:
            return
        data = [b.data for b in shown.buttons if b.data]
        if chat in self.staff:
            accept = next((d for d in data if d.startswith("t:accept:")), None)
            if accept is not None:
                self.reacted.add((chat, shown.message_id))
                request_id = int(accept.split(":")[2])
                when = self.working_delay(timedelta(minutes=5), timedelta(hours=3))
                self.at(when, lambda: self.staff_acts(chat, request_id))
            return
        verdict = next((d for d in data if d.startswith("rv:s:")), None)
        if verdict is not None:
            self.reacted.add((chat, shown.message_id))
            request_id = int(verdict.split(":")[2])
            when = self.wall_delay(timedelta(minutes=5), timedelta(hours=8))
            self.at(when, lambda: self.resident_rates(chat, request_id))
            return
        question = next((d for d in data if d.startswith("q:")), None)
        if question is not None:
            self.reacted.add((chat, shown.message_id))
            request_id = int(question.split(":")[1])
            when = self.wall_delay(timedelta(minutes=10), timedelta(hours=6))
            self.at(when, lambda: self.resident_answers(chat, request_id))

    # What people do -------------------------------------------------------------------------

    async def press(self, user: int, data: str) -> bool:
        shown = self.driver.newest(user, data)
        if shown is None:
            self.figures.stuck += 1
            self.missing.append(data)
            return False
        await self.driver.press(user, data, shown.message_id)
        return True

    async def tap(self, user: int, value: str) -> bool:
        try:
            shown, data = self.driver.button(user, value=value)
        except LookupError:
            return False
        await self.driver.press(user, data, shown.message_id)
        return True

    async def register(self, resident: int) -> None:
        grid = self.home[resident]
        self.driver.update_phase = "register"
        await self._register(resident, grid)
        self.driver.update_phase = "updates"
        self.registered.add(resident)

    async def _register(self, resident: int, grid: str) -> None:
        await self.driver.say(resident, "/start")
        await self.tap(resident, "yes")
        parts = grid.split("-")
        for depth in (2, 3, 4):
            place = "-".join(parts[:depth])
            for _ in range(10):  # the picker shows twelve places a page
                if await self.tap(resident, place):
                    break
                if not await self.tap(resident, "next"):
                    break
            else:
                self.figures.stuck += 1

    async def submit(self, need: Need) -> None:
        if need.resident not in self.registered:
            await self.register(need.resident)
        self.driver.results.clear()
        await self.driver.press(need.resident, "m:report")
        ok = await self.tap(need.resident, KIND_OF[need.category])
        ok = ok and await self.tap(need.resident, need.category)
        if ok:
            await self.driver.say(need.resident, f"第 {need.number} 项需求：请帮忙")
            ok = await self.tap(need.resident, "submit")
        if not ok:
            self.figures.stuck += 1
            return
        newest = await self.newest_request()
        if (newest is None or newest in self.by_request) and await self.tap(need.resident, "send"):
            newest = await self.newest_request()  # a sensitive category: consent asked first
        if newest is None or newest in self.by_request:
            self.figures.stuck += 1  # not registered (refused by a limit, say)
            return
        self.figures.needs += 1
        need.request_id = newest
        self.by_request[newest] = need

    async def newest_request(self) -> int | None:
        self.meter.phase = "simulation"
        async with self.db.session() as session:
            return (await session.exec(select(func.max(col(Request.id))))).one()

    async def staff_acts(self, person: int, request_id: int) -> None:
        need = self.by_request[request_id]
        role, _ = self.staff[person]
        first = role == "grid_member" and not need.accepted and need.verdicts_given == 0
        plan = need.plan if first else "accept"
        if plan == "ignore":
            return
        if plan == "pass_up":
            if await self.press(person, f"t:decline:{request_id}"):
                await self.driver.say(person, "本级解决不了，请上级协调")
                need.plan = "passed"
            return
        if self.driver.newest(person, f"t:accept:{request_id}") is None:
            self.figures.stale += 1  # a newer copy of the card was acted on first
            return
        if not await self.press(person, f"t:accept:{request_id}"):
            return
        if not need.accepted:
            need.accepted = True
            need.responded = need.plan != "ignore"
        if plan == "stall":
            return
        if plan == "ask":
            when = self.working_delay(timedelta(minutes=5), timedelta(hours=1))
            self.at(when, lambda: self.staff_asks(person, request_id))
            return
        when = self.working_delay(timedelta(minutes=30), timedelta(hours=6))
        self.at(when, lambda: self.staff_resolves(person, request_id))

    async def staff_asks(self, person: int, request_id: int) -> None:
        if await self.press(person, f"t:ask:{request_id}"):
            await self.driver.say(person, "请问具体是哪里的问题？")
            self.by_request[request_id].plan = "asked"

    async def resident_answers(self, resident: int, request_id: int) -> None:
        if await self.press(resident, f"q:{request_id}"):
            await self.driver.say(resident, "在厨房水池下面")
        need = self.by_request[request_id]
        holder = await self.holder(request_id)
        if holder is not None and need.plan == "asked":
            when = self.working_delay(timedelta(minutes=30), timedelta(hours=4))
            self.at(when, lambda: self.staff_resolves(holder, request_id))

    async def holder(self, request_id: int) -> int | None:
        self.meter.phase = "simulation"
        async with self.db.session() as session:
            request = await session.get(Request, request_id)
            if request is None or request.assignee_staff_id is None:
                return None
            staff = await session.get(Staff, request.assignee_staff_id)
            return staff.telegram_id if staff else None

    async def staff_resolves(self, person: int, request_id: int) -> None:
        if await self.press(person, f"t:resolve:{request_id}"):
            await self.driver.say(person, "已处理完毕")
            self.by_request[request_id].resolved = True

    async def resident_rates(self, resident: int, request_id: int) -> None:
        need = self.by_request[request_id]
        answer = need.verdict if need.verdicts_given == 0 else "satisfied"
        if answer == "silent":
            return
        need.verdicts_given += 1
        solved = "n" if answer == "not_solved" else "y"
        how = {"satisfied": "s", "fairly": "f", "not_solved": "u"}[answer]
        if not await self.press(resident, f"rv:s:{request_id}:{solved}"):
            return
        if not await self.press(resident, f"rv:f:{request_id}:{solved}:{how}"):
            return
        need.rated = True
        need.satisfied = answer in ("satisfied", "fairly")
        need.resolved = answer != "not_solved"

    # The worker's side ---------------------------------------------------------------------

    async def tick(self) -> None:
        self.meter.phase = "sweep"
        report = await sweep(self.db, self.clock, ZONE, DEFAULT_POLICY)
        self.figures.escalations += report.escalated
        await self.driver.deliver()
        local = self.clock.now().astimezone(ZONE)
        if self.digest and DIGEST_AT <= local.time() < DIGEST_AT.replace(hour=9):
            self.meter.phase = "digest"
            digest = await send_digests(self.db, self.clock, ZONE, DEFAULT_POLICY, DIGEST_AT)
            self.figures.digests += len(digest.sent)
            await self.driver.deliver()

    async def run(self, needs: int) -> None:
        moments, days = arrivals(self.rng, needs)
        self.figures.days = days
        residents = list(self.home)
        for number, moment in enumerate(moments, start=1):
            need = Need(
                number=number,
                resident=self.rng.choice(residents),
                category=self.rng.choice(CATEGORY_CODES),
                plan=pick(self.rng, GRID_PLANS),
                verdict=pick(self.rng, VERDICTS),
            )
            self.needs.append(need)
            self.at(moment, lambda need=need: self.submit(need))  # type: ignore[misc]
        end_day = (START + timedelta(days=days) + TAIL).astimezone(ZONE)
        end = end_day.replace(hour=12).astimezone(UTC)
        next_tick = START + TICK
        while True:
            upcoming = self.queue[0][0] if self.queue else end
            while next_tick <= min(upcoming, end):
                self.clock.set(next_tick)
                await self.tick()
                next_tick += TICK
            if not self.queue or self.queue[0][0] > end:
                break
            moment, _, action = heapq.heappop(self.queue)
            self.clock.set(max(moment, self.clock.now()))
            await action()
        self.clock.set(end)
        await self.driver.deliver()


async def run(
    needs: int,
    seed: int = 14,
    postgres: str | None = None,
    *,
    digest: bool = True,
    top: int = 0,
    roster_elsewhere: bool = False,
) -> Figures:
    """Replay `needs` needs and return the figures. With `roster_elsewhere`, the roster is
    imported by a child process, as in production (for measuring this process's memory)."""
    with tempfile.TemporaryDirectory() as workdir:
        db, dropped = await open_database(postgres, workdir)
        try:
            await db.upgrade()
            if roster_elsewhere:
                staff = import_elsewhere(db, Path(workdir) / "roster", seed)
            else:
                staff = write_roster(Path(workdir) / "roster", seed)
                await import_roster(db, Path(workdir) / "roster")
            async with db.transaction() as session:
                await session.exec(
                    update(Staff)
                    .where(col(Staff.telegram_id).is_not(None))
                    .values(opened_at=START - timedelta(days=30))
                )  # type: ignore[call-overload]
            simulation = Simulation(db, needs, seed, staff)
            simulation.digest = digest
            if top:
                simulation.meter.texts = {}
            began = time.perf_counter()
            await simulation.run(needs)
            figures = simulation.figures
            figures.seconds = time.perf_counter() - began
            figures.updates = simulation.driver.updates
            figures.missing = simulation.missing
            figures.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            figures.statements = simulation.meter.statements
            figures.commits = simulation.meter.commits
            figures.texts = simulation.meter.texts or {}
            simulation.meter.phase = "check"
            async with db.session() as session:
                rows = (await session.exec(select(OutboxMessage.id, OutboxMessage.status))).all()
                counts = await tally(session, true(), simulation.clock.now())
            delivered = simulation.driver.delivered
            figures.outbox_rows = len(rows)
            figures.lost = sum(1 for row_id, status in rows if status != "sent")
            figures.lost += sum(
                1 for row_id, status in rows if status == "sent" and row_id not in delivered
            )
            figures.duplicated = sum(n - 1 for n in delivered.values() if n > 1)
            measured = counts.get(())
            figures.measured = measured.rates if measured else None
            done = [n for n in simulation.needs if n.request_id is not None]
            figures.truth = Rates(
                received=len(done),
                responded=sum(n.responded for n in done),
                resolved=sum(n.resolved for n in done),
                rated=sum(n.rated for n in done),
                satisfied=sum(n.satisfied for n in done),
            )
        finally:
            await db.dispose()
            if postgres is not None and dropped is not None:
                await drop_database(postgres, dropped)
    return figures


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def show(figures: Figures, backend: str) -> None:
    f = figures
    per = max(f.needs, 1)
    print(
        f"{backend}: {f.needs} needs over {f.days} day(s) (+14 days' tail), {f.residents} "
        f"residents, 2,604 grids, {f.updates} updates"
    )
    print(f"wall time                 {f.seconds:10.1f} s")
    print(f"updates/s                 {f.updates / f.seconds:10.1f}")
    print(f"messages/s                {f.messages / f.seconds:10.1f}  ({f.messages} shown, "
          f"{f.new_messages} new, {f.messages - f.new_messages} edits)")  # fmt: skip
    print(f"peak RSS                  {f.peak_rss_mib:10.1f} MiB")
    print(f"stale task cards          {f.stale:10d}")
    print(f"escalations               {f.escalations:10d}")
    print(f"digests                   {f.digests:10d}")
    print(f"outbox rows               {f.outbox_rows:10d}")
    print(f"lost messages             {f.lost:10d}")
    print(f"duplicated messages       {f.duplicated:10d}")
    print(f"stuck (no button found)   {f.stuck:10d}  {' '.join(f.missing[:10])}")
    print()
    total_s = sum(v for k, v in f.statements.items() if k not in ("setup", "simulation", "check"))
    total_c = sum(v for k, v in f.commits.items() if k not in ("setup", "simulation", "check"))
    print(f"{'SQL per need':<26}{'statements':>12}{'commits':>10}")
    for phase in ("register", "updates", "sweep", "digest", "outbox"):
        print(f"  {phase:<24}{f.statements[phase] / per:12.1f}{f.commits[phase] / per:10.1f}")
    print(f"  {'all':<24}{total_s / per:12.1f}{total_c / per:10.1f}")
    ratios = (
        ("per update", ("register", "updates"), f.updates, ""),
        ("sweep per escalation", ("sweep",), f.escalations, "  (all sweep work, ticks included)"),
        ("outbox per row", ("outbox",), f.outbox_rows, ""),
    )
    for label, phases, count, note in ratios:
        statements = sum(f.statements[p] for p in phases) / max(count, 1)
        commits = sum(f.commits[p] for p in phases) / max(count, 1)
        print(f"{label:<26}{statements:12.1f}{commits:10.1f}{note}")
    print(f"(the simulation's own look-ups: {f.statements['simulation']} statements, not counted)")
    print()
    m, t = f.measured, f.truth
    assert t is not None
    print(f"{'':<26}{'measured':>24}{'ground truth':>24}")
    for name, value in (
        ("received", lambda r: f"{r.received}"),
        ("response rate", lambda r: f"{percent(r.response)} ({r.responded})"),
        ("resolution rate", lambda r: f"{percent(r.resolution)} ({r.resolved})"),
        ("satisfaction rate", lambda r: f"{percent(r.satisfaction)} ({r.satisfied}/{r.rated})"),
    ):
        print(f"{name:<26}{value(m) if m else '—':>24}{value(t):>24}")
    print("rates equal to ground truth:", "yes" if m == t else "NO")


def show_top(figures: Figures, top: int) -> None:
    """The statements run most often in each phase, per need."""
    per = max(figures.needs, 1)
    for phase in ("register", "updates", "sweep", "digest", "outbox"):
        texts = figures.texts.get(phase)
        if not texts:
            continue
        print(f"\n{phase}: the {top} statements run most often (per need)")
        for shape, count in texts.most_common(top):
            print(f"{count / per:8.2f}  {shape}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--needs", type=int, default=YEAR)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--postgres", default=None, help="a server URL (postgresql+asyncpg://…)")
    parser.add_argument(
        "--no-digest", action="store_true", help="leave out the morning digest (664 people a day)"
    )
    parser.add_argument(
        "--top", type=int, default=0, help="also list each phase's N most frequent statements"
    )
    args = parser.parse_args()
    figures = await run(
        args.needs, args.seed, args.postgres, digest=not args.no_digest, top=args.top
    )
    show(figures, "PostgreSQL" if args.postgres else "SQLite")
    if args.top:
        show_top(figures, args.top)


if __name__ == "__main__":
    asyncio.run(main())
