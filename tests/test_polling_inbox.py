"""Polling through the inbox, on both frameworks: an update is kept in the inbox before the next
getUpdates confirms it to Telegram, and handled from there, so a bot stopped hard between
fetching and handling (the stand-in for kill -9: its task is cancelled, nothing runs on) handles
the update after a restart, exactly once.

Two places to be stopped: before the update is in the inbox (Telegram must still hold it, and
sends it again), and after it is in the inbox and confirmed but before it was handled (the
restart finds it there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import func
from sqlmodel import col, select

import bot.app
import bot.channels.telegram_aiogram
import bot.channels.telegram_ptb
from bot.app import run_bot
from bot.dispatcher import Dispatcher
from bot.settings import load_settings
from domain.clock import ManualClock
from domain.messages import HandleResult, Inbound
from storage.database import Database
from storage.models import InboxUpdate
from storage.roster import import_roster, sample_district_dir
from tests.fake_bot_api import FakeBotApi
from tests.test_webhook import STARTED_AT

RESIDENT = 940000001
FRAMEWORKS = ("ptb", "aiogram")
# Both frameworks are imported above, not on the bot's first start: importing aiogram takes
# seconds, which would otherwise count against the first test's wait for the bot.
assert bot.channels.telegram_aiogram and bot.channels.telegram_ptb


@asynccontextmanager
async def district(tmp_path: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path}/polling.db"
    db = Database(url)
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    await db.dispose()
    yield url


def start(fake: FakeBotApi, url: str, framework: str) -> tuple[asyncio.Task[None], asyncio.Event]:
    settings = load_settings(
        _env_file=None,
        bot_token=fake.token,
        telegram_api_url=fake.base_url,
        database_url=url,
        framework=framework,
        outbox_interval_seconds=0.5,
        send_rate_per_chat=100.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop, clock=ManualClock(STARTED_AT)))
    return task, stop


async def crash(task: asyncio.Task[None]) -> None:
    """Stop the bot hard: no clean stop, nothing handled on the way out."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)


async def inbox(url: str) -> list[tuple[int, bool]]:
    db = Database(url)
    try:
        async with db.session() as session:
            rows = await session.exec(select(InboxUpdate).order_by(col(InboxUpdate.update_id)))
            return [(row.update_id, row.processed_at is not None) for row in rows.all()]
    finally:
        await db.dispose()


async def confirmed(fake: FakeBotApi, update_id: int) -> None:
    """Wait until a getUpdates has confirmed `update_id` (the fake then forgets it, and the
    long poll that confirmed it tells `_poll_state` when it starts waiting)."""
    async with asyncio.timeout(10), fake._poll_state:
        await fake._poll_state.wait_for(
            lambda: all(u["update_id"] != update_id for u in fake.pending_updates)
        )


def consents(fake: FakeBotApi) -> list[Any]:
    return [
        c
        for c in fake.calls_of("sendMessage")
        if c.params.get("chat_id") == RESIDENT and "Do you agree?" in c.params["text"]
    ]


async def restart_and_expect_one_reply(fake: FakeBotApi, url: str, framework: str) -> None:
    task, stop = start(fake, url, framework)
    try:
        await fake.wait_for(
            "sendMessage", lambda c: "Do you agree?" in c.params.get("text", ""), timeout=20
        )
        await fake.wait_until_polling(timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert len(consents(fake)) == 1
    assert fake.pending_updates == []
    assert [handled for _, handled in await inbox(url)] == [True]


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_stopped_after_keeping_before_handling_the_restart_handles_it_once(
    tmp_path: Path, framework: str
) -> None:
    entered = asyncio.Event()

    async def stuck(self: Dispatcher, inbound: Inbound) -> HandleResult:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with district(tmp_path) as url, FakeBotApi() as fake:
        with mock.patch.object(Dispatcher, "handle", stuck):
            task, _stop = start(fake, url, framework)
            await fake.wait_until_polling(timeout=30)
            update_id = fake.push_text(RESIDENT, "/start", language_code="en")
            await asyncio.wait_for(entered.wait(), 10)
            await confirmed(fake, update_id)  # Telegram will not send it again
            assert await inbox(url) == [(update_id, False)]
            await crash(task)
        assert consents(fake) == []
        await restart_and_expect_one_reply(fake, url, framework)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_stopped_before_keeping_telegram_still_holds_the_update(
    tmp_path: Path, framework: str
) -> None:
    entered = asyncio.Event()
    original: Callable[..., Awaitable[list[int]]] = bot.app.take_in_all

    async def stuck(*args: Any, **kwargs: Any) -> list[int]:
        entered.set()
        await asyncio.Event().wait()
        return await original(*args, **kwargs)

    async with district(tmp_path) as url, FakeBotApi() as fake:
        with mock.patch.object(bot.app, "take_in_all", stuck):
            task, _stop = start(fake, url, framework)
            await fake.wait_until_polling(timeout=30)
            update_id = fake.push_text(RESIDENT, "/start", language_code="en")
            await asyncio.wait_for(entered.wait(), 10)
            await crash(task)
        # Not confirmed: nothing asked for an offset past it while it was not kept.
        assert [u["update_id"] for u in fake.pending_updates] == [update_id]
        assert await inbox(url) == []
        await restart_and_expect_one_reply(fake, url, framework)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_batch_that_cannot_be_kept_is_fetched_again(tmp_path: Path, framework: str) -> None:
    """The database refuses the first write: the update stays with Telegram and the next poll
    fetches it again; it is then kept, handled and confirmed."""
    original: Callable[..., Awaitable[list[int]]] = bot.app.take_in_all
    failures = 0

    async def flaky(*args: Any, **kwargs: Any) -> list[int]:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise OSError("database unreachable")
        return await original(*args, **kwargs)

    async with district(tmp_path) as url, FakeBotApi() as fake:
        fake.push_text(RESIDENT, "/start", language_code="en")
        with mock.patch.object(bot.app, "take_in_all", flaky):
            await restart_and_expect_one_reply(fake, url, framework)
        assert failures == 1
        offsets = [c.params.get("offset") or 0 for c in fake.calls_of("getUpdates")]
        assert offsets[:2] == [0, 0]  # the first batch was asked for again


async def test_an_update_the_framework_cannot_read_does_not_stop_polling(
    tmp_path: Path,
) -> None:
    """A malformed update is kept and confirmed like any other; the next one is handled."""
    async with district(tmp_path) as url, FakeBotApi() as fake:
        fake.push_update({"message": {"message_id": "x", "chat": "nonsense"}})
        fake.push_text(RESIDENT, "/start", language_code="en")
        await restart_and_expect_one_reply_after_junk(fake, url)


async def restart_and_expect_one_reply_after_junk(fake: FakeBotApi, url: str) -> None:
    task, stop = start(fake, url, "ptb")
    try:
        await fake.wait_for(
            "sendMessage", lambda c: "Do you agree?" in c.params.get("text", ""), timeout=20
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert len(consents(fake)) == 1 and fake.pending_updates == []
    db = Database(url)
    async with db.session() as session:
        pending = await session.exec(
            select(func.count())
            .select_from(InboxUpdate)
            .where(col(InboxUpdate.processed_at).is_(None))
        )
        assert pending.one() == 0
    await db.dispose()


async def test_both_frameworks_poll_the_inbox_alike(tmp_path: Path) -> None:
    """The same getUpdates calls with the same parameters from either framework: deleteWebhook
    first, offsets moving past what was kept, and a last call that only confirms."""
    polls: dict[str, list[dict[str, Any]]] = {}
    for framework in FRAMEWORKS:
        (tmp_path / framework).mkdir()
        async with district(tmp_path / framework) as url, FakeBotApi() as fake:
            fake.push_text(RESIDENT, "/start", language_code="en")
            await restart_and_expect_one_reply(fake, url, framework)
            methods = [call.method for call in fake.calls]
            assert methods.index("deleteWebhook") < methods.index("getUpdates")
            polls[framework] = [call.params for call in fake.calls_of("getUpdates")]
    for params in polls.values():
        assert [p.get("offset", 0) for p in params[:2]] == [0, 2]
        assert params[-1]["timeout"] == 0  # the last poll only confirms
        assert all(p["allowed_updates"] == ["message", "callback_query"] for p in params)
    assert polls["ptb"][0] == polls["aiogram"][0] and polls["ptb"][-1] == polls["aiogram"][-1]
