"""Reachability: whom the bot can actually write to.

Telegram lets a bot write only to someone who has opened it (pressed Start), and stops it again
when they block the bot or delete their account. A Telegram id in the roster is therefore not a
reachable person: on the day a district switches Huiyin on, almost none of its staff have
opened the bot yet.

A roster entry is **reachable** when

- it is tied to a Telegram account (`telegram_id`, from the roster or an invite),
- that person has written to the bot as this entry (`opened_at`, set by the dispatcher on
  their first update), and
- Telegram has not refused a message to them since (`refused_at`, set by the outbox sender
  when Telegram answers "blocked", "deactivated" or "chat not found"; cleared when they write
  again).

Residents are the same with their account's `blocked_at`: an account exists only once they
have written, so only the refusal matters.

Routing, reminders, escalation notices and the digest go only to reachable people; `/team`,
the digest and `huiyin roster status` show who is not.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Account, Staff


class Reach(StrEnum):
    REACHABLE = "reachable"
    NOT_OPENED = "not_opened"  # in the roster, never wrote to the bot (or no Telegram id)
    REFUSED = "refused"  # Telegram refused a message to them since they last wrote


class Refusal(StrEnum):
    """Why Telegram refused to deliver to a chat, when that means the person is out of reach
    (as opposed to a refusal of one message's content, such as bad HTML)."""

    BLOCKED = "blocked"
    DEACTIVATED = "deactivated"
    CHAT_NOT_FOUND = "chat_not_found"


# Telegram's descriptions (see TELEGRAM-FACTS.md): "Forbidden: bot was blocked by the user",
# "Forbidden: user is deactivated", "Forbidden: bot can't initiate conversation with a user",
# "Bad Request: chat not found".
_REFUSAL_MARKERS: tuple[tuple[str, Refusal], ...] = (
    ("blocked by the user", Refusal.BLOCKED),
    ("deactivated", Refusal.DEACTIVATED),
    ("can't initiate conversation", Refusal.CHAT_NOT_FOUND),
    ("chat not found", Refusal.CHAT_NOT_FOUND),
    ("user not found", Refusal.CHAT_NOT_FOUND),
)


def refusal_of(description: str) -> Refusal | None:
    """The reachability meaning of a refused delivery, or None for a refusal of the content."""
    lowered = description.lower()
    for marker, refusal in _REFUSAL_MARKERS:
        if marker in lowered:
            return refusal
    return None


def reachable_clause() -> ColumnElement[bool]:
    """SQL: the staff rows the bot can write to."""
    return and_(
        col(Staff.telegram_id).is_not(None),
        col(Staff.opened_at).is_not(None),
        col(Staff.refused_at).is_(None),
    )


def refused_clause() -> ColumnElement[bool]:
    """SQL: opened Huiyin once, and Telegram has refused a message to them since."""
    return and_(
        col(Staff.telegram_id).is_not(None),
        col(Staff.opened_at).is_not(None),
        col(Staff.refused_at).is_not(None),
    )


def not_opened_clause() -> ColumnElement[bool]:
    """SQL: never opened Huiyin as this roster entry (or no Telegram account tied to it)."""
    return or_(col(Staff.telegram_id).is_(None), col(Staff.opened_at).is_(None))


def reach_of(staff: Staff) -> Reach:
    if staff.telegram_id is None or staff.opened_at is None:
        return Reach.NOT_OPENED
    if staff.refused_at is not None:
        return Reach.REFUSED
    return Reach.REACHABLE


def is_reachable(staff: Staff | None) -> bool:
    return staff is not None and reach_of(staff) is Reach.REACHABLE


def reachable_chat(staff: Staff | None) -> int | None:
    """The chat to write to `staff` in, or None when the bot cannot reach them."""
    return staff.telegram_id if staff is not None and is_reachable(staff) else None


def account_reachable(account: Account | None) -> bool:
    return account is not None and account.blocked_at is None


def mark_written(staff: Staff | None, account: Account | None, now: datetime) -> None:
    """They wrote to the bot: they have opened it, and whatever Telegram refused before is
    over (an unblocked bot gets the user's messages again)."""
    if staff is not None:
        if staff.opened_at is None:
            staff.opened_at = now
        staff.refused_at = None
        staff.refused_reason = None
    if account is not None:
        account.blocked_at = None


async def record_refusal(
    session: AsyncSession, chat_id: int, refusal: Refusal, now: datetime
) -> bool:
    """Telegram refused a message to `chat_id`: whoever that chat is, staff or resident, is out
    of reach until they write again. True if this put someone out of reach (False when it was
    known already)."""
    staff = await session.exec(
        update(Staff)
        .where(col(Staff.telegram_id) == chat_id, col(Staff.refused_at).is_(None))
        .values(refused_at=now, refused_reason=refusal.value)
    )  # type: ignore[call-overload]
    accounts = await session.exec(
        update(Account)
        .where(col(Account.chat_id) == chat_id, col(Account.blocked_at).is_(None))
        .values(blocked_at=now)
    )  # type: ignore[call-overload]
    return bool(staff.rowcount or accounts.rowcount)
