"""Webhook mode: an aiohttp endpoint that takes Telegram's updates into the inbox.

Every request must carry the secret in `X-Telegram-Bot-Api-Secret-Token` (a wrong or missing
one is refused and nothing is recorded). An accepted update is written to the inbox and
answered at once with 200, before it is handled: the answer waits for one short insert, never
for a handler or a chat's lock. It is then handled through the framework (python-telegram-bot
or aiogram, the same as in polling) in update order per chat, a bounded number of chats at once
(`storage.inbox.InboxDrains`), so a burst of chats cannot take every pooled connection. A
second delivery of an update is answered 200 and not handled again. `/healthz` reports whether
the database answers and how long ago the worker last said it was alive.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy import text

from domain.clock import Clock
from domain.messages import Sender
from storage.database import Database
from storage.inbox import InboxDrains, chat_of, take_in
from storage.models import WorkerLease

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WORKER_LEASE = "worker"


def derive_secret(token: str) -> str:
    """A webhook secret every replica can compute from the token, in Telegram's alphabet."""
    return hmac.new(token.encode(), b"huiyin-webhook", hashlib.sha256).hexdigest()


# Telegram's ids (updates, chats, users, messages) fit a signed 64-bit integer, the columns
# they are stored in; a number beyond that, or a text where a number belongs, is no update.
ID_RANGE = range(-(2**63), 2**63)


def _is_id(value: object) -> bool:
    return type(value) is int and value in ID_RANGE


def _valid_chat_parts(message: object) -> bool:
    """A message (as in `message` or a callback's `message`): its chat, if any, is an object
    with an id that is a number, and so is its sender's."""
    if not isinstance(message, dict):
        return False
    for key in ("chat", "from"):
        if key in message and not (
            isinstance(message[key], dict) and _is_id(message[key].get("id"))
        ):
            return False
    return "message_id" not in message or _is_id(message["message_id"])


def update_id_of(payload: object) -> int | None:
    """The update id of a well-formed update, or None for a body that is not one (answered
    400): not an object, an update id that is not a 64-bit number, or a message, edited
    message or callback query whose chat or sender ids are not numbers. What is taken in
    must be an update the rest of the bot can file under its chat and handle."""
    if not isinstance(payload, dict) or not _is_id(payload.get("update_id")):
        return None
    if payload["update_id"] < 0:
        return None
    for key in ("message", "edited_message"):
        if key in payload and not _valid_chat_parts(payload[key]):
            return None
    if "callback_query" in payload:
        query = payload["callback_query"]
        if not _valid_chat_parts(query):
            return None
        if "message" in query and not _valid_chat_parts(query["message"]):
            return None
    return int(payload["update_id"])


class TelegramApp(Protocol):
    """A framework's bot without polling: what a webhook replica or a worker needs."""

    sender: Sender

    async def feed(self, payload: dict[str, Any]) -> None: ...

    async def set_webhook(self, url: str, secret: str) -> None: ...


class WebhookServer:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        app: TelegramApp,
        path: str,
        secret: str,
        drains: InboxDrains | None = None,
        health_db: Database | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.app = app
        self.path = path if path.startswith("/") else f"/{path}"
        self.secret = secret
        self.drains = drains or InboxDrains(db, app.feed, clock.now)
        # /healthz asks on a connection of its own, so a burst queueing for the pool does not
        # make the replica look dead to the load balancer.
        self.health_db = health_db or db

    def web_app(self) -> web.Application:
        application = web.Application()
        application.router.add_post(self.path, self.receive)
        application.router.add_get("/healthz", self.health)
        return application

    async def receive(self, request: web.Request) -> web.Response:
        offered = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(offered.encode(), self.secret.encode()):
            log.warning(
                "webhook: refused a request without the right secret from %s", request.remote
            )
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        update_id = update_id_of(payload)
        if update_id is None:
            log.warning("webhook: refused a body that is not a Telegram update")
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        assert isinstance(payload, dict)
        if await take_in(self.db, payload, self.clock.now()):
            self.handle_soon(chat_of(payload))
        else:
            log.info("webhook: update %s arrived again; already taken in", update_id)
        return web.json_response({"ok": True})

    def handle_soon(self, chat_id: int) -> None:
        self.drains.handle_soon(chat_id)

    async def recover(self, received_before: datetime | None = None) -> None:
        """Handle updates a replica took in but did not finish (it stopped or crashed); all
        pending ones when `received_before` is None (at start-up)."""
        await self.drains.recover(received_before)

    async def settle(self) -> None:
        """Wait for the updates being handled now (tests, and a clean stop)."""
        await self.drains.settle()

    async def health(self, _request: web.Request) -> web.Response:
        report: dict[str, Any] = {}
        try:
            async with self.health_db.session() as session:
                await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
                lease = await session.get(WorkerLease, WORKER_LEASE)
            report["database"] = "ok"
            report["worker"] = lease.holder if lease else None
            report["worker_lease_age_seconds"] = (
                round((self.clock.now() - lease.heartbeat_at).total_seconds(), 1) if lease else None
            )
        except Exception as error:
            report["database"] = f"unreachable: {type(error).__name__}"
            return web.json_response(report, status=503)
        return web.json_response(report)


async def serve(application: web.Application, host: str, port: int) -> Callable[[], Any]:
    """Start listening; return the coroutine function that stops the server."""
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner.cleanup
