"""One working morning's digest on a district at real scale: statements, commits and time.

    PYTHONPATH=. .venv/bin/python bench/digest.py [--needs 2000] [--postgres URL]

On the generated district of tests/big_district.py (13 towns, 651 villages, 2,604 grids, 3,268
staff: 651 coordinators and 13 town officers get digests), made to look like a Monday morning
by `tests.big_district.a_morning_of_work` (`--needs` requests over the grids, a quarter each
new, overdue, due today and waiting for the verdict; a tenth with an offer nobody claimed;
every ninth grid member has not opened Huiyin), `schedules.digest.send_digests` runs at 08:30:
the statements it sends (SQLAlchemy's before_cursor_execute), the commits, the wall time, and
how many people were sent one / had nothing to hear. Then a second run the same morning, which
finds everyone's digest recorded. SQLite in a temporary directory; PostgreSQL when --postgres
names a database of its own (it is dropped and created), e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_digest.

Nothing here asserts a time; see bench/README.md for the figures measured on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event

from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from schedules.digest import send_digests
from storage.database import Database
from storage.roster import import_roster
from tests.big_district import a_morning_of_work, write_district
from tests.scratch_postgres import recreate_database

ZONE = ZoneInfo("Asia/Shanghai")
AT = clock_time(8, 30)
MONDAY = datetime(2026, 11, 30, 8, 30, tzinfo=ZONE)


class Meter:
    """Statements (by their first words) and commits on one engine."""

    def __init__(self, db: Database) -> None:
        self.statements: Counter[str] = Counter()
        self.commits = 0
        engine = db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self.statement)
        event.listen(engine, "commit", self.commit)

    def statement(self, _conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        self.statements[" ".join(sql.split()[:6])] += 1

    def commit(self, _conn: Any) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.statements.clear()
        self.commits = 0


async def morning(url: str, label: str, roster: Path, needs: int, top: int) -> None:
    if url.startswith("postgresql"):
        await recreate_database(url)
    db = Database(url)
    await db.upgrade()
    await import_roster(db, roster)
    await a_morning_of_work(db, MONDAY, needs)
    await db.analyze()
    meter = Meter(db)
    clock = ManualClock(MONDAY)
    for run in ("first run", "second run"):
        meter.reset()
        start = time.perf_counter()
        report = await send_digests(db, clock, ZONE, DEFAULT_POLICY, AT)
        seconds = time.perf_counter() - start
        total = sum(meter.statements.values())
        print(
            f"  {label} {run}: {total} statements, {meter.commits} commits, {seconds:.2f} s; "
            f"sent {len(report.sent)}, nothing {len(report.nothing)}, "
            f"already {len(report.already)}"
        )
        for sql, times in meter.statements.most_common(top):
            print(f"      {times:6d}  {sql}")
    await db.dispose()


async def main(needs: int, postgres: str | None, top: int) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}; {needs} requests")
    with tempfile.TemporaryDirectory() as directory:
        roster = Path(directory) / "roster"
        write_district(roster)
        await morning(f"sqlite+aiosqlite:///{directory}/digest.db", "SQLite", roster, needs, top)
        if postgres:
            await morning(postgres, "PostgreSQL", roster, needs, top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--needs", type=int, default=2000, help="requests in the district")
    parser.add_argument("--postgres", help="a PostgreSQL database of its own (dropped, created)")
    parser.add_argument("--top", type=int, default=0, help="show the N most frequent statements")
    args = parser.parse_args()
    asyncio.run(main(args.needs, args.postgres, args.top))
