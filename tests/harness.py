"""Conversation test harness: users talk to the real dispatcher; the outbox is delivered into
an in-memory channel, so tests read what each user would see."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.channels.memory import MemorySender, ShownMessage
from bot.channels.types import HandleResult, Inbound, InboundKind
from bot.clock import ManualClock
from bot.dispatcher import Dispatcher
from schedules.outbox import OutboxSender
from storage.database import Database

ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class Harness:
    db: Database
    clock: ManualClock
    sender: MemorySender = field(default_factory=MemorySender)
    languages: dict[int, str] = field(default_factory=dict)
    results: list[HandleResult] = field(default_factory=list)
    _updates: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.db, self.clock, ZONE)
        self.outbox = OutboxSender(self.db, self.sender, self.clock)

    async def send(self, user: int, kind: InboundKind, **fields: object) -> list[ShownMessage]:
        before = {chat: len(msgs) for chat, msgs in self.sender.chats.items()}
        inbound = Inbound(
            kind=kind,
            user_id=user,
            chat_id=int(fields.pop("chat_id", user)),  # type: ignore[call-overload]
            language=self.languages.get(user, "zh-hans"),
            display_name=str(fields.pop("display_name", f"user{user}")),
            update_id=next(self._updates),
            **fields,  # type: ignore[arg-type]
        )
        self.results.append(await self.dispatcher.handle(inbound))
        await self.outbox.deliver_due()
        return self.sender.messages(inbound.chat_id)[before.get(inbound.chat_id, 0) :]

    async def say(self, user: int, text: str, **fields: object) -> list[ShownMessage]:
        if text.startswith("/"):
            command, _, args = text[1:].partition(" ")
            return await self.send(
                user, "command", text=text, command=command.lower(), args=args.strip(), **fields
            )
        return await self.send(user, "text", text=text, **fields)

    def button(self, user: int, label: str) -> tuple[ShownMessage, str]:
        """The newest message in the user's chat with a button whose text contains `label`."""
        for shown in reversed(self.sender.messages(user)):
            for button in shown.buttons:
                if label in button.text and button.data:
                    return shown, button.data
        seen = [b.text for m in self.sender.messages(user)[-3:] for b in m.buttons]
        raise AssertionError(f"no button {label!r} for {user}; recent buttons: {seen}")

    async def tap(self, user: int, label: str) -> list[ShownMessage]:
        shown, data = self.button(user, label)
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

    def texts(self, user: int) -> list[str]:
        return [m.text for m in self.sender.messages(user)]

    def last_text(self, user: int) -> str:
        return self.sender.messages(user)[-1].text
