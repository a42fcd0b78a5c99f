"""/stats on 1,000,000 requests: how long the report, its text and its chart take.

    .venv/bin/python bench/stats_1m.py [--requests N] [--runs N] [--keep]

Creates its own PostgreSQL database (HUIYIN_BENCH_DATABASE_URL, by default
postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench; it is dropped and created again
unless --keep finds it already seeded), migrates it, imports the sample district, and seeds
the requests in one INSERT ... SELECT generate_series: spread over the year before "now"
(10:00 on 30 November 2026, Shanghai), over every grid and category, with a realistic mix of
statuses, acceptances and verdicts. Then, for each case, it times what /stats does for a
viewer: `build_report` + the summary text + the chart PNG, several runs, and prints the
median and the maximum, the share of the SQL, and the peak memory.

This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import make_url, text
from sqlmodel import col, select

from domain.areas import Area, area_of_unit
from domain.catalog import CATEGORIES
from domain.i18n import translator
from domain.lifecycle import Level
from domain.reports import Period, build_report, parse_period
from handlers.stats import chart_for, summary
from storage.database import Database
from storage.models import Unit
from storage.roster import import_roster, sample_district_dir
from tests.scratch_postgres import recreate_database

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench"
ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)

# One statement: every request gets a grid, a category, a creation time in the year before
# NOW and a status by the dice; acceptance, deadlines and verdicts follow from the status.
# Rows go in in the order they were created, as they do in production.
SEED = """
WITH dice AS (
    SELECT n,
           grids[1 + floor(random() * cardinality(grids))::int] AS grid_code,
           categories[1 + floor(random() * cardinality(categories))::int] AS category,
           CAST(:now AS timestamptz) - interval '365 days'
               + (n - random()) / :count * interval '365 days' AS created_at,
           random() AS s, random() AS a, random() AS v
    FROM generate_series(1, :count) AS n,
         (SELECT CAST(:grids AS text[]) AS grids, CAST(:categories AS text[]) AS categories) AS c
), shaped AS (
    SELECT *,
           CASE
               WHEN s < 0.04 THEN 'cancelled'
               WHEN s < 0.06 THEN 'merged'
               WHEN created_at > CAST(:now AS timestamptz) - interval '14 days' AND s < 0.30
                   THEN (ARRAY['new', 'assigned', 'in_progress'])[1 + floor(a * 3)::int]
               WHEN s < 0.10 THEN 'in_progress'
               WHEN s < 0.13 THEN 'assigned'
               WHEN s < 0.22 THEN 'resolved'
               ELSE 'closed'
           END AS status
    FROM dice
)
INSERT INTO requests (
    kind, category, description, reporter_account_id, beneficiary_id, grid_code, status,
    level, priority, reopen_count, created_at, updated_at, accept_reminder_stage,
    resolve_reminder_stage, respond_by, responded_at, accept_due_at, resolve_due_at,
    resolved_at, closed_at, satisfaction, solved
)
SELECT
    'living', category, '', :account, :beneficiary, grid_code, status,
    'grid', 'normal', 0, created_at, created_at, 0, 0,
    created_at + interval '24 hours',
    CASE WHEN status IN ('new', 'assigned') THEN NULL
         ELSE created_at + a * interval '40 hours' END,
    CASE WHEN status = 'assigned' THEN created_at + interval '24 hours' END,
    CASE WHEN status IN ('assigned', 'in_progress') THEN created_at + interval '7 days' END,
    CASE WHEN status IN ('resolved', 'closed') THEN created_at + interval '3 days' END,
    CASE WHEN status = 'closed' THEN created_at + interval '5 days' END,
    CASE WHEN status <> 'closed' OR v >= 0.85 THEN NULL
         WHEN v < 0.60 THEN 'satisfied'
         WHEN v < 0.78 THEN 'fairly'
         ELSE 'not_satisfied' END,
    CASE WHEN status = 'closed' AND v < 0.85 THEN v < 0.78 END
FROM shaped
"""


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    unit: str
    period: str


CASES = (
    Case("district, this month so far", "QS", "month"),
    Case("district, a whole month (2026-10)", "QS", "2026-10"),
    Case("town QS-JB, a whole month", "QS-JB", "2026-10"),
    Case("community QS-JB-TH, a whole month", "QS-JB-TH", "2026-10"),
    Case("district, today", "QS", "today"),
)


async def count_requests(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM requests"))).scalar_one())


async def seed(db: Database, count: int) -> None:
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    async with db.engine.begin() as conn:
        grids = list(
            (await conn.execute(text("SELECT code FROM units WHERE level = 'grid'"))).scalars()
        )
        account = (
            await conn.execute(
                text(
                    "INSERT INTO accounts (telegram_id, chat_id, display_name, language, "
                    "created_at) VALUES (1, 1, 'bench', 'zh_CN', :now) RETURNING id"
                ),
                {"now": NOW},
            )
        ).scalar_one()
        beneficiary = (
            await conn.execute(
                text(
                    "INSERT INTO beneficiaries (owner_account_id, is_self, name, relation, "
                    "grid_code, created_at) VALUES (:account, true, 'bench', '', :grid, :now) "
                    "RETURNING id"
                ),
                {"account": account, "grid": grids[0], "now": NOW},
            )
        ).scalar_one()
        started = time.perf_counter()
        await conn.execute(
            text(SEED),
            {
                "grids": grids,
                "categories": [c.code for c in CATEGORIES],
                "now": NOW,
                "count": count,
                "account": account,
                "beneficiary": beneficiary,
            },
        )
        print(f"seeded {count:,} requests in {time.perf_counter() - started:.1f} s")
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE requests"))


async def one_run(
    db: Database, area: Area, period: Period, unit_level: Level
) -> tuple[float, float]:
    """(seconds for everything, seconds in SQL) for one /stats answer."""
    t = translator("zh_CN")
    started = time.perf_counter()
    async with db.session() as session:
        report = await build_report(session, area, period, NOW, ZONE)
        codes = [area.unit_code, *(code for code, _ in report.by_part)]
        rows = await session.exec(select(Unit).where(col(Unit.code).in_(codes)))
        names = {unit.code: unit for unit in rows.all()}
    in_sql = time.perf_counter() - started
    summary(t, report, unit_level, names)
    png = chart_for(t, report, names).render()
    assert png.startswith(b"\x89PNG")
    return time.perf_counter() - started, in_sql


async def measure(db: Database, runs: int) -> None:
    print(f"\n{'case':40} {'rows':>8} {'median':>8} {'max':>8} {'SQL med':>8}")
    for case in CASES:
        period = parse_period(case.period, NOW, ZONE)
        assert period is not None
        async with db.session() as session:
            area = await area_of_unit(session, case.unit)
            unit = await session.get(Unit, case.unit)
        assert area is not None and unit is not None
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM requests WHERE created_at >= :start "
                        "AND created_at < :end"
                        + ("" if area.grid_codes is None else " AND grid_code = ANY(:grids)")
                    ),
                    {
                        "start": period.start,
                        "end": period.end,
                        "grids": sorted(area.grid_codes or ()),
                    },
                )
            ).scalar_one()
        await one_run(db, area, period, Level(unit.level))  # warm the caches and the fonts
        totals, sqls = [], []
        for _ in range(runs):
            total, in_sql = await one_run(db, area, period, Level(unit.level))
            totals.append(total)
            sqls.append(in_sql)
        print(
            f"{case.name:40} {rows:>8,} {statistics.median(totals) * 1000:>6.0f}ms "
            f"{max(totals) * 1000:>6.0f}ms {statistics.median(sqls) * 1000:>6.0f}ms"
        )


async def traced_peak(db: Database) -> int:
    """The most Python memory one answer for the largest case holds at once (traced apart
    from the timed runs: tracing slows Python down)."""
    case = CASES[1]
    period = parse_period(case.period, NOW, ZONE)
    async with db.session() as session:
        area = await area_of_unit(session, case.unit)
    assert period is not None and area is not None
    tracemalloc.start()
    await one_run(db, area, period, Level.DISTRICT)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="reuse a database already seeded")
    args = parser.parse_args()
    url = os.environ.get("HUIYIN_BENCH_DATABASE_URL", DEFAULT_URL)
    db = Database(url)
    if not (args.keep and await _seeded(db, args.requests)):
        await db.dispose()
        await recreate_database(url)
        db = Database(url)
        await seed(db, args.requests)
    else:
        await db.upgrade()  # a kept database follows the schema of the code being measured
    print(f"{await count_requests(db):,} requests in {make_url(url).database}")
    await measure(db, args.runs)
    peak = await traced_peak(db)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak Python allocations of one answer ({CASES[1].name}): {peak / 2**20:.1f} MiB")
    print(f"peak resident memory of the process: {max_rss:.0f} MiB")
    await db.dispose()


async def _seeded(db: Database, count: int) -> bool:
    try:
        return await count_requests(db) == count
    except Exception:  # no database or no table yet: seed afresh
        return False


if __name__ == "__main__":
    asyncio.run(main())
