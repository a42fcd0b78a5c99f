"""End to end: the real python-telegram-bot and aiogram stacks poll a loopback fake of the Bot
API.

Each test feeds real updates (JSON as Telegram sends it), waits for the bot's calls (never on a
timer), and checks both what users see and the rows in the database.

The bot runs on an injected clock standing still at one of a few moments, never on the real
time: each test runs on both frameworks at each moment of `MATRIX` (a working morning after
the digest time, the same evening in quiet hours, a Saturday), so the outcome does not depend
on the day and hour the suite is run, and what the bot does at each of those moments is
checked — the worker's runs at start (the sweep, the morning digest, export jobs) included,
which the tests wait for before they begin. (The clock stands still, so the people in a test
have always just written: quiet hours hold nothing back from them here.)
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

# Both adapters are imported when the tests are collected, not when the first bot starts: on a
# busy machine a cold import of aiogram takes longer than `bot_running`'s start-up wait. Every
# end-to-end module imports this one, so they all get the warm import.
import bot.app
import bot.channels.telegram_aiogram
import bot.channels.telegram_ptb
from bot.app import run_bot
from bot.settings import load_settings
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.i18n import translator
from schedules.sweep import sweep
from schedules.worker import TickJob, Worker
from storage.database import Database
from storage.models import OutboxMessage, Request, RequestEvent
from storage.roster import import_roster, sample_district_dir
from tests.fake_bot_api import FakeBotApi, RecordedCall, StoredMessage

WANG = 700000001  # grid member, Tianhe Grid 1 (repair)
ZHANG = 700000003  # grid member, Tianhe Grid 2
HUANG = 700000008  # grid member, Maojiachong Grid 2 (elder care, family link)
RESIDENT = 910000001
SON = 910000002

ZONE = ZoneInfo("Asia/Shanghai")
FRAMEWORKS = ("ptb", "aiogram")
# When the bot starts (checked against chinese_calendar: 2 December 2026 is an ordinary working
# Wednesday, 5 December a Saturday and a rest day).
MOMENTS = {
    # after the digest time (08:30) on a working day: the worker's start-up digest goes out
    "workday-0900": datetime(2026, 12, 2, 9, 0, tzinfo=ZONE),
    # the same day in quiet hours (21:00-08:00): no digest, residents' notices may wait
    "workday-2300": datetime(2026, 12, 2, 23, 0, tzinfo=ZONE),
    # a rest day: no digest; "working day" deadlines count from Monday
    "saturday-1000": datetime(2026, 12, 5, 10, 0, tzinfo=ZONE),
    # an ordinary working morning, for tests whose subject does not change with the hour
    "workday-1000": datetime(2026, 12, 2, 10, 0, tzinfo=ZONE),
}
# The moments every end-to-end test runs at, unless it names its own.
MATRIX = ("workday-0900", "workday-2300", "saturday-1000")


@dataclass(frozen=True)
class Start:
    """How a test starts the bot: which framework, and the moment its clock stands at."""

    framework: str
    moment: str  # a key of MOMENTS

    @property
    def at(self) -> datetime:
        return MOMENTS[self.moment].astimezone(UTC)


def starts(*moments: str) -> list[Any]:
    """Parameters for `start` (or the `running` fixture): each framework at each of `moments`
    (by default the `MATRIX`), with readable ids such as `ptb-workday-0900`."""
    return [
        pytest.param(Start(framework, moment), id=f"{framework}-{moment}")
        for framework in FRAMEWORKS
        for moment in moments or MATRIX
    ]


@dataclass
class Running:
    fake: FakeBotApi
    db: Database
    clock: ManualClock
    stop_event: asyncio.Event
    bot: asyncio.Task[None] | None = None
    # Users a test made block the bot: Telegram's refusals for them are expected.
    blocked: set[int] = dataclasses.field(default_factory=set)

    def block(self, user_id: int) -> None:
        self.blocked.add(user_id)
        self.fake.block(user_id)

    async def stop(self) -> None:
        """Stop the bot gracefully: a delivery under way finishes and is recorded first.

        The fake sees a message before the sender has written "sent" on its row, so a test
        that reads the outbox stops the bot first rather than racing the sender.
        """
        assert self.bot is not None
        self.stop_event.set()
        await asyncio.wait_for(self.bot, 30)


Prepare = Callable[[Running], Awaitable[object]]


class StartUp:
    """Watches the worker `run_bot` builds (through `bot.app.build_worker`), changing nothing it
    does: `settled()` waits until each of its jobs (the sweep, the digest, export jobs) has
    finished its run at start and what they wrote to the outbox has been delivered."""

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self._first_runs_left: set[str] = set()
        self._first_runs_done = asyncio.Event()
        self._build = bot.app.build_worker

    def build_worker(self, *args: Any, **kwargs: Any) -> Worker:
        worker = self._build(*args, **kwargs)
        worker.ticks = [
            dataclasses.replace(t, job=self._watch(t.name, t.job)) for t in worker.ticks
        ]
        worker.dailies = [
            dataclasses.replace(d, job=self._watch(d.name, d.job)) for d in worker.dailies
        ]
        self._first_runs_left = {job.name for job in [*worker.ticks, *worker.dailies]}
        self.worker = worker
        return worker

    def _watch(self, name: str, job: TickJob) -> TickJob:
        async def run() -> object:
            try:
                return await job()
            finally:
                self._first_runs_left.discard(name)
                if not self._first_runs_left:
                    self._first_runs_done.set()

        return run

    async def settled(self) -> None:
        await asyncio.wait_for(self._first_runs_done.wait(), 30)
        await self.deliver()

    async def deliver(self) -> None:
        """Deliver what is due now, as the worker would at its next wake-up (waiting for a
        delivery under way first)."""
        assert self.worker is not None
        await asyncio.wait_for(self.worker.outbox.deliver_due(), 30)


@asynccontextmanager
async def bot_running(
    tmp_path: Path, start: Start, prepare: Prepare | None = None, roster: Path | None = None
) -> AsyncIterator[Running]:
    """The real bot (`run_bot`, with its worker) polling the fake Bot API, on a database with
    the sample district (or the roster in `roster`), its clock standing at `start.at`.

    `prepare` fills the database (or tells the fake about chats) before the bot starts, so the
    worker's runs at start (the sweep, the digest) see it. The test begins once those runs are
    over and what they sent has gone out, so that what the bot does at start never races the
    test. On leaving, what is due is delivered, the bot is stopped, and it must have sent
    nothing that Telegram refused.
    """
    url = f"sqlite+aiosqlite:///{tmp_path}/e2e.db"
    db = Database(url)
    await db.upgrade()
    await import_roster(db, roster or sample_district_dir())
    async with FakeBotApi() as fake:
        api_url = await fake.start() if not getattr(fake, "base_url", None) else fake.base_url
        settings = load_settings(
            _env_file=None,
            bot_token=fake.token,
            telegram_api_url=api_url,
            database_url=url,
            framework=start.framework,
            outbox_interval_seconds=0.5,
            send_rate_per_chat=100.0,
        )
        running = Running(fake, db, ManualClock(start.at), asyncio.Event())
        if prepare is not None:
            await prepare(running)
        startup = StartUp()
        try:
            with mock.patch.object(bot.app, "build_worker", startup.build_worker):
                running.bot = asyncio.create_task(
                    run_bot(settings, stop=running.stop_event, clock=running.clock)
                )
                await fake.wait_until_polling()
                await startup.settled()
            yield running
            if not running.bot.done():  # the test did not stop it: what is due goes out first
                await startup.deliver()
        finally:
            running.stop_event.set()
            if running.bot is not None:
                await asyncio.wait_for(running.bot, 30)
            refused = [
                c
                for c in fake.calls
                if not c.ok and c.method != "getUpdates" and chat_of(c) not in running.blocked
            ]
            assert not refused, f"the bot sent what Telegram refuses:\n{fake.dump_calls()}"
    await db.dispose()


@pytest.fixture(params=starts())
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """The bot, running; on each framework at each moment of `MATRIX`, unless a test
    parametrizes it (indirectly) with `starts(...)`."""
    async with bot_running(tmp_path, request.param) as started:
        yield started


def chat_of(call: RecordedCall) -> int | None:
    value = call.params.get("chat_id")
    return int(value) if value is not None else None


@dataclass
class User:
    fake: FakeBotApi
    user_id: int
    language: str = "en"

    async def expect(
        self, fragment: str, *, after: int, method: str = "sendMessage"
    ) -> RecordedCall:
        return await self.fake.wait_for(
            method,
            lambda c: chat_of(c) == self.user_id and fragment in str(c.params.get("text", "")),
            after=after,
        )

    async def say(self, text: str, expect: str) -> RecordedCall:
        mark = len(self.fake.calls)
        self.fake.push_text(self.user_id, text, language_code=self.language)
        return await self.expect(expect, after=mark)

    def button(self, value: str) -> tuple[StoredMessage, str]:
        for message in reversed(self.fake.messages(self.user_id)):
            for row in (message.inline_markup or {}).get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data", "")
                    if data.endswith(f":{value}") or data.startswith(f"{value}:"):
                        return message, data
        raise AssertionError(f"no button {value!r} in chat {self.user_id}")

    async def tap(
        self, value: str, expect: str | None = None, method: str = "sendMessage"
    ) -> RecordedCall:
        message, data = self.button(value)
        return await self.press(message.message_id, data, expect, method)

    async def press(
        self, message_id: int, data: str, expect: str | None = None, method: str = "sendMessage"
    ) -> RecordedCall:
        mark = len(self.fake.calls)
        callback_id = self.fake.push_callback(
            self.user_id, message_id, data, language_code=self.language
        )
        answer = await self.fake.wait_for(
            "answerCallbackQuery",
            lambda c: c.params.get("callback_query_id") == callback_id,
            after=mark,
        )
        if expect is None:
            return answer
        return await self.expect(expect, after=mark, method=method)


async def events_of(db: Database, request_id: int) -> list[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(RequestEvent.action)
            .where(RequestEvent.request_id == request_id)
            .order_by(col(RequestEvent.id))
        )
        return list(rows.all())


async def test_resident_report_reaches_grid_member_and_comes_back_resolved(
    running: Running,
) -> None:
    fake, db = running.fake, running.db
    wang = User(fake, WANG)
    resident = User(fake, RESIDENT)
    await wang.say("/start", "You are registered as grid member")

    await resident.say("/start", "Do you agree?")
    await resident.tap("yes", "Choose the street or town")
    await resident.tap("QS-JB", "choose your community")
    await resident.tap("QS-JB-TH", "choose your grid")
    await resident.tap("QS-JB-TH-01", "You are registered in")
    await resident.tap("report", "What kind of help")
    await resident.tap("living", "Which of these")
    await resident.tap("repair", "Please describe")
    await resident.say("The kitchen tap leaks & drips <badly>", "Please check your request")
    mark = len(fake.calls)
    await resident.tap("submit", "Your reference number is <b>HY000001</b>")

    card = await wang.expect("New task", after=mark)
    assert "The kitchen tap leaks &amp; drips &lt;badly&gt;" in card.params["text"]
    mark = len(fake.calls)
    await wang.tap("t:accept", "Being handled", method="editMessageText")
    await resident.expect("has been accepted by 王建华", after=mark)

    await wang.tap("t:resolve", "what was done?")
    mark = len(fake.calls)
    await wang.say("Replaced the washer", "is marked resolved")
    await resident.expect("Result: Replaced the washer", after=mark)

    assert await events_of(db, 1) == ["create", "route", "accept", "resolve"]
    await running.stop()
    async with db.session() as session:
        request = await session.get(Request, 1)
        assert request is not None and request.status == "resolved"
        assert request.result_note == "Replaced the washer"
        unsent = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.status != "sent"))
        ).all()
        assert unsent == []
    # The card was edited in place, not sent again.
    [card_message] = [m for m in fake.messages(WANG) if "HY000001" in m.text and m.edited]
    assert "Resolved" in card_message.text


async def test_forged_task_button_is_refused_and_changes_nothing(running: Running) -> None:
    fake, db = running.fake, running.db
    wang, zhang, resident = User(fake, WANG), User(fake, ZHANG), User(fake, RESIDENT)
    await wang.say("/start", "You are registered as")
    greeting = await zhang.say("/start", "You are registered as")
    await resident.say("/start g_QS-JB-TH-01", "Do you agree?")
    await resident.tap("yes", "You are registered in")
    await resident.tap("report", "What kind")
    await resident.tap("living", "Which of these")
    await resident.tap("errand", "Please describe")
    await resident.say("Please collect my pension papers", "Please check")
    submitted = len(fake.calls)
    await resident.tap("submit", "HY000001")
    await wang.expect("New task", after=submitted)

    message_id = greeting.result_or_error["message_id"]
    answer = await zhang.press(message_id, "t:accept:1")
    assert "not assigned to you" in answer.params.get("text", "")
    assert answer.params.get("show_alert") in (True, "true", "True")
    answer = await resident.press(fake.messages(RESIDENT)[-1].message_id, "t:accept:1")
    assert "not assigned to you" in answer.params.get("text", "")
    assert await events_of(db, 1) == ["create", "route"]


async def test_family_member_far_away_reports_for_a_parent(running: Running) -> None:
    fake, db = running.fake, running.db
    huang = User(fake, HUANG, language="zh-hans")
    son = User(fake, SON, language="zh-hans")
    zh = translator("zh_CN")
    await huang.say("/start", "黄丽")
    await son.say("/start g_QS-FM-MJ-02", "回音")
    await son.tap("yes", "毛家冲村第二网格")
    await son.tap("family", zh._("What is your family member's name?"))
    await son.say("陈淑芬", zh._("How is {name} related to you?", name="陈淑芬"))
    await son.tap("mother", zh._("Choose the street or town where she lives:"))
    await son.tap(
        "QS-FM",
        zh._("{place}: choose the community or village where she lives:", place="凤鸣镇"),
    )
    await son.tap("QS-FM-MJ", zh._("{place}: choose the grid where she lives:", place="毛家冲村"))
    await son.tap(
        "QS-FM-MJ-02",
        zh._("A phone number for {name}, so the grid member can call? (optional)", name="陈淑芬"),
    )
    await son.say("13912345678", "陈淑芬")
    await son.tap("told", zh._("What kind of help is needed?"))
    await son.tap("emotional", zh._("Which of these is closest?"))
    await son.tap("companionship", "</b>")
    await son.say("我妈一个人在家，想请人每周上门看看她。", "陈淑芬")
    mark = len(fake.calls)
    await son.tap("submit", "HY000001")

    card = await huang.expect("HY000001", after=mark)
    assert "陈淑芬" in card.params["text"] and "13912345678" in card.params["text"]
    mark = len(fake.calls)
    await huang.tap("t:phone")
    contact = await fake.wait_for("sendContact", lambda c: chat_of(c) == HUANG, after=mark)
    assert contact.params["phone_number"] == "13912345678"
    mark = len(fake.calls)
    await huang.tap("t:accept")
    await son.expect("HY000001", after=mark)

    async with db.session() as session:
        request = await session.get(Request, 1)
        assert request is not None
        assert request.grid_code == "QS-FM-MJ-02" and request.status == "in_progress"
    assert await events_of(db, 1) == ["create", "route", "accept"]

    # A personal link for his mother's own Telegram names the bot as getMe told it.
    mark = len(fake.calls)
    await son.tap("bl")
    link = await son.expect("https://t.me/huiyin_test_bot?start=b_", after=mark)
    assert link.ok and "陈淑芬" in str(fake.messages(SON)[-2].text)


async def test_the_command_menu_is_set_in_both_languages(running: Running) -> None:
    """At start the bot tells Telegram its command list: Chinese for everyone, English for
    English-speaking users; and reads its own username (getMe) for t.me links."""
    menus = {language: commands for (_scope, language), commands in running.fake.commands.items()}
    assert [c["command"] for c in menus[""]] == [
        "start",
        "my",
        "volunteer",
        "help",
        "mydata",
        "forget",
        "cancel",
    ]
    assert menus[""][0]["description"] == "打开主菜单"
    assert menus["en"][0]["description"] == "Open the main menu"
    assert any(c.method == "getMe" for c in running.fake.calls)


@pytest.mark.parametrize("running", starts("workday-1000"), indirect=True)
async def test_pressed_keyboards_go_and_a_double_tap_edits_nothing(running: Running) -> None:
    """Issue 16 on a real framework: the confirm message and the verdict questions show the
    choice instead of their buttons (editMessageText without a keyboard); a double tap on a
    task card sends no second edit (Telegram would refuse it as "message is not modified",
    which `bot_running` checks); words typed instead of a tap are kept and asked again."""
    fake, db = running.fake, running.db
    wang, resident = User(fake, WANG), User(fake, RESIDENT)
    await wang.say("/start", "You are registered as")
    await resident.say("/start g_QS-JB-TH-01", "Do you agree?")
    await resident.tap("yes", "You are registered in")
    await resident.tap("report", "What kind")
    await resident.tap("living", "Which of these")
    await resident.tap("repair", "Please describe")
    await resident.say("The kitchen tap leaks", "Please check")
    confirm, _ = resident.button("submit")
    submitted = len(fake.calls)
    await resident.tap("submit", "HY000001")
    await resident.expect("✅ Submitted", after=0, method="editMessageText")
    shown = fake.message(RESIDENT, confirm.message_id)
    assert shown.inline_markup is None and shown.text.endswith("✅ Submitted")

    # After the submit: the welcome ("New tasks will arrive here") must not count as the card.
    card = await wang.expect("New task", after=submitted)
    card_id = card.result_or_error["message_id"]
    _, accept = wang.button("t:accept")
    await wang.press(card_id, accept, "Being handled", method="editMessageText")
    mark = len(fake.calls)
    answer = await wang.press(card_id, accept)  # the second tap of a double tap
    assert "already moved on" in answer.params.get("text", "")
    await wang.tap("t:resolve", "what was done?")
    await wang.say("Replaced the washer", "is marked resolved")
    edits = [c for c in fake.calls[mark:] if c.method == "editMessageText"]
    assert len(edits) == 1 and "Resolved" in edits[0].params["text"]  # the resolve, only

    # An hour later the sweep asks; words typed instead of a tap are kept.
    running.clock.advance(timedelta(hours=2))
    await sweep(db, running.clock, ZONE, DEFAULT_POLICY)
    await resident.expect("Is it solved?", after=mark)
    await resident.say("Still drips a little", "One more tap")
    question, data = resident.button("rv:s:1")
    assert data == "rv:s:1:y"
    await resident.press(question.message_id, "rv:s:1:n", "How satisfied")
    shown = fake.message(RESIDENT, question.message_id)
    assert shown.inline_markup is None and shown.text.endswith("❌ Not solved")
    how, _ = resident.button("rv:f:1:n")
    await resident.press(how.message_id, "rv:f:1:n:u", "reopened")
    assert fake.message(RESIDENT, how.message_id).inline_markup is None
    async with db.session() as session:
        request = await session.get(Request, 1)
        assert request is not None
        assert (request.status, request.verdict_comment) == ("assigned", "Still drips a little")
