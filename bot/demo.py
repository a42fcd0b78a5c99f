"""`huiyin demo`: the sample district in a fresh temporary database, and a scripted scenario
(bot/demo_scenario.toml) played through the console channel and printed as a transcript."""

from __future__ import annotations

import sys
import tempfile
import tomllib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from bot.channels.console import ChatDriver, Transcript
from domain.calendar import ChineseWorkdays
from domain.clock import Clock, ManualClock, SystemClock
from domain.deadlines import DEFAULT_POLICY
from schedules.sweep import sweep
from storage.database import Database
from storage.roster import import_roster, sample_district_dir

SCENARIO = Path(__file__).with_name("demo_scenario.toml")
ZONE = ZoneInfo("Asia/Shanghai")


def demo_start(now: datetime) -> datetime:
    """10:00 on the next working day (today's, if it is one and 10:00 is still ahead): the
    scenario then runs in office hours, whenever the demo is played."""
    day = now.astimezone(ZONE).date()
    if now.astimezone(ZONE).time() >= time(10):
        day += timedelta(days=1)
    workdays = ChineseWorkdays()
    while not workdays.is_workday(day):
        day += timedelta(days=1)
    return datetime.combine(day, time(10), ZONE).astimezone(UTC)


def localised(value: Any, language: str) -> str:
    return str(value[language] if isinstance(value, dict) else value)


async def run_demo(
    language: str = "zh",
    out: TextIO = sys.stdout,
    roster_dir: Path | None = None,
    *,
    clock: Clock | None = None,
) -> ChatDriver:
    """Play the scenario. `clock` says when it is played (the system's time unless a test
    passes its own); the scenario then runs on a clock of its own from `demo_start`."""
    scenario = tomllib.loads(SCENARIO.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="huiyin-demo-") as folder:
        db = Database(f"sqlite+aiosqlite:///{folder}/demo.db")
        try:
            await db.upgrade()
            summary = await import_roster(db, roster_dir or sample_district_dir())
            print(f"Sample district loaded: {summary}", file=out)
            # The demo's own clock, so that "an hour later" takes no hour.
            played = ManualClock(demo_start((clock or SystemClock()).now()))
            driver = ChatDriver(db, played, ZONE)
            telegram_language = "en" if language == "en" else "zh-hans"
            actors: dict[str, int] = {}
            for key, actor in scenario["actors"].items():
                actors[key] = int(actor["id"])
                driver.names[actor["id"]] = localised(actor["name"], language)
                driver.languages[actor["id"]] = telegram_language
            Transcript(driver, out)
            for step in scenario["steps"]:
                await play(driver, actors[step["who"]], step, language, out)
            print(f"\n{localised(scenario['closing'], language)}", file=out)
            return driver
        finally:
            await db.dispose()


async def play(
    driver: ChatDriver, user: int, step: dict[str, Any], language: str, out: TextIO
) -> None:
    if "note" in step:
        print(f"\n\n=== {localised(step['note'], language)} ===", file=out)
    if "say" in step:
        await driver.say(user, localised(step["say"], language))
    elif "tap" in step:
        await driver.tap(user, value=step["tap"])
    elif "press" in step:
        await driver.press(user, step["press"])
        if driver.last_answer:
            print(f"   ⚠ {driver.last_answer}", file=out)
    elif "advance_minutes" in step:
        assert isinstance(driver.clock, ManualClock)
        driver.clock.advance(timedelta(minutes=int(step["advance_minutes"])))
        await sweep(driver.db, driver.clock, driver.zone, DEFAULT_POLICY)  # the worker's tick
        await driver.outbox.deliver_due()
