"""Finding one's place at district scale: the figures.

    PYTHONPATH=. .venv/bin/python bench/places.py [--postgres URL] [--pages 20]

On the generated district of tests/big_district.py (13 towns, 651 villages, 2,604 grids, 3,268
staff, a point for every grid and an outline for the first town's 204):

1. importing the roster (units.csv, people.csv, grids.geojson) into an empty database, and again
   unchanged; SQLite, and PostgreSQL when --postgres names a server database to use;
2. the search rules (domain.places.find_places) on the whole district for 20 names typed the
   ways residents type them: first search in a process (pinyin keys computed) and after;
3. a shared location matched against 2,604 grids (domain.places.locate);
4. the picker and the search through the loopback fake Bot API on python-telegram-bot and
   aiogram: a resident types a village and registers, another pages through 13 towns and the 51
   villages of a town; each step's time from the update to the bot's answer, the calls made,
   calls refused, and the most place buttons on one keyboard;
5. drawing the notice-board posters (PDF), per page.

Nothing here asserts a time; see bench/README.md for the figures measured on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from domain.i18n import translator
from domain.places import descendants, find_places, keys_of, locate
from domain.posters import grid_posters, posters_pdf
from storage.database import Database
from storage.models import Unit
from storage.roster import import_roster
from tests.big_district import grid_centre, write_district
from tests.scratch_postgres import recreate_database

TYPED = [
    "毛家冲村", "毛家冲", "maojiachong", "maojiachongcun", "Mao Jia Chong", "MAOJIACHONG",
    "毛家衝", "毛家充", "ｍａｏｊｉａｃｈｏｎｇ", "Maojiachong Village", "凤鸣", "fm",
    "changling", "zhongyang", "长岭", "lijiawan", "李家湾 ", "毛家冲第二网格", "mjc", "石桥村",
]  # fmt: skip


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await action()
    return time.perf_counter() - start, result


async def bench_import(url: str, roster: Path, label: str) -> None:
    if url.startswith("postgresql"):
        await recreate_database(url)
    db = Database(url)
    await db.upgrade()
    first, summary = await timed(lambda: import_roster(db, roster))
    again, _ = await timed(lambda: import_roster(db, roster))
    print(f"  {label}: first import {first:.2f} s ({summary}); again unchanged {again:.2f} s")
    await db.dispose()


def load_units(roster: Path) -> list[Unit]:
    import csv

    with (roster / "units.csv").open(encoding="utf-8") as handle:
        return [
            Unit(
                code=r["code"],
                level=r["level"],
                parent_code=r["parent"] or None,
                name=r["name"],
                name_en=r["name_en"],
                lat=float(r["lat"]) if r.get("lat") else None,
                lon=float(r["lon"]) if r.get("lon") else None,
            )
            for r in csv.DictReader(handle)
        ]


def bench_search(units: list[Unit]) -> None:
    scope = descendants(units, "BD")
    keys_of.cache_clear()
    start = time.perf_counter()
    find_places(scope, TYPED[0])
    cold = time.perf_counter() - start
    times = []
    for _ in range(5):
        for typed in TYPED:
            start = time.perf_counter()
            find_places(scope, typed)
            times.append(time.perf_counter() - start)
    times.sort()
    print(
        f"  first search in a process (keys for {len(scope)} places): {ms(cold)}; then over "
        f"{len(times)} searches: median {ms(statistics.median(times))}, "
        f"p95 {ms(times[int(len(times) * 0.95)])}, max {ms(times[-1])}"
    )
    for typed in TYPED:
        found = find_places(scope, typed)
        shown = ", ".join(f.unit.name for f in found[:3]) + (" …" if len(found) > 3 else "")
        print(f"    {typed!r:24} → {len(found)}: {shown}")


def bench_locate(roster: Path, units: list[Unit]) -> None:
    outlines = {
        f["properties"]["code"]: json.dumps(f["geometry"])
        for f in json.loads((roster / "grids.geojson").read_text(encoding="utf-8"))["features"]
    }
    grids = [u for u in units if u.level == "grid"]
    for grid in grids:
        grid.outline = outlines.get(grid.code)
    cases = {
        "inside an outline (town 1)": grid_centre(0, 30, 2),
        "near a point (town 9)": (grid_centre(8, 40, 1)[0] + 0.002, grid_centre(8, 40, 1)[1]),
        "far from every grid": (22.54, 114.05),
    }
    locate(grids, 0.0, 0.0, 2000)  # outlines parsed once per process
    for label, (lat, lon) in cases.items():
        times = []
        for _ in range(20):
            start = time.perf_counter()
            found = locate(grids, lat, lon, 2000)
            times.append(time.perf_counter() - start)
        name = found.unit.code if found else "none"
        print(f"  {label}: {name}, median {ms(statistics.median(times))}")


async def bench_bot(framework: str, roster: Path, workdir: Path) -> None:
    # Imported before the bot starts: importing a framework is not part of a step.
    import bot.channels.telegram_aiogram
    import bot.channels.telegram_ptb  # noqa: F401
    from tests.fake_bot_api import RecordedCall
    from tests.test_e2e_telegram import Start, User, bot_running

    steps: list[tuple[str, float]] = []

    async def step(label: str, action: Callable[[], Awaitable[RecordedCall]]) -> None:
        took, _ = await timed(action)
        steps.append((label, took))

    async with bot_running(workdir, Start(framework, "workday-1000"), roster=roster) as running:
        fake = running.fake
        finder, pager = User(fake, 960001), User(fake, 960002)
        await step("/start", lambda: finder.say("/start", "Do you agree?"))
        await step("agree → towns", lambda: finder.tap("yes", "Choose the street or town"))
        await step("type “mjc”", lambda: finder.say("mjc", "places match"))
        await step("type “maojiachong”", lambda: finder.say("maojiachong", "Is this the place?"))
        await step("tap the village", lambda: finder.tap("BD-T01-V001", "choose your grid"))
        await step("tap a grid", lambda: finder.tap("BD-T01-V001-G2", "You are registered in"))
        await pager.say("/start", "Do you agree?")
        await pager.tap("yes", "Choose the street or town")
        await step(
            "page ▶ (edit)", lambda: pager.tap("next", "Page 2 of 2", method="editMessageText")
        )
        await pager.tap("prev", "Page 1 of 2", method="editMessageText")
        await step("tap a town (51 villages)", lambda: pager.tap("BD-T01", "Page 1 of 5"))
        for page in range(2, 6):
            await step(
                f"page {page} of 5",
                lambda page=page: pager.tap("next", f"Page {page} of 5", method="editMessageText"),  # type: ignore[misc]
            )
    calls = [c for c in fake.calls if c.method != "getUpdates"]
    refused = [c for c in calls if not c.ok]
    most = 0
    for call in calls:
        markup = call.params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        if markup and "inline_keyboard" in markup:
            places = [
                b
                for row in markup["inline_keyboard"]
                for b in row
                if ":BD-" in b.get("callback_data", "")
            ]
            most = max(most, len(places))
    print(
        f"  {framework}: {len(calls)} calls, {len(refused)} refused, at most {most} place "
        "buttons on a keyboard"
    )
    for label, took in steps:
        print(f"    {label:28} {ms(took)}")


async def bench_posters(url: str, pages: int) -> None:
    db = Database(url)
    async with db.session() as session:
        posters = await grid_posters(session, translator("zh_CN"), "BD-T01", "huiyin_bot")
    await db.dispose()
    posters = posters[:pages]
    start = time.perf_counter()
    pdf = await asyncio.to_thread(posters_pdf, posters)
    took = time.perf_counter() - start
    print(
        f"  {len(posters)} pages: {took:.2f} s ({ms(took / len(posters))} a page), "
        f"{len(pdf) // 1024} KB ({len(pdf) // len(posters) // 1024} KB a page)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default="",
        help="a PostgreSQL URL to import into; the database is dropped and made anew",
    )
    parser.add_argument("--pages", type=int, default=20, help="poster pages to draw")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        roster = work / "roster"
        generated = write_district(roster, geometry=True)
        print(f"District: {generated}")
        print("1. Import")
        url = f"sqlite+aiosqlite:///{work}/bench.db"
        await bench_import(url, roster, "SQLite")
        if args.postgres:
            await bench_import(args.postgres, roster, "PostgreSQL")
        units = load_units(roster)
        print("2. Search on the whole district")
        bench_search(units)
        print("3. A shared location among 2,604 grids")
        bench_locate(roster, units)
        print("4. Picker and search through the loopback fake Bot API")
        for framework in ("ptb", "aiogram"):
            bot_dir = work / framework
            bot_dir.mkdir()
            await bench_bot(framework, roster, bot_dir)
        print("5. Posters")
        await bench_posters(url, args.pages)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
