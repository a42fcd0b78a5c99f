"""The console channel: the same conversations in a terminal, with no token and no network.

`ChatDriver` plays users against the real dispatcher and delivers the outbox into memory; the
console (`huiyin console`), the demo and the conversation tests all drive it. In the console,
type text or /commands; a number presses that button of the last message; `:photo CAPTION`,
`:voice`, `:contact PHONE`, `:location LAT LON`, `:sticker` send those kinds; `:quit` leaves.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.channels.memory import MemorySender, ShownMessage
from bot.dispatcher import Dispatcher
from domain.clock import Clock
from domain.deadlines import DEFAULT_POLICY, Policy
from domain.messages import HandleResult, Inbound, InboundKind, Outbound
from schedules.exports import run_exports
from schedules.outbox import OutboxSender
from schedules.refusals import refusal_handler
from storage.database import Database

TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """What an HTML message looks like on screen."""
    return html.unescape(TAG.sub("", text))


class ChatDriver:
    """Users talking to the real dispatcher; what they see lands in `sender`."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        zone: ZoneInfo,
        sender: MemorySender | None = None,
        policy: Policy = DEFAULT_POLICY,
        only_chats: frozenset[int] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.zone = zone
        self.sender = sender or MemorySender()
        self.dispatcher = Dispatcher(db, clock, zone, policy=policy)
        # `only_chats`: deliver those chats' messages only (the console on a live database
        # shows its own chat; everyone else's stay pending for the worker to send).
        self.outbox = OutboxSender(db, self.sender, clock, only_chats=only_chats)
        self.outbox.on_refused = refusal_handler(clock, zone, policy)
        self.languages: dict[int, str] = {}
        self.names: dict[int, str] = {}
        self.results: list[HandleResult] = []
        self._updates = itertools.count(1)
        self.on_act: Callable[[Inbound], None] | None = None

    async def send(self, user: int, kind: InboundKind, **fields: object) -> list[ShownMessage]:
        chat_id = int(fields.pop("chat_id", user))  # type: ignore[call-overload]
        chat_type = str(fields.pop("chat_type", "private"))
        before = len(self.sender.messages(chat_id))
        inbound = Inbound(
            kind=kind,
            user_id=user,
            chat_id=chat_id,
            chat_type=chat_type,
            language=self.languages.get(user, "zh-hans"),
            display_name=str(fields.pop("display_name", self.names.get(user, f"user{user}"))),
            update_id=next(self._updates),
            **fields,  # type: ignore[arg-type]
        )
        if self.on_act:
            self.on_act(inbound)
        self.results.append(await self.dispatcher.handle(inbound))
        # The worker's part, at once: ledgers asked for are built, then everything delivered.
        await run_exports(self.db, self.clock, self.zone)
        await self.outbox.deliver_due()
        return self.sender.messages(chat_id)[before:]

    async def say(self, user: int, text: str, **fields: object) -> list[ShownMessage]:
        if text.startswith("/"):
            command, _, args = text[1:].partition(" ")
            return await self.send(
                user,
                "command",
                text=text,
                command=command.split("@")[0].lower(),
                args=args.strip(),
                **fields,
            )
        return await self.send(user, "text", text=text, **fields)

    def button(self, user: int, label: str = "", *, value: str = "") -> tuple[ShownMessage, str]:
        """The newest button in the user's chat whose text contains `label` or whose data ends
        with `:value` (or starts with `value` followed by `:`)."""
        for shown in reversed(self.sender.messages(user)):
            for button in shown.buttons:
                if not button.data:
                    continue
                if label and label in button.text:
                    return shown, button.data
                if value and (
                    button.data.endswith(f":{value}") or button.data.startswith(f"{value}:")
                ):
                    return shown, button.data
        seen = [b.text for m in self.sender.messages(user)[-3:] for b in m.buttons]
        raise LookupError(f"no button {label or value!r} for {user}; recent buttons: {seen}")

    async def tap(self, user: int, label: str = "", *, value: str = "") -> list[ShownMessage]:
        shown, data = self.button(user, label, value=value)
        return await self.press(user, data, shown.message_id)

    async def press(
        self, user: int, data: str, message_id: int | None = None, **fields: object
    ) -> list[ShownMessage]:
        return await self.send(
            user,
            "button",
            button_data=data,
            callback_id=f"cb{user}",
            message_id=message_id,
            **fields,
        )

    @property
    def last_answer(self) -> str | None:
        return self.results[-1].callback_answer if self.results else None


class Transcript:
    """Prints a conversation the way a person reads a chat; a file the bot uploads (a chart,
    a spreadsheet) is written under `upload_dir` (the system's temporary directory unless
    given) and its path printed, since a terminal cannot show it."""

    def __init__(
        self, driver: ChatDriver, out: TextIO = sys.stdout, upload_dir: Path | None = None
    ) -> None:
        self.driver = driver
        self.out = out
        self.upload_dir = upload_dir
        driver.sender.on_show = self.show_message
        driver.on_act = self.show_action

    def name(self, chat_id: int) -> str:
        return self.driver.names.get(chat_id, str(chat_id))

    def show_action(self, inbound: Inbound) -> None:
        who = self.name(inbound.user_id)
        if inbound.kind == "button":
            label = self._button_label(inbound)
            what = f"[{label}]" if label else f"[{inbound.button_data}]"
        elif inbound.kind == "location":
            what = f"<location> {inbound.latitude}, {inbound.longitude}"
        elif inbound.kind in ("photo", "voice", "contact", "unsupported"):
            what = f"<{inbound.kind}> {inbound.text or inbound.contact_phone}".rstrip()
        else:
            what = inbound.text
        print(f"\n👤 {who} › {what}", file=self.out)

    def _button_label(self, inbound: Inbound) -> str:
        shown = self.driver.sender.find(inbound.chat_id, inbound.message_id or -1)
        if shown is None:
            return ""
        return next((b.text for b in shown.buttons if b.data == inbound.button_data), "")

    def show_message(self, shown: ShownMessage, edited: bool) -> None:
        message = shown.message
        who = self.name(message.chat_id)
        head = f"   🤖 → {who}" + (" (card updated)" if edited else "")
        if message.contact_phone:
            body = f"📇 {message.contact_name} {message.contact_phone}"
        else:
            body = plain(message.text)
            if message.media_kind:
                body = f"[{message.media_kind}] {body}"
            if message.upload_kind:
                body = f"[{message.upload_kind}: {self.save_upload(message)}]\n{body}".rstrip()
        print(head + ":", file=self.out)
        for line in body.splitlines():
            print(f"      {line}", file=self.out)
        labels = [b.text for b in shown.buttons]
        if labels:
            print(
                "      " + "  ".join(f"[{i}] {t}" for i, t in enumerate(labels, 1)), file=self.out
            )
        if message.request_contact:
            print(f"      [{message.request_contact}] (type :contact PHONE)", file=self.out)
        if message.request_location:
            print(f"      [{message.request_location}] (type :location LAT LON)", file=self.out)

    def save_upload(self, message: Outbound) -> Path:
        suffix = Path(message.upload_name).suffix
        stem = Path(message.upload_name).stem or "upload"
        handle, name = tempfile.mkstemp(
            prefix=f"huiyin-{stem}-", suffix=suffix, dir=self.upload_dir
        )
        with open(handle, "wb") as file:
            file.write(message.upload_bytes)
        return Path(name)


async def run_console(driver: ChatDriver, user: int, out: TextIO = sys.stdout) -> None:
    """An interactive chat as `user` until end of input or `:quit`."""
    Transcript(driver, out)
    print("Type a message or /start; a number presses a button; :quit leaves.", file=out)
    while True:
        try:
            line = (await asyncio.to_thread(input, "> ")).strip()
        except EOFError:
            break
        if not line:
            continue
        if line == ":quit":
            break
        await console_line(driver, user, line, out)


async def console_line(driver: ChatDriver, user: int, line: str, out: TextIO) -> None:
    if line.isdigit():
        mine = driver.sender.messages(user)
        with_buttons = next((m for m in reversed(mine) if m.buttons), None)
        index = int(line) - 1
        if with_buttons is None or not 0 <= index < len(with_buttons.buttons):
            print("   (no such button)", file=out)
            return
        await driver.press(user, with_buttons.buttons[index].data, with_buttons.message_id)
        return
    command, _, rest = line.partition(" ")
    if command == ":photo":
        await driver.send(user, "photo", file_id="console-photo", text=rest)
    elif command == ":voice":
        await driver.send(user, "voice", file_id="console-voice")
    elif command == ":contact":
        await driver.send(user, "contact", contact_phone=rest, contact_user_id=user)
    elif command == ":location":
        try:
            lat, lon = (float(part) for part in rest.split())
        except ValueError:
            print("   (type :location LAT LON, e.g. :location 28.19 112.97)", file=out)
            return
        await driver.send(user, "location", latitude=lat, longitude=lon)
    elif command == ":sticker":
        await driver.send(user, "unsupported")
    else:
        await driver.say(user, line)
