"""The flood of issue 10: one resident submits 200 needs in about 34 s, nobody accepts them, and
they climb the ladder. How many messages reach the staff, before and after the flood defences.

    .venv/bin/python bench/flood.py [--needs 200] [--seconds 34] [--days 7] [--postgres URL]

It replays the flood through the real dispatcher (the conversations, the outbox, the deadline
sweep) on the sample district, on an injected clock starting at 10:00 on a Monday (Shanghai):
the resident of Tianhe Grid 1 sends each need the way a script driving the chat would (menu,
kind, category, text, submit: five updates a need, 1,000 updates in `--seconds` seconds), then
the sweep runs every 30 minutes for `--days` days while nobody accepts anything, the outbox
delivered after every update and every tick into an in-memory channel. Three configurations:

- before: no limits, a task card per need and per escalation (what the issue measured);
- summary only: one summary card per burst, no per-person limits;
- after: the settings' defaults (HUIYIN_LIMIT_SUBMISSIONS_PER_HOUR=5,
  HUIYIN_LIMIT_UPDATES_PER_MINUTE=30, HUIYIN_BURST_WINDOW_MINUTES=30).

It prints, per configuration, the needs registered, the updates not taken, and the messages
sent to staff (new messages, and edits of cards in place) during the flood and during the
escalations, with task cards (a card of its own, or a summary card) counted apart from the other
messages (escalation notices, reminders). SQLite in a temporary directory by default; with
--postgres, a database of its own on that server (created and dropped).

This is a measurement, not a test: nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import col, func, select

from bot.channels.console import ChatDriver
from bot.channels.memory import ShownMessage
from bot.settings import load_settings
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.floods import NO_LIMITS, Limits
from handlers.base import Context
from schedules.sweep import sweep
from storage.database import Database
from storage.models import Request, Staff
from storage.roster import import_roster, sample_district_dir
from tests.scratch_postgres import create_scratch_database, drop_database

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE).astimezone(UTC)  # a working Monday
RESIDENT = 990001
TICK = timedelta(minutes=30)


@dataclass
class Tally:
    """Messages shown to staff chats in one phase."""

    cards: int = 0  # new task cards (a card of its own, or a burst's summary card)
    other: int = 0  # every other new message (escalation notices, reminders...)
    edits: int = 0  # cards edited in place
    by_role: Counter[str] = field(default_factory=Counter)

    @property
    def new(self) -> int:
        return self.cards + self.other


@dataclass
class Outcome:
    name: str
    needs: int = 0
    refused_updates: int = 0
    flood: Tally = field(default_factory=Tally)
    escalation: Tally = field(default_factory=Tally)
    resident_messages: int = 0
    seconds: float = 0.0


async def open_database(postgres: str | None, workdir: str) -> tuple[Database, str | None]:
    if postgres is None:
        return Database(f"sqlite+aiosqlite:///{workdir}/flood.db"), None
    url = await create_scratch_database(postgres, "huiyin_flood")
    return Database(url), url


async def tap(driver: ChatDriver, user: int, value: str) -> None:
    """Press the newest button for `value`, as a script would; nothing if there is none."""
    try:
        shown, data = driver.button(user, value=value)
    except LookupError:
        return
    await driver.press(user, data, shown.message_id)


async def run(
    name: str, limits: Limits, needs: int, seconds: float, days: int, postgres: str | None
) -> Outcome:
    outcome = Outcome(name)
    with tempfile.TemporaryDirectory() as workdir:
        db, dropped = await open_database(postgres, workdir)
        try:
            await db.upgrade()
            await import_roster(db, sample_district_dir())
            async with db.transaction() as session:
                await session.exec(
                    update(Staff)
                    .where(col(Staff.telegram_id).is_not(None))
                    .values(opened_at=START - timedelta(days=30))
                )  # type: ignore[call-overload]
                staff = list((await session.exec(select(Staff))).all())
            roles = {s.telegram_id: s.role for s in staff if s.telegram_id is not None}
            clock = ManualClock(START)
            driver = ChatDriver(db, clock, ZONE)
            driver.dispatcher.limits = limits
            flooding = driver.dispatcher._flooding

            async def counted(ctx: Context) -> bool:
                refused = await flooding(ctx)
                outcome.refused_updates += int(refused)
                return refused

            driver.dispatcher._flooding = counted  # type: ignore[method-assign]
            tally = outcome.flood

            def count(shown: ShownMessage, edited: bool) -> None:
                chat = shown.message.chat_id
                if chat == RESIDENT:
                    outcome.resident_messages += 0 if edited else 1
                    return
                if chat not in roles:
                    return
                if edited:
                    tally.edits += 1
                    return
                ref = shown.message.ref or ""
                if ref.startswith(("card:", "burst:")):
                    tally.cards += 1
                else:
                    tally.other += 1
                tally.by_role[roles[chat]] += 1

            for person in roles:
                driver.languages[person] = "zh-hans"
                await driver.say(person, "/start")
            driver.languages[RESIDENT] = "zh-hans"
            await driver.say(RESIDENT, "/start")
            for value in ("yes", "QS-JB", "QS-JB-TH", "QS-JB-TH-01"):
                await tap(driver, RESIDENT, value)
            clock.advance(timedelta(minutes=5))
            driver.sender.on_show = count

            began = time.perf_counter()
            step = timedelta(seconds=seconds / (needs * 5))
            for number in range(needs):
                for action in ("menu", "living", "repair", "text", "submit"):
                    if action == "menu":
                        await driver.press(RESIDENT, "m:report")
                    elif action == "text":
                        await driver.say(RESIDENT, f"第 {number + 1} 项：楼道灯坏了")
                    else:
                        await tap(driver, RESIDENT, action)
                    clock.advance(step)
            async with db.session() as session:
                outcome.needs = (await session.exec(select(func.count(col(Request.id))))).one()

            tally = outcome.escalation
            end = clock.now() + timedelta(days=days)
            while clock.now() < end:
                clock.advance(TICK)
                await sweep(db, clock, ZONE, DEFAULT_POLICY, burst_window=limits.burst_window)
                await driver.outbox.deliver_due()
            outcome.seconds = time.perf_counter() - began
        finally:
            await db.dispose()
            if postgres is not None and dropped is not None:
                await drop_database(dropped)
    return outcome


def show(outcomes: list[Outcome], needs: int, seconds: float, days: int) -> None:
    print(
        f"One resident, {needs} needs ({needs * 5} updates) in {seconds:g} s of injected time, "
        f"then {days} days of sweeps every 30 min with nothing accepted.\n"
    )
    rows = [
        ("needs registered", lambda o: o.needs),
        ("updates not taken (over the minute's limit)", lambda o: o.refused_updates),
        ("flood: task cards to staff", lambda o: o.flood.cards),
        ("flood: other messages to staff", lambda o: o.flood.other),
        ("flood: card edits", lambda o: o.flood.edits),
        ("escalation: task cards to staff", lambda o: o.escalation.cards),
        ("escalation: other messages to staff", lambda o: o.escalation.other),
        ("escalation: card edits", lambda o: o.escalation.edits),
        ("staff messages in all (new)", lambda o: o.flood.new + o.escalation.new),
        (
            "staff messages in all (new + edits)",
            lambda o: o.flood.new + o.flood.edits + o.escalation.new + o.escalation.edits,
        ),
        ("messages to the resident", lambda o: o.resident_messages),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{o.name:>12}" for o in outcomes))
    for label, value in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{value(o):>12}" for o in outcomes))
    print()
    for outcome in outcomes:
        roles = outcome.flood.by_role + outcome.escalation.by_role
        spread = ", ".join(f"{role} {n}" for role, n in sorted(roles.items()))
        print(f"{outcome.name}: new staff messages by role: {spread} ({outcome.seconds:.1f} s)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--needs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=34.0)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--postgres", default=None, help="a server URL (postgresql+asyncpg://…)")
    args = parser.parse_args()
    defaults = load_settings(_env_file=None).flood_limits
    configurations = [
        ("before", NO_LIMITS),
        ("summary only", Limits(burst_window=defaults.burst_window)),
        ("after", defaults),
    ]
    outcomes = [
        await run(name, limits, args.needs, args.seconds, args.days, args.postgres)
        for name, limits in configurations
    ]
    show(outcomes, args.needs, args.seconds, args.days)


if __name__ == "__main__":
    asyncio.run(main())
