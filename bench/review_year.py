"""The review table (/review, huiyin review) on a district's year: how long building it takes.

    .venv/bin/python bench/review_year.py [--requests N] [--runs N] [--keep]

Creates its own PostgreSQL database (HUIYIN_BENCH_REVIEW_DATABASE_URL, by default
postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_review; dropped and created again
unless --keep finds it seeded), migrates it, imports the sample district, and seeds N requests
spread over the year before "now" (10:00 on 30 November 2026, Shanghai) with their timelines, in
three INSERT ... SELECT statements: each is created and routed to a grid member of its grid; one
in ten is passed up by hand to the community's coordinator; 90% are accepted, resolved, rated
(60% satisfied, 25% fairly, 15% not) and closed, the rest are being handled; every pass-up
that was resolved has a rating from below. About 6.5 timeline entries a request.

For each case it times `build_table` (reading the requests and their timelines in batches and
walking them) and writing the .xlsx, after one warm-up run, and prints the median, the maximum
and the peak Python allocations (measured in a run of its own). A measurement, not a test:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time
import tracemalloc
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from domain.i18n import translator
from domain.review import DEFAULT_WEIGHTS, build_table, parse_review_period, scope_of_unit
from domain.review_book import write_review
from storage.database import Database
from storage.roster import import_roster, sample_district_dir
from tests.scratch_postgres import recreate_database

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_review"
ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)

REQUESTS = """
INSERT INTO requests (
    kind, category, description, reporter_account_id, beneficiary_id, grid_code, status,
    level, priority, reopen_count, created_at, updated_at, accept_reminder_stage,
    resolve_reminder_stage, satisfaction
)
SELECT 'living', 'repair', '', :account, :beneficiary,
       grids[1 + floor(random() * cardinality(grids))::int],
       CASE WHEN n % 10 = 9 THEN 'in_progress' ELSE 'closed' END,
       CASE WHEN n % 10 = 0 THEN 'community' ELSE 'grid' END,
       'normal', 0, t, t, 0, 0,
       CASE WHEN n % 10 = 9 THEN NULL
            ELSE (ARRAY['satisfied', 'satisfied', 'satisfied', 'satisfied', 'fairly',
                        'fairly', 'not_satisfied'])[1 + (n / 10) % 7] END
FROM generate_series(1, :count) AS n,
     LATERAL (SELECT CAST(:now AS timestamptz) - interval '365 days'
                     + n * (interval '365 days' / :count) AS t) AS times,
     (SELECT CAST(:grids AS text[]) AS grids) AS g
"""

# Who holds what: the first grid member of each grid, and its community's first coordinator.
HOLDERS = """
CREATE TEMP TABLE holders AS
SELECT g.code AS grid_code,
       (SELECT min(id) FROM staff WHERE unit_code = g.code AND role = 'grid_member') AS member,
       (SELECT min(id) FROM staff WHERE unit_code = g.parent_code AND role = 'coordinator')
           AS coordinator
FROM units g WHERE g.level = 'grid'
"""

EVENTS = """
INSERT INTO request_events (request_id, at, action, actor_staff_id, from_level, to_level,
                            assignee_staff_id, note)
SELECT r.id, r.created_at, 'create', CAST(NULL AS integer), CAST(NULL AS text),
       CAST(NULL AS text), CAST(NULL AS integer), CAST(NULL AS text)
FROM requests r
UNION ALL
SELECT r.id, r.created_at + interval '1 minute', 'route', NULL, NULL, 'grid', h.member, NULL
FROM requests r JOIN holders h USING (grid_code)
UNION ALL
SELECT r.id, r.created_at + interval '2 hours', 'decline', h.member, 'grid', 'community',
       h.coordinator, 'not for the grid'
FROM requests r JOIN holders h USING (grid_code) WHERE r.level = 'community'
UNION ALL
SELECT r.id, r.created_at + interval '3 hours', 'accept',
       CASE WHEN r.level = 'community' THEN h.coordinator ELSE h.member END, NULL, NULL,
       CASE WHEN r.level = 'community' THEN h.coordinator ELSE h.member END, NULL
FROM requests r JOIN holders h USING (grid_code)
UNION ALL
SELECT r.id, r.created_at + interval '2 days', 'resolve',
       CASE WHEN r.level = 'community' THEN h.coordinator ELSE h.member END, NULL, NULL,
       CASE WHEN r.level = 'community' THEN h.coordinator ELSE h.member END, 'done'
FROM requests r JOIN holders h USING (grid_code) WHERE r.status = 'closed'
UNION ALL
SELECT r.id, r.created_at + interval '2 days 2 hours', 'verdict', NULL, NULL, NULL, NULL,
       'solved:y' || chr(10) || 'satisfaction:' || r.satisfaction || chr(10) || 'by:reporter'
FROM requests r WHERE r.status = 'closed'
UNION ALL
SELECT r.id, r.created_at + interval '2 days 2 hours', 'close', NULL, NULL, NULL, NULL, NULL
FROM requests r WHERE r.status = 'closed'
"""

RATINGS = """
INSERT INTO upward_ratings (request_id, rater_unit_code, rater_level, rater_staff_id,
                            rated_unit_code, rated_level, how, state, created_at, rating,
                            rated_at)
SELECT r.id, r.grid_code, 'grid', h.member, g.parent_code, 'community', 'pass_up', 'rated',
       r.created_at + interval '2 days',
       (ARRAY['satisfied', 'fairly', 'not_satisfied'])[1 + r.id % 3],
       r.created_at + interval '2 days 1 hour'
FROM requests r JOIN holders h USING (grid_code) JOIN units g ON g.code = r.grid_code
WHERE r.level = 'community' AND r.status = 'closed'
"""

CASES = (
    ("district QS, the year", "QS", "2026"),
    ("town QS-JB, the year", "QS-JB", "2026"),
    ("community QS-JB-TH, the year", "QS-JB-TH", "2026"),
    ("district QS, a quarter (2026-Q3)", "QS", "2026-Q3"),
)


async def seed(db: Database, count: int) -> None:
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    started = time.perf_counter()
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
        await conn.execute(
            text(REQUESTS),
            {
                "grids": grids,
                "now": NOW,
                "count": count,
                "account": account,
                "beneficiary": beneficiary,
            },
        )
        await conn.execute(text(HOLDERS))
        await conn.execute(text(EVENTS))
        await conn.execute(text(RATINGS))
        events = (await conn.execute(text("SELECT count(*) FROM request_events"))).scalar_one()
    print(
        f"seeded {count:,} requests, {events:,} timeline entries "
        f"in {time.perf_counter() - started:.1f} s"
    )
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))


async def one_run(db: Database, unit: str, period_text: str) -> tuple[float, float, int]:
    """(seconds for the table, seconds for the .xlsx, rows in the cohort's table)."""
    period = parse_review_period(period_text, NOW, ZONE)
    assert period is not None
    started = time.perf_counter()
    async with db.session() as session:
        scope = await scope_of_unit(session, unit)
        assert scope is not None
        table = await build_table(session, scope, period, DEFAULT_WEIGHTS)
    built = time.perf_counter() - started
    write_review(table, io.BytesIO(), translator("zh_CN"), unit)
    return built, time.perf_counter() - started - built, sum(r.received for r in table.rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="reuse a seeded database")
    args = parser.parse_args()
    url = os.environ.get("HUIYIN_BENCH_REVIEW_DATABASE_URL", DEFAULT_URL)
    db = Database(url)
    seeded = False
    if args.keep:
        try:
            async with db.engine.connect() as conn:
                seeded = bool((await conn.execute(text("SELECT count(*) FROM requests"))).scalar())
        except Exception:
            seeded = False
    if not seeded:
        await db.dispose()
        await recreate_database(url)
        db = Database(url)
        await seed(db, args.requests)
    print(f"\n{'case':36} {'held':>9} {'table med':>10} {'max':>8} {'xlsx':>7} {'peak MiB':>9}")
    for name, unit, period in CASES:
        await one_run(db, unit, period)  # warm-up
        tables, books = [], []
        held = 0
        for _ in range(args.runs):
            built, written, held = await one_run(db, unit, period)
            tables.append(built)
            books.append(written)
        # Memory in a run of its own: tracing allocations slows the run down several times.
        tracemalloc.start()
        await one_run(db, unit, period)
        peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
        tracemalloc.stop()
        print(
            f"{name:36} {held:>9,} {statistics.median(tables) * 1000:>8.0f}ms "
            f"{max(tables) * 1000:>6.0f}ms {statistics.median(books) * 1000:>5.0f}ms "
            f"{peak:>9.1f}"
        )
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
