"""What follows when Telegram refuses a message because its person is out of reach.

The outbox sender has already recorded the refusal on the person (domain.reach), in the
same transaction; from then on nothing new is written to them until they write again. Here:

- a **new task card** nobody received moves the request on at once, to the next reachable
  person by the usual routing (the same level, else the levels above), with the timeline
  saying why; the new holder gets a card and the resident hears only who has it now;
- a **notice to a resident** about a request (they blocked the bot) tells whoever holds the
  request that the resident did not hear it, so they can call instead;
- anything else (a reminder, a digest, a card edit) is recorded and not retried.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from domain.clock import Clock
from domain.deadlines import Policy
from domain.i18n import Translator
from domain.lifecycle import Status
from domain.reach import Refusal, is_reachable
from domain.requests import move_on_unreachable
from handlers.cards import NOTICE_PREFIX, announce_new_owner, tell_staff
from schedules.outbox import RefusalHandler
from storage.models import OutboxMessage, Request, Staff

log = logging.getLogger(__name__)


def refusal_handler(clock: Clock, zone: ZoneInfo, policy: Policy) -> RefusalHandler:
    """What the outbox sender calls after a refusal that put someone out of reach."""

    async def after_refusal(
        session: AsyncSession, row: OutboxMessage, refusal: Refusal, first: bool
    ) -> None:
        await handle_refusal(
            session, row, refusal, first=first, now=clock.now(), zone=zone, policy=policy
        )

    return after_refusal


def parse_ref(ref_key: str | None, prefix: str, parts: int) -> list[int] | None:
    """The numbers in a ref key such as "card:12:3" (prefix "card", 2 parts), or None."""
    if not ref_key:
        return None
    head, *rest = ref_key.split(":")
    if head != prefix or len(rest) != parts or not all(p.isdigit() for p in rest):
        return None
    return [int(p) for p in rest]


async def handle_refusal(
    session: AsyncSession,
    row: OutboxMessage,
    refusal: Refusal,
    *,
    first: bool,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
) -> None:
    """`first`: this refusal is the one that put the person out of reach (later ones for the
    same chat, already queued, are refused too)."""
    card = parse_ref(row.ref_key, "card", 2)
    # Only a card sent anew; not an edit of one (by its name, or a copy losing its buttons).
    edit = row.payload.get("edit_ref") or row.payload.get("edit_message_id") is not None
    if card is not None and not edit:
        await move_card_on(session, card[0], card[1], refusal, now, zone, policy)
        return
    notice = parse_ref(row.ref_key, NOTICE_PREFIX, 1)
    if notice is not None and first:
        await tell_holder_resident_unreached(session, notice[0], refusal, now)


async def move_card_on(
    session: AsyncSession,
    request_id: int,
    staff_id: int,
    refusal: Refusal,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
) -> None:
    request = await session.get(Request, request_id, with_for_update=True)
    holder = await session.get(Staff, staff_id)
    if request is None or holder is None:
        return
    # Only a card still waiting to be accepted by that person: if it has moved on meanwhile,
    # or they took it up some other way, there is nothing to move.
    if request.assignee_staff_id != staff_id or request.status != Status.ASSIGNED:
        return
    from_level = request.level
    route = await move_on_unreachable(
        session, request, holder, refusal.value, now, zone=zone, policy=policy
    )
    if route is None:
        log.warning("%s: task card refused (%s), no one else reachable", request.reference, refusal)
        return
    await announce_new_owner(
        session,
        zone,
        request,
        holder,
        route.staff,
        now,
        lead=lambda t: t._("🆕 New task"),
        policy=policy,
        moved_up=route.level != from_level,
    )


async def tell_holder_resident_unreached(
    session: AsyncSession, request_id: int, refusal: Refusal, now: datetime
) -> None:
    request = await session.get(Request, request_id)
    if request is None or request.assignee_staff_id is None:
        return
    holder = await session.get(Staff, request.assignee_staff_id)
    if holder is None or not is_reachable(holder):
        return

    def text(t: Translator) -> str:
        return t._(
            "📵 The resident could not be told about <b>{ref}</b>: Telegram refused the "
            "message (they may have blocked Huiyin). Please call them.",
            ref=request.reference,
        )

    await tell_staff(session, holder, now, text, request=request)
