"""Invites: one-time links that tie a roster entry to whoever opens them.

    huiyin invite PHONE, or 🔗 in /team ─► code (random, single use, 7 days)
    the person opens t.me/<bot>?start=i_<code> (or sends /start i_<code>)
    ─► bound to the roster entry (handlers/onboarding.py `redeem_invite`), and reachable

A code is only a key to one roster entry: it tells nothing about the entry and cannot be guessed
(96 random bits). Asking again for someone whose link is still good for a while gives the same
link, so at most one link per person is in circulation and a link already forwarded keeps
working.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Invite, Staff

START_PREFIX = "i_"
INVITE_DAYS = 7
# A link with less than this left is not handed out again: it might run out before it is used.
REUSE_MARGIN = timedelta(days=1)


def new_code() -> str:
    # token_urlsafe(12) gives 16 characters; Telegram's start parameter allows A-Z a-z 0-9 _ -.
    return secrets.token_urlsafe(12)


async def issue_invite(
    session: AsyncSession, staff: Staff, now: datetime, days: int = INVITE_DAYS
) -> Invite:
    """An unused invite for `staff`: the one valid longest, if it still has REUSE_MARGIN to
    run, or else a fresh one valid for `days`. (A link still good is handed out again rather
    than a second one made: at most one is in circulation, and one already forwarded works.)"""
    assert staff.id is not None
    usable = (
        await session.exec(
            select(Invite)
            .where(Invite.staff_id == staff.id, col(Invite.used_at).is_(None))
            .where(col(Invite.expires_at) > now + REUSE_MARGIN)
            .order_by(col(Invite.expires_at).desc())
        )
    ).first()
    if usable is not None:
        return usable
    invite = Invite(
        code=new_code(),
        staff_id=staff.id,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(invite)
    await session.flush()
    return invite


def start_payload(invite: Invite) -> str:
    """What follows /start (or ?start= in a t.me link) to redeem the invite."""
    return START_PREFIX + invite.code


def invite_url(bot_username: str, invite: Invite) -> str:
    return f"https://t.me/{bot_username.lstrip('@')}?start={start_payload(invite)}"
