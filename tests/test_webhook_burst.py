"""A burst of chats at one webhook replica: every update is answered 200 as soon as it is in the
inbox, none is answered with an apology, /healthz keeps answering, and every update is handled.

On PostgreSQL the replica gets a deliberately small connection pool (6): each chat being
handled holds two connections (its lock and its transaction), so handling every chat at once,
as replicas did before, empties the pool and the rest wait for it until they fail (HTTP 500,
"something went wrong"). bench/webhook_burst.py measures the full burst (200 chats x 3).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot.app import run_bot
from bot.channels.webhook import SECRET_HEADER, derive_secret
from bot.settings import load_settings
from domain.clock import ManualClock
from domain.i18n import translator
from storage.database import Database
from storage.models import InboxUpdate, OutboxMessage
from tests.conftest import POSTGRES_URL, postgres_database
from tests.fake_bot_api import FakeBotApi
from tests.test_webhook import PUBLIC_URL, STARTED_AT, free_port, prepared

CHATS = 20
FIRST_CHAT = 960000001
EN = translator("en")
APOLOGIES = (
    EN._("Sorry, the system is busy right now. Please send that again in a minute."),
    EN._(
        "Sorry, something went wrong on our side. Please try again; if it keeps "
        "happening, send /start."
    ),
)


def burst(fake: FakeBotApi, chats: int) -> list[dict[str, Any]]:
    """Three updates from each of `chats` new residents, as Telegram would post them."""
    for n in range(chats):
        for text in ("/start", "/help", "hello"):
            fake.push_text(FIRST_CHAT + n, text, language_code="en")
    return fake.take_updates()


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/burst.db"
        db = await prepared(url)
        await db.dispose()
        yield url
        return
    if not POSTGRES_URL:
        pytest.skip("HUIYIN_TEST_POSTGRES_URL is not set")
    async with postgres_database() as empty:
        db = await prepared(empty.url)
        await db.dispose()
        yield empty.url


async def test_a_burst_is_taken_in_and_handled_without_a_failure(url: str) -> None:
    port = free_port()
    settings = load_settings(
        _env_file=None,
        bot_token=FakeBotApi().token,
        database_url=url,
        webhook_host="127.0.0.1",
        webhook_port=port,
        outbox_interval_seconds=0.5,
        send_rate_per_chat=100.0,
        database_pool_size=3,
        database_max_overflow=3,
    )
    async with FakeBotApi() as fake, aiohttp.ClientSession() as http:
        settings = settings.model_copy(update={"telegram_api_url": fake.base_url})
        updates = burst(fake, CHATS)
        stop = asyncio.Event()
        bot = asyncio.create_task(
            run_bot(settings, stop=stop, clock=ManualClock(STARTED_AT), webhook_url=PUBLIC_URL)
        )
        await fake.wait_for("setWebhook")
        base = f"http://127.0.0.1:{port}"
        headers = {SECRET_HEADER: derive_secret(fake.token)}

        async def post(update: dict[str, Any]) -> int:
            async with http.post(f"{base}/telegram/hook", json=update, headers=headers) as answer:
                return answer.status

        async def health() -> int:
            async with http.get(f"{base}/healthz") as answer:
                return answer.status

        try:
            posting = asyncio.gather(*(post(update) for update in updates))
            checks = await asyncio.gather(*(health() for _ in range(5)))
            statuses = await posting
            checks.append(await health())
            # Every resident gets the answer to their second update (/help).
            helped = set[int]()

            def all_helped(call: Any) -> bool:
                if "How Huiyin works" in str(call.params.get("text", "")):
                    helped.add(int(call.params["chat_id"]))
                return len(helped) == CHATS

            await fake.wait_for("sendMessage", all_helped, timeout=120)
        finally:
            stop.set()
            await asyncio.wait_for(bot, 60)

    assert Counter(statuses) == {200: 3 * CHATS}
    assert set(checks) == {200}
    db = Database(url)
    async with db.session() as session:
        pending = await session.exec(
            select(func.count())
            .select_from(InboxUpdate)
            .where(col(InboxUpdate.processed_at).is_(None))
        )
        handled = await session.exec(select(func.count()).select_from(InboxUpdate))
        texts = [
            str(payload.get("text", ""))
            for payload in (await session.exec(select(OutboxMessage.payload))).all()
        ]
    await db.dispose()
    assert pending.one() == 0 and handled.one() == 3 * CHATS
    assert not [text for text in texts if text in APOLOGIES]
    sent = [str(call.params.get("text", "")) for call in fake.calls_of("sendMessage")]
    assert not [text for text in sent if text in APOLOGIES]
