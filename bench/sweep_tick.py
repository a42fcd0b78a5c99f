"""One sweep tick with a backlog of due escalations: how long it takes, and the most parameters
one statement bound.

    .venv/bin/python bench/sweep_tick.py [--due 1000 10000] [--backend both] [--before]

The sample district is imported, one need is submitted as the bot submits it (grid QS-JB-TH-01,
category repair, at 10:00 on a Monday), and it is copied, each copy with a resident of its own,
until `--due` needs wait for acceptance, each with its task card sent to the grid member
(an escalation edits it). The clock then moves two days on, past every accept
deadline, and one tick runs (`schedules.sweep.sweep`, the worker's burst window of 30 minutes):
each need escalates from the grid to its community, with its notices written to the outbox.
Printed: the tick's wall time, the escalations done, the statements run, and the most
parameters one statement bound (asyncpg refuses more than 32,767).

`--before` also runs the sweep as it was before the claim by primary key (schedules/sweep.py at
commit 9fa0f06, read from git: a `NOT IN (seen)` list that grows by one id per row handled).

PostgreSQL: HUIYIN_BENCH_DATABASE_URL (by default
postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_sweep; dropped and created again).
SQLite: a file in a temporary directory.

This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, insert, select, text, update

import schedules.sweep as sweep_after
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.messages import Outbound
from domain.requests import submit_request
from handlers.cards import card_ref
from storage.database import Database
from storage.models import Account, Beneficiary, OutboxMessage, Request, Staff
from storage.roster import import_roster, sample_district_dir
from tests.scratch_postgres import recreate_database

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_sweep"
BEFORE = "9fa0f06"  # the last commit with the `NOT IN (seen)` list
ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE)  # a Monday
BURST_WINDOW = timedelta(minutes=30)
RESIDENT = 800_000_000


async def fresh_database(backend: str) -> Database:
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/sweep.db")
    else:
        url = os.environ.get("HUIYIN_BENCH_DATABASE_URL", DEFAULT_URL)
        db = Database(await recreate_database(url))
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    async with db.transaction() as session:  # every staff member has opened the bot
        await session.execute(
            update(Staff).where(Staff.telegram_id.is_not(None)).values(opened_at=START)  # type: ignore[union-attr]
        )
    return db


async def seed(db: Database, due: int, clock: ManualClock) -> None:
    """`due` needs waiting for acceptance at grid level: one submitted, the rest its copies."""
    async with db.transaction() as session:
        account = Account(
            telegram_id=RESIDENT,
            chat_id=RESIDENT,
            consent_at=clock.now(),
            home_grid_code="QS-JB-TH-01",
            created_at=clock.now(),
        )
        session.add(account)
        await session.flush()
        assert account.id is not None
        beneficiary = Beneficiary(
            owner_account_id=account.id,
            is_self=True,
            name="Resident",
            grid_code="QS-JB-TH-01",
            created_at=clock.now(),
        )
        session.add(beneficiary)
        await session.flush()
        _request, route = await submit_request(
            session,
            reporter=account,
            beneficiary=beneficiary,
            kind="living",
            category="repair",
            description="Please help",
            media_kind=None,
            media_file_id=None,
            now=clock.now(),
            zone=ZONE,
            policy=DEFAULT_POLICY,
        )
        assert route is not None
        template = {
            "account": dict((await session.execute(select(Account.__table__))).mappings().one()),
            "beneficiary": dict(
                (await session.execute(select(Beneficiary.__table__))).mappings().one()
            ),
            "request": dict((await session.execute(select(Request.__table__))).mappings().one()),
        }
    first = template["account"]["id"] + 1
    step = 2000  # rows per executemany
    for start in range(0, due - 1, step):
        ids = range(first + start, first + min(start + step, due - 1))
        async with db.transaction() as session:
            rows: dict[str, list[dict[str, Any]]] = {"account": [], "beneficiary": []}
            rows["request"] = []
            for n in ids:
                rows["account"].append(
                    template["account"]
                    | {"id": n, "telegram_id": RESIDENT + n, "chat_id": RESIDENT + n}
                )
                rows["beneficiary"].append(
                    template["beneficiary"] | {"id": n, "owner_account_id": n}
                )
                rows["request"].append(
                    template["request"] | {"id": n, "reporter_account_id": n, "beneficiary_id": n}
                )
            await session.execute(insert(Account.__table__), rows["account"])
            await session.execute(insert(Beneficiary.__table__), rows["beneficiary"])
            await session.execute(insert(Request.__table__), rows["request"])
    # Each need's task card, sent to its grid member (as the bot sends it on submission): an
    # escalation edits it, so the chunk's read of the cards' rows has rows to find.
    staff_id = template["request"]["assignee_staff_id"]
    async with db.session() as session:
        owner = await session.get(Staff, staff_id)
        assert owner is not None and owner.telegram_id is not None
        chat_id = owner.telegram_id
    request_ids = range(template["request"]["id"], template["request"]["id"] + due)
    for start in range(0, due, step):
        async with db.transaction() as session:
            cards = []
            for request_id in request_ids[start : start + step]:
                ref = card_ref(request_id, staff_id)
                payload = Outbound(chat_id=chat_id, text=f"Task {request_id}", ref=ref).to_payload()
                cards.append(
                    {
                        "chat_id": chat_id,
                        "payload": payload,
                        "ref_key": ref,
                        "status": "sent",
                        "attempts": 1,
                        "created_at": clock.now(),
                        "next_attempt_at": clock.now(),
                        "sent_at": clock.now(),
                        "sent_message_id": request_id,
                    }
                )
            await session.execute(insert(OutboxMessage.__table__), cards)
    if db.url.startswith("sqlite"):
        # The statistics the bot gathers at every start (storage.database.Database.analyze),
        # here of the seeded tables as a running district's would be.
        await db.analyze()
    else:
        async with db.transaction() as session:  # the copies took ids by hand
            for table in ("accounts", "beneficiaries", "requests"):
                await session.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
            await session.execute(text("ANALYZE"))


def sweep_before() -> ModuleType:
    """schedules/sweep.py as it was at BEFORE, loaded under a name of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE}:schedules/sweep.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "sweep_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sweep_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_before"] = module
    spec.loader.exec_module(module)
    return module


async def measure(backend: str, due: int, module: ModuleType) -> None:
    clock = ManualClock(START)
    db = await fresh_database(backend)
    try:
        await seed(db, due, clock)
        counts = {"statements": 0, "most_parameters": 0}

        def count(_conn: Any, _cursor: Any, _statement: str, parameters: Any, *_: Any) -> None:
            counts["statements"] += 1
            size = len(parameters) if isinstance(parameters, (tuple, list, dict)) else 0
            counts["most_parameters"] = max(counts["most_parameters"], size)

        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        clock.advance(timedelta(days=2))
        started = time.perf_counter()
        try:
            report = await module.sweep(db, clock, ZONE, DEFAULT_POLICY, burst_window=BURST_WINDOW)
            outcome = (
                f"{report.escalated:>6} escalated, {report.failed} failed, "
                f"{report.chunks_redone} chunks redone"
            )
        except Exception as error:  # the sweep before: asyncpg's parameter limit
            outcome = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:60]}"
        elapsed = time.perf_counter() - started
        which = "after " if module is sweep_after else f"before ({BEFORE})"
        print(
            f"{backend:<10} {which:<16} due {due:>6}: {elapsed:8.1f} s  {outcome}  "
            f"{counts['statements']:>7} statements, at most {counts['most_parameters']} "
            "parameters in one",
            flush=True,
        )
    finally:
        await db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--before", action="store_true", help=f"also run the sweep of {BEFORE}")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    modules = [sweep_before(), sweep_after] if args.before else [sweep_after]
    for backend in backends:
        for due in args.due:
            for module in modules:
                asyncio.run(measure(backend, due, module))


if __name__ == "__main__":
    main()
