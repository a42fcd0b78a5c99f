"""Issue 14's yardstick for one need: the SQL of exactly one request's lifecycle.

    .venv/bin/python bench/lifecycle.py [--postgres URL] [--top N]

The sample district (storage/roster) on a fresh database (SQLite in a temporary directory, or
with --postgres a database of its own on that server, created and dropped), its staff having
opened the bot; the grid member and the resident (tests/test_verdict.py's WANG and RESIDENT)
have said /start and the resident has registered, uncounted. Then, counted, the issue's
lifecycle, 11 updates through the real dispatcher:

- the resident reports a need through the menu (Report a need, kind, category, the text,
  submit: 5 updates);
- the grid member accepts it and resolves it with a note (3 updates);
- an hour later one sweep tick asks the resident for the verdict;
- the resident answers solved, satisfied, and adds a comment (3 updates).

After each update and after the tick the outbox is delivered by the real sender
(schedules.outbox.OutboxSender) into a recording fake (bot.channels.memory.MemorySender), as
the conversation tests do. Printed: SQL statements and commits (counted with SQLAlchemy engine
events, as bench/replay.py does) split into the updates, the sweep tick and the outbox, the
outbox rows written and the messages out (sent and edited); `--top N` lists each phase's N most
frequent statements. The figures are deterministic (no wall time in them). `run()` returns them
(tests/test_statement_budget.py holds the budget).

This is a measurement, not a test: nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, make_url, text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col

from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.messages import Outbound
from schedules.sweep import sweep
from storage.database import Database
from storage.models import Staff
from storage.roster import import_roster, sample_district_dir
from tests.harness import ZONE, Harness
from tests.test_conversation_report import report_need
from tests.test_verdict import RESIDENT, WANG, setup

# 10:00 on a Monday in Asia/Shanghai, as the tests' clock.
START = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
PHASES = ("updates", "sweep", "outbox")

T = TypeVar("T")


@dataclass
class Figures:
    statements: Counter[str] = field(default_factory=Counter)
    commits: Counter[str] = field(default_factory=Counter)
    updates: int = 0
    rows: int = 0  # outbox rows written during the lifecycle
    sent: int = 0
    edited: int = 0
    seen: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return self.sent + self.edited

    def total(self, counter: Counter[str]) -> int:
        return sum(counter[p] for p in PHASES)


class Meter:
    """Counts statements and commits by phase; `phase` None counts nothing (setup)."""

    def __init__(self, db: Database, figures: Figures) -> None:
        self.phase: str | None = None
        self.figures = figures
        engine = db.engine.sync_engine

        def executed(_conn: object, _cursor: object, statement: str, *_args: Any) -> None:
            if self.phase is not None:
                figures.statements[self.phase] += 1
                shape = re.sub(r"\s+", " ", statement)[:150]
                figures.seen.setdefault(self.phase, Counter())[shape] += 1

        def committed(*_args: Any) -> None:
            if self.phase is not None:
                figures.commits[self.phase] += 1

        event.listen(engine, "before_cursor_execute", executed)
        event.listen(engine, "commit", committed)

    def wrap(self, phase: str, act: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def counted(*args: Any, **kwargs: Any) -> T:
            outer, self.phase = self.phase, phase
            try:
                return await act(*args, **kwargs)
            finally:
                self.phase = outer

        return counted


@asynccontextmanager
async def database(postgres: str | None) -> AsyncIterator[Database]:
    if postgres is None:
        with tempfile.TemporaryDirectory() as folder:
            db = Database(f"sqlite+aiosqlite:///{Path(folder) / 'huiyin.db'}")
            try:
                yield db
            finally:
                await db.dispose()
        return
    server = make_url(postgres)
    name = f"huiyin_lifecycle_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(server.set(database=name).render_as_string(hide_password=False))
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def lifecycle(harness: Harness, meter: Meter) -> None:
    """The counted part: 11 updates and one sweep tick, the outbox delivered after each."""
    figures = meter.figures
    handle = harness.dispatcher.handle

    async def one_update(inbound: Any) -> Any:
        figures.updates += 1
        return await handle(inbound)

    harness.dispatcher.handle = meter.wrap("updates", one_update)  # type: ignore[method-assign]
    harness.outbox.deliver_due = meter.wrap("outbox", harness.outbox.deliver_due)  # type: ignore[method-assign]
    send, edit = harness.sender.send, harness.sender.edit

    async def sent(message: Outbound) -> int:
        figures.sent += 1
        return await send(message)

    async def edited(message: Outbound, message_id: int) -> None:
        figures.edited += 1
        await edit(message, message_id)

    harness.sender.send = sent  # type: ignore[method-assign]
    harness.sender.edit = edited  # type: ignore[method-assign]
    first_row = await last_outbox_id(harness.db)

    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:accept:1")
    await harness.press(WANG, "t:resolve:1")
    await harness.say(WANG, "Replaced the washer")
    harness.clock.advance(timedelta(hours=1, minutes=1))
    await meter.wrap("sweep", sweep)(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    await harness.outbox.deliver_due()
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, "rv:f:1:y:s")
    await harness.say(RESIDENT, "Quick and friendly")
    figures.rows = await last_outbox_id(harness.db) - first_row


async def last_outbox_id(db: Database) -> int:
    async with db.session() as session:
        result = await session.exec(text("SELECT COALESCE(MAX(id), 0) FROM outbox"))  # type: ignore[call-overload]
        return int(result.scalar_one())


async def prepared(db: Database) -> Harness:
    """The sample district, staff who opened the bot, the resident registered (uncounted)."""
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    async with db.transaction() as session:
        await session.exec(
            update(Staff).where(col(Staff.telegram_id).is_not(None)).values(opened_at=START)
        )  # type: ignore[call-overload]
    harness = Harness(db, ManualClock(START))
    await setup(harness)
    return harness


async def run(postgres: str | None = None) -> Figures:
    figures = Figures()
    async with database(postgres) as db:
        harness = await prepared(db)
        meter = Meter(db, figures)
        await lifecycle(harness, meter)
    return figures


def report(figures: Figures, top: int) -> None:
    print(
        f"updates {figures.updates}, outbox rows {figures.rows}, messages out "
        f"{figures.messages} ({figures.sent} sent, {figures.edited} edited)"
    )
    print(f"{'':<10}{'statements':>12}{'commits':>10}")
    for phase in PHASES:
        print(f"{phase:<10}{figures.statements[phase]:12d}{figures.commits[phase]:10d}")
    print(
        f"{'total':<10}{figures.total(figures.statements):12d}{figures.total(figures.commits):10d}"
    )
    updates = max(figures.updates, 1)
    rows = max(figures.rows, 1)
    print(
        f"per update {figures.statements['updates'] / updates:.2f} statements, "
        f"{figures.commits['updates'] / updates:.2f} commits; per outbox row "
        f"{figures.statements['outbox'] / rows:.2f} statements, "
        f"{figures.commits['outbox'] / rows:.2f} commits"
    )
    for phase in PHASES if top else ():
        print(f"\n{phase}: top {top}")
        for shape, count in figures.seen.get(phase, Counter()).most_common(top):
            print(f"  {count:4d}  {shape}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL server URL (postgresql+asyncpg://...)")
    parser.add_argument("--top", type=int, default=0, help="list each phase's N commonest")
    args = parser.parse_args()
    report(asyncio.run(run(args.postgres)), args.top)


if __name__ == "__main__":
    main()
