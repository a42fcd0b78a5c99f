"""The outbox: outgoing messages written in the same transaction as the change they announce.

`enqueue` adds rows (the table and its low-level reads are in `storage.outbox`); the sender in
`schedules.outbox` delivers them. Texts over Telegram's 4096-character limit are split at line
breaks into several messages, the buttons going with the last one, so nothing a user should read
is cut off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from domain.messages import MAX_TEXT, Outbound
from storage.database import NewOutboxRow
from storage.outbox import add_outbox_row, rows_named

# A cut inside a line backs off this far at most, to keep a tag or "&amp;" whole.
MAX_MARKUP = 12


def cut_point(line: str, limit: int) -> int:
    """Where to cut a line longer than `limit`: not inside a tag or a character entity, so
    escaped user text ("&lt;", "&amp;") stays valid HTML on both sides of the cut."""
    cut = limit
    for opener, closer in (("&", ";"), ("<", ">")):
        start = line.rfind(opener, max(1, limit - MAX_MARKUP), limit)
        if start > 0 and closer not in line[start:limit]:
            cut = min(cut, start)
    return cut


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut `text` into pieces of at most `limit` characters, at line breaks where possible.

    Our HTML never opens a tag on one line and closes it on another, so a cut at a line break
    keeps every piece well-formed; a line longer than `limit` is cut between tags and entities.
    """
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            cut = cut_point(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def enqueue(
    session: AsyncSession, message: Outbound, now: datetime, *, not_before: datetime | None = None
) -> None:
    """Add the message to the outbox; with `not_before` (e.g. the end of quiet hours) it waits
    until then, and so do the messages written after it to the same chat."""
    send_at = max(now, not_before) if not_before is not None else now
    pieces = split_text(message.text) if not message.contact_phone else [message.text]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        part = Outbound(
            chat_id=message.chat_id,
            text=piece,
            buttons=message.buttons if last else (),
            request_contact=message.request_contact if last else "",
            request_location=message.request_location if last else "",
            remove_keyboard=message.remove_keyboard,
            media_kind=message.media_kind if index == 0 else None,
            media_file_id=message.media_file_id if index == 0 else None,
            contact_phone=message.contact_phone,
            contact_name=message.contact_name,
            edit_ref=message.edit_ref if len(pieces) == 1 else None,
            edit_message_id=message.edit_message_id if len(pieces) == 1 else None,
            upload_kind=message.upload_kind if index == 0 else None,
            upload_name=message.upload_name if index == 0 else "",
            upload_bytes=message.upload_bytes if index == 0 else b"",
        )
        add_outbox_row(
            session,
            NewOutboxRow(
                chat_id=message.chat_id,
                payload=part.to_payload(),
                ref_key=(message.ref or message.edit_ref) if last else None,
                created_at=now,
                next_attempt_at=send_at,
            ),
        )


def _shown(payload: dict[str, Any]) -> tuple[str, Any]:
    return payload.get("text", ""), payload.get("buttons", [])


async def enqueue_edit(
    session: AsyncSession, message: Outbound, now: datetime, *, not_before: datetime | None = None
) -> bool:
    """Add an edit of the message `edit_ref` names, unless it would show exactly what the
    latest send or edit of it shows already (a second tap, a card refreshed without a change):
    Telegram would only answer "message is not modified". True when an edit was added."""
    assert message.edit_ref is not None
    rows = [
        row
        for row in await rows_named(session, message.chat_id, message.edit_ref)
        if "edit_message_id" not in row.payload
    ]
    if rows and _shown(rows[-1].payload) == _shown(message.to_payload()):
        return False
    enqueue(session, message, now, not_before=not_before)
    return True


async def retire_keyboard(
    session: AsyncSession,
    chat_id: int,
    message_id: int | None,
    ref_key: str,
    now: datetime,
    chosen: str = "",
) -> bool:
    """The buttons of a message the user pressed go away once the choice is made, so nobody
    taps a dead button: its text stays, with `chosen` (what was picked, e.g. "✅ Solved")
    added on a line of its own. The message is found among those named `ref_key` in the chat;
    one that is unknown, or whose buttons went already (a double tap), is left alone. True
    when an edit was added."""
    if message_id is None:
        return False
    shown: dict[str, Any] | None = None
    for row in await rows_named(session, chat_id, ref_key):
        target = row.payload.get("edit_message_id")
        if target == message_id or (target is None and row.sent_message_id == message_id):
            shown = row.payload
    if shown is None or not shown.get("buttons"):
        return False
    text = shown.get("text", "")
    if chosen:
        text = f"{text}\n\n{chosen}"
    enqueue(
        session,
        Outbound(chat_id=chat_id, text=text, ref=ref_key, edit_message_id=message_id),
        now,
    )
    return True
