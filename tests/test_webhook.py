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
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func
from sqlmodel import select

# Both adapters are imported when the tests are collected: on a busy machine a cold import of
# aiogram takes longer than a replica's start-up wait (test_postgres_deployment uses it too).
import bot.channels.telegram_aiogram
import bot.channels.telegram_ptb  # noqa: F401
from bot.app import Role, run_bot
from bot.channels.webhook import SECRET_HEADER, WebhookServer, derive_secret
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


class Recording:
    """A framework stand-in: the updates it is fed."""

    sender: Any = None

    def __init__(self) -> None:
        self.fed: list[dict[str, Any]] = []

    async def feed(self, payload: dict[str, Any]) -> None:
        self.fed.append(payload)

    async def set_webhook(self, url: str, secret: str) -> None:
        return None


def message_update(update_id: object, chat: object, user: object = RESIDENT) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": chat, "type": "private"} if chat is not None else "nope",
            "from": {"id": user, "is_bot": False, "first_name": "R"},
            "text": "hello",
        },
    }


@pytest.mark.parametrize(
    "body",
    [
        message_update(2**64, RESIDENT),
        message_update(2**63, RESIDENT),
        message_update(-1, RESIDENT),
        message_update("17", RESIDENT),
        message_update(True, RESIDENT),
        message_update(17, "a string chat"),
        message_update(17, 2**64),
        message_update(17, None),
        message_update(17, RESIDENT, user="x"),
        {"update_id": 18, "callback_query": {"id": "1", "from": {"id": "x"}, "data": "m:help"}},
        {"update_id": 19, "callback_query": {"id": "1", "from": {"id": 1}, "message": []}},
        {"update_id": 20, "message": "text"},
        [1, 2, 3],
        "update",
        None,
    ],
)
async def test_a_malformed_update_is_answered_400(db: Database, body: object) -> None:
    """An update with the right secret but a body that is not a Telegram update (an id past
    64 bits, a string where a chat belongs) is refused with 400, nothing taken in, nothing
    handled, and the replica goes on serving."""
    app = Recording()
    clock = ManualClock(STARTED_AT)
    server = WebhookServer(db=db, clock=clock, app=app, path="/hook", secret="s3cret")
    async with TestClient(TestServer(server.web_app())) as client:
        response = await client.post("/hook", json=body, headers={SECRET_HEADER: "s3cret"})
        assert response.status == 400
        assert await response.json() == {"ok": False, "error": "not an update"}
        broken = await client.post("/hook", data=b"{not json", headers={SECRET_HEADER: "s3cret"})
        assert broken.status == 400
        good = await client.post(
            "/hook", json=message_update(21, RESIDENT), headers={SECRET_HEADER: "s3cret"}
        )
        assert good.status == 200
        await server.settle()
    assert await inbox_rows(db) == 1
    assert [update["update_id"] for update in app.fed] == [21]
