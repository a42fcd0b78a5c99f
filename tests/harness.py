"""Conversation test harness: users talk to the real dispatcher through the console channel's
`ChatDriver`; the outbox is delivered into memory, so tests read what each user would see."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.channels.console import ChatDriver
from domain.clock import ManualClock
from storage.database import Database

ZONE = ZoneInfo("Asia/Shanghai")


class Harness(ChatDriver):
    def __init__(
        self, db: Database, clock: ManualClock, languages: dict[int, str] | None = None
    ) -> None:
        super().__init__(db, clock, ZONE)
        self.clock: ManualClock = clock
        if languages is not None:
            self.languages = languages

    def texts(self, user: int) -> list[str]:
        return [m.text for m in self.sender.messages(user)]

    def last_text(self, user: int) -> str:
        return self.sender.messages(user)[-1].text
