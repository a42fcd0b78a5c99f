"""Webhook mode, on both frameworks: the secret is checked on every request, an update that
arrives twice is handled once, updates go through the inbox in order, /healthz reports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.app import Role, run_bot
from bot.channels.webhook import SECRET_HEADER, derive_secret
from bot.settings import load_settings
from domain.clock import ManualClock
from storage.database import Database
from storage.models import InboxUpdate
from storage.roster import import_roster, sample_district_dir
from tests.fake_bot_api import FakeBotApi

PUBLIC_URL = "https://huiyin.example.invalid/telegram/hook"
RESIDENT = 920000001
# Replicas run on an injected clock standing at an ordinary working morning (Wednesday), never
# on the real time, so nothing here changes with the day or hour the tests run.
STARTED_AT = datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Replica:
    fake: FakeBotApi
    url: str
    secret: str
    http: aiohttp.ClientSession

    async def post(self, update: dict[str, Any], secret: str | None = None) -> int:
        headers = {SECRET_HEADER: self.secret if secret is None else secret}
        if secret == "":
            headers = {}
        async with self.http.post(
            f"{self.url}/telegram/hook", json=update, headers=headers
        ) as response:
            return response.status

    async def health(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/healthz") as response:
            assert response.status == 200
            return dict(await response.json())


@asynccontextmanager
async def replica(
    fake: FakeBotApi,
    url: str,
    framework: str,
    role: Role = "all",
    outbox_interval: float = 0.5,
    clock: ManualClock | None = None,
) -> AsyncIterator[Replica]:
    port = free_port()
    settings = load_settings(
        _env_file=None,
        bot_token=fake.token,
        telegram_api_url=fake.base_url,
        database_url=url,
        framework=framework,
        webhook_host="127.0.0.1",
        webhook_port=port,
        outbox_interval_seconds=outbox_interval,
        send_rate_per_chat=100.0,
    )
    stop = asyncio.Event()
    mark = len(fake.calls)
    task = asyncio.create_task(
        run_bot(
            settings,
            stop=stop,
            clock=clock or ManualClock(STARTED_AT),
            role=role,
            webhook_url=PUBLIC_URL,
        )
    )
    # A web replica is ready once it has set the webhook; a worker once it has met the bot.
    await fake.wait_for("getMe" if role == "worker" else "setWebhook", after=mark)
    async with aiohttp.ClientSession() as http:
        try:
            yield Replica(fake, f"http://127.0.0.1:{port}", derive_secret(fake.token), http)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


async def prepared(url: str) -> Database:
    db = Database(url)
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    return db


def pushed(fake: FakeBotApi, text: str, user: int = RESIDENT) -> dict[str, Any]:
    """An update as Telegram would deliver it to the webhook."""
    fake.push_text(user, text, language_code="en")
    [update] = fake.take_updates()
    return update


async def inbox_rows(db: Database) -> int:
    async with db.session() as session:
        return int((await session.exec(select(func.count()).select_from(InboxUpdate))).one())


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_wrong_or_missing_secret_is_refused_and_nothing_is_handled(
    fake: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/hook.db"
    db = await prepared(url)
    async with replica(fake, url, framework) as web:
        assert fake.webhook_url == PUBLIC_URL and fake.webhook_secret == web.secret
        update = pushed(fake, "/start")
        assert await web.post(update, secret="not-the-secret") == 403
        assert await web.post(update, secret="") == 403
        assert await inbox_rows(db) == 0
        # The same update with the right secret is then handled as usual.
        mark = len(fake.calls)
        assert await web.post(update) == 200
        await fake.wait_for(
            "sendMessage", lambda c: "Do you agree?" in c.params["text"], after=mark
        )
    await db.dispose()


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_an_update_delivered_twice_is_handled_once(
    fake: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/hook.db"
    db = await prepared(url)
    async with replica(fake, url, framework) as web:
        update = pushed(fake, "/start")
        statuses = await asyncio.gather(web.post(update), web.post(update))
        assert statuses == [200, 200]
        assert await web.post(update) == 200
        await fake.wait_for("sendMessage", lambda c: "Do you agree?" in c.params["text"])
        # A later update in the same chat is handled after it, so the first one is done.
        mark = len(fake.calls)
        assert await web.post(pushed(fake, "/help")) == 200
        await fake.wait_for(
            "sendMessage", lambda c: "How Huiyin works" in c.params["text"], after=mark
        )
        consents = [c for c in fake.calls_of("sendMessage") if "Do you agree?" in c.params["text"]]
        assert len(consents) == 1
        assert await inbox_rows(db) == 2
        health = await web.health()
        assert health["database"] == "ok"
        assert health["worker"] and 0 <= health["worker_lease_age_seconds"] < 60
    await db.dispose()


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_a_conversation_through_the_webhook(
    fake: FakeBotApi, tmp_path: Path, framework: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/hook.db"
    db = await prepared(url)
    async with replica(fake, url, framework) as web:
        assert await web.post(pushed(fake, "/start g_QS-JB-TH-01")) == 200
        consent = await fake.wait_for("sendMessage", lambda c: "Do you agree?" in c.params["text"])
        message_id = consent.result_or_error["message_id"]
        [row] = consent.params["reply_markup"]["inline_keyboard"][:1]
        agree = row[0]["callback_data"]
        fake.push_callback(RESIDENT, message_id, agree, language_code="en")
        [press] = fake.take_updates()
        mark = len(fake.calls)
        assert await web.post(press) == 200
        await fake.wait_for("answerCallbackQuery", after=mark)
        await fake.wait_for(
            "sendMessage", lambda c: "You are registered in" in c.params["text"], after=mark
        )
    await db.dispose()
