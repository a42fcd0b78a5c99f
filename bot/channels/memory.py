"""An in-memory channel: keeps every chat's messages as a user would see them.

The console channel and the demo print from it; conversation tests read it. Edits change the
stored message in place, as Telegram does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from domain.messages import Button, DeliveryRefused, NotModified, Outbound


@dataclass(slots=True)
class ShownMessage:
    message_id: int
    message: Outbound
    edits: int = 0

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def buttons(self) -> list[Button]:
        return [button for row in self.message.buttons for button in row]


@dataclass
class MemorySender:
    """Implements `Sender`; `on_show` is told of each new or edited message."""

    chats: dict[int, list[ShownMessage]] = field(default_factory=dict)
    on_show: Callable[[ShownMessage, bool], None] | None = None
    callback_answers: list[tuple[str, str | None, bool]] = field(default_factory=list)
    # Chats that have blocked the bot: Telegram refuses every message to them.
    blocked: set[int] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _refuse_if_blocked(self, chat_id: int) -> None:
        if chat_id in self.blocked:
            raise DeliveryRefused("Forbidden: bot was blocked by the user", blocked=True)

    async def send(self, message: Outbound) -> int:
        self._refuse_if_blocked(message.chat_id)
        shown = ShownMessage(next(self._ids), message)
        self.chats.setdefault(message.chat_id, []).append(shown)
        if self.on_show:
            self.on_show(shown, False)
        return shown.message_id

    async def edit(self, message: Outbound, message_id: int) -> None:
        self._refuse_if_blocked(message.chat_id)
        for shown in self.chats.get(message.chat_id, []):
            if shown.message_id == message_id:
                if (shown.message.text, shown.message.buttons) == (message.text, message.buttons):
                    raise NotModified()
                shown.message = message
                shown.edits += 1
                if self.on_show:
                    self.on_show(shown, True)
                return
        raise DeliveryRefused("Bad Request: message to edit not found")

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        self.callback_answers.append((callback_id, text, alert))

    def messages(self, chat_id: int) -> list[ShownMessage]:
        return self.chats.get(chat_id, [])

    def find(self, chat_id: int, message_id: int) -> ShownMessage | None:
        return next((m for m in self.messages(chat_id) if m.message_id == message_id), None)
