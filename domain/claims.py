"""Claiming (认领): a need's holder offers it to volunteers, one of them (or a unit, through its
contact person) takes it, does it and reports it done; the holder stays responsible throughout.

    offered ──claim (first press wins)──► claimed ──report done──► done ──confirm──► confirmed
       │ widen (community → town)            │                      │  (holder, or time limit)
       └─withdraw──► withdrawn               ├─take back──► taken_back
                                             └─release / leave──► released
    any live state ──the need ends otherwise (cancelled, merged, resolved by the holder)──► closed

One `claims` row per offer; `requests.claim_id` names the live one. Taking it is a single
conditional UPDATE (`state = 'offered'`): of two presses in the same second exactly one
changes the row, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, or_, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.i18n import N_, Translator, translator
from domain.messages import Outbound
from domain.outbox import enqueue_edit
from domain.volunteers import DEFAULT_AUTO_OFFER, NEVER_OFFERED, VolunteerStatus
from storage.database import Database
from storage.models import Account, Claim, OutboxMessage, Request, Unit, Volunteer
from storage.outbox import rows_named
from storage.roster_cache import unit_of


class ClaimState(StrEnum):
    OFFERED = "offered"
    CLAIMED = "claimed"
    DONE = "done"
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"
    TAKEN_BACK = "taken_back"
    RELEASED = "released"
    CLOSED = "closed"


# A claim that still concerns someone: on offer, held by a claimant, or reported done.
LIVE_STATES: frozenset[ClaimState] = frozenset(
    {ClaimState.OFFERED, ClaimState.CLAIMED, ClaimState.DONE}
)
# Held by a claimant (who then sees the beneficiary's name, place and phone).
HELD_STATES: frozenset[ClaimState] = frozenset({ClaimState.CLAIMED, ClaimState.DONE})

ALLOWED: dict[ClaimState, frozenset[ClaimState]] = {
    ClaimState.OFFERED: frozenset(
        {ClaimState.CLAIMED, ClaimState.WITHDRAWN, ClaimState.CLOSED, ClaimState.OFFERED}
    ),
    ClaimState.CLAIMED: frozenset(
        {ClaimState.DONE, ClaimState.TAKEN_BACK, ClaimState.RELEASED, ClaimState.CLOSED}
    ),
    ClaimState.DONE: frozenset(
        {
            ClaimState.CONFIRMED,
            ClaimState.CLAIMED,  # the holder says it is not done after all
            ClaimState.TAKEN_BACK,
            ClaimState.RELEASED,
            ClaimState.CLOSED,
        }
    ),
}


class ClaimRefused(Exception):
    def __init__(self, state: str, to: str) -> None:
        super().__init__(f"a claim cannot go from {state} to {to}")
        self.state = state
        self.to = to


def check_move(claim: Claim, to: ClaimState) -> None:
    if to not in ALLOWED.get(ClaimState(claim.state), frozenset()):
        raise ClaimRefused(claim.state, to.value)


def next_due(claim: Claim) -> datetime | None:
    """What the claims sweep looks at next: widening an offer, or counting reported work as
    done."""
    if claim.state == ClaimState.OFFERED:
        return claim.widen_at
    if claim.state == ClaimState.DONE:
        return claim.confirm_due_at
    return None


async def live_claim(session: AsyncSession, request: Request) -> Claim | None:
    if request.claim_id is None:
        return None
    claim = await session.get(Claim, request.claim_id)
    if claim is None or ClaimState(claim.state) not in LIVE_STATES:
        return None
    return claim


async def take(
    session: AsyncSession,
    claim_id: int,
    now: datetime,
    *,
    volunteer_id: int,
    organisation_id: int | None = None,
) -> bool:
    """Claim an offer for a volunteer (or, with `organisation_id`, for their unit through them
    as its contact person). True for the one press that took it; False when it was no longer
    on offer (someone else was first, the holder withdrew it, the need ended)."""
    result = await session.exec(
        update(Claim)
        .where(col(Claim.id) == claim_id, col(Claim.state) == ClaimState.OFFERED.value)
        .values(
            state=ClaimState.CLAIMED.value,
            volunteer_id=volunteer_id,
            organisation_id=organisation_id,
            claimed_at=now,
            next_due_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    taken = result.rowcount == 1  # type: ignore[attr-defined]
    if taken:
        claim = await session.get(Claim, claim_id)
        if claim is not None:
            await session.refresh(claim)
    return taken


def end(claim: Claim, request: Request | None, state: ClaimState, now: datetime) -> None:
    """End a live claim (withdrawn, taken back, released, confirmed, closed); the request no
    longer names it as its live claim."""
    check_move(claim, state)
    claim.state = state.value
    claim.ended_at = now
    if state is ClaimState.CONFIRMED:
        claim.confirmed_at = now
    claim.next_due_at = None
    if request is not None and request.claim_id == claim.id:
        request.claim_id = None


async def held_by(session: AsyncSession, volunteer_id: int) -> list[Claim]:
    """The claims a volunteer holds now (claimed, or reported done and not yet confirmed)."""
    rows = await session.exec(
        select(Claim)
        .where(
            col(Claim.volunteer_id) == volunteer_id,
            col(Claim.state).in_([s.value for s in HELD_STATES]),
        )
        .order_by(col(Claim.id))
    )
    return list(rows.all())


async def release_all_of(
    session: AsyncSession, volunteer: Volunteer, now: datetime
) -> list[tuple[Claim, Request]]:
    """A volunteer who leaves hands back what they hold: each claim is released and its need
    is the holder's alone again (the caller tells the holders). Returns what was released."""
    assert volunteer.id is not None
    released: list[tuple[Claim, Request]] = []
    for claim in await held_by(session, volunteer.id):
        request = await session.get(Request, claim.request_id)
        end(claim, request, ClaimState.RELEASED, now)
        session.add(claim)
        if request is not None:
            session.add(request)
            released.append((claim, request))
            reference = request.reference
            await plain_claimant_card(
                session, claim, now, lambda t, ref=reference: t._(HANDED_BACK, ref=ref)
            )
    return released


HANDED_BACK = N_("👋 {ref}: handed back when you left the volunteers. Thank you for your help.")


async def plain_claimant_card(
    session: AsyncSession, claim: Claim, now: datetime, build: Callable[[Translator], str]
) -> None:
    """The claimant's card of a claim that has ended for them becomes a plain line, in their
    language: no buttons, and no longer the beneficiary's name, place or phone, which they see
    only while they hold the need. A chat that was never sent the card is left alone."""
    if claim.id is None or claim.volunteer_id is None:
        return
    volunteer = await session.get(Volunteer, claim.volunteer_id)
    if volunteer is None or volunteer.account_id is None:
        return
    account = await session.get(Account, volunteer.account_id)
    ref = claim_ref(claim.id)
    if account is None or not await rows_named(session, account.chat_id, ref):
        return
    text = build(translator(account.language))
    await enqueue_edit(session, Outbound(chat_id=account.chat_id, text=text, edit_ref=ref), now)


# Offering ---------------------------------------------------------------------------------

# Claim cards are named "claim:<claim id>" in each volunteer's chat: one message per offer per
# volunteer, edited in place (taken, no longer needed, the claimant's full card).
CLAIM_REF_PREFIX = "claim"


@dataclass(frozen=True, slots=True)
class OfferRules:
    """The district's settings for offers (HUIYIN_OFFER_WIDEN_HOURS, HUIYIN_AUTO_OFFER): how
    long an offer stays with the community's volunteers before the town's get it, and the
    categories offered as soon as a need is routed."""

    widen_after: timedelta = timedelta(hours=24)
    auto_offer: frozenset[str] = DEFAULT_AUTO_OFFER


DEFAULT_OFFER_RULES = OfferRules()


def claim_ref(claim_id: int) -> str:
    return f"{CLAIM_REF_PREFIX}:{claim_id}"


def offerable(category: str) -> bool:
    """Whether a need of this category may be offered to volunteers at all."""
    return category not in NEVER_OFFERED


async def ancestor_at(session: AsyncSession, code: str | None, level: str) -> Unit | None:
    """The unit at `level` on the way up from `code` (itself included), or None."""
    while code is not None:
        unit = await unit_of(session, code)
        if unit is None:
            return None
        if unit.level == level:
            return unit
        code = unit.parent_code
    return None


async def new_offer(
    session: AsyncSession,
    request: Request,
    now: datetime,
    *,
    reach_unit_code: str,
    widen_at: datetime | None,
    staff_id: int | None,
    note: str | None,
) -> Claim:
    """A new offer of the need (state offered), named by the request as its live claim."""
    assert request.id is not None
    claim = Claim(
        request_id=request.id,
        state=ClaimState.OFFERED.value,
        offered_by_staff_id=staff_id,
        note=note,
        offered_at=now,
        reach_unit_code=reach_unit_code,
        widen_at=widen_at,
        next_due_at=widen_at,
    )
    session.add(claim)
    await session.flush()
    request.claim_id = claim.id
    session.add(request)
    return claim


def reach_filter(reach_unit_code: str) -> ColumnElement[bool]:
    """Volunteers serving the reach unit or a unit right inside it (a town's communities)."""
    inside = select(Unit.code).where(Unit.parent_code == reach_unit_code)
    return or_(col(Volunteer.unit_code) == reach_unit_code, col(Volunteer.unit_code).in_(inside))


async def matching_volunteers(
    session: AsyncSession,
    category: str,
    reach_unit_code: str,
    *,
    not_sent: int | None = None,
    exclude_volunteer_ids: tuple[int, ...] = (),
) -> list[tuple[Volunteer, Account]]:
    """The approved volunteers, with an account the bot can write to, who serve the reach unit
    (or, for a town, any community in it) and offer `category`: one query (the volunteers'
    unit and status index). With `not_sent`, those not yet sent that claim's card."""
    query = (
        select(Volunteer, Account)
        .join(Account, col(Account.id) == col(Volunteer.account_id))
        .where(reach_filter(reach_unit_code))
        .where(Volunteer.status == VolunteerStatus.APPROVED.value)
        .where(col(Account.blocked_at).is_(None), col(Account.erased_at).is_(None))
        .where((";" + col(Volunteer.categories) + ";").contains(f";{category};"))
        .order_by(col(Volunteer.id))
    )
    if not_sent is not None:
        sent = select(OutboxMessage.chat_id).where(OutboxMessage.ref_key == claim_ref(not_sent))
        query = query.where(col(Account.chat_id).not_in(sent))
    if exclude_volunteer_ids:
        query = query.where(col(Volunteer.id).not_in(exclude_volunteer_ids))
    rows = await session.exec(query)
    return [(volunteer, account) for volunteer, account in rows.all()]


async def card_chats(session: AsyncSession, claim_id: int) -> list[tuple[int, str]]:
    """Every chat that was sent the claim's card, with its language (zh_CN when unknown)."""
    chats = (
        await session.exec(
            select(OutboxMessage.chat_id)
            .where(OutboxMessage.ref_key == claim_ref(claim_id))
            .distinct()
        )
    ).all()
    if not chats:
        return []
    languages = dict(
        (
            await session.exec(
                select(Account.chat_id, Account.language).where(col(Account.chat_id).in_(chats))
            )
        ).all()
    )
    return [(chat, languages.get(chat, "zh_CN")) for chat in sorted(chats)]


async def edit_cards(
    session: AsyncSession,
    claim_id: int,
    now: datetime,
    build: Callable[[Translator], str],
    *,
    except_chat: int | None = None,
) -> None:
    """Edit every card of the claim to a plain line (no buttons), each in its reader's
    language; `except_chat` keeps one (the claimant's, shown otherwise)."""
    for chat_id, language in await card_chats(session, claim_id):
        if chat_id == except_chat:
            continue
        await enqueue_edit(
            session,
            Outbound(
                chat_id=chat_id, text=build(translator(language)), edit_ref=claim_ref(claim_id)
            ),
            now,
        )


NO_LONGER_NEEDED = N_("📣 {ref}: this need is no longer open. Thank you all the same.")
RESOLVED_WITH_YOUR_WORK = N_(
    "✅ {ref} is resolved with the work you reported: thank you! The resident is asked for "
    "their verdict."
)


async def close_claim_of(session: AsyncSession, request: Request, now: datetime) -> Claim | None:
    """The need ended otherwise (resolved by its holder, cancelled, merged): its live claim
    ends as closed, and every claim card of it, the claimant's too, becomes a plain "no longer
    needed" line (the claimant no longer sees the beneficiary's details). Returns the claim."""
    claim = await live_claim(session, request)
    if claim is None or claim.id is None:
        return None
    reference = request.reference
    if claim.state == ClaimState.DONE and request.status == "resolved":
        # The holder resolved it with the task card's own button after the claimant reported
        # the work done: that is a confirmation, and the verdict will be the claimant's.
        end(claim, request, ClaimState.CONFIRMED, now)
        session.add(claim)
        # Only the claimant's card changes: the others say "taken" already.
        await plain_claimant_card(
            session, claim, now, lambda t: t._(RESOLVED_WITH_YOUR_WORK, ref=reference)
        )
        return claim
    end(claim, request, ClaimState.CLOSED, now)
    session.add(claim)
    await edit_cards(session, claim.id, now, lambda t: t._(NO_LONGER_NEEDED, ref=reference))
    return claim


# The claims' ticks (schedules/offers.py widens offers, schedules/claim_confirm.py confirms
# reported work) ------------------------------------------------------------------------------

DUE_BATCH = 200


async def due_claim_ids(
    db: Database, state: ClaimState, now: datetime, batch: int = DUE_BATCH
) -> AsyncIterator[int]:
    """The ids of the claims in `state` whose `next_due_at` has come, in id order, read a
    bounded batch at a time after the last id given (no list of ids seen grows with the
    backlog). Each batch is read in a session of its own; the caller handles each id in its own
    transaction, through `lock_due_claim`."""
    after = 0
    while True:
        async with db.session() as session:
            due = (
                await session.exec(
                    select(Claim.id)
                    .where(
                        col(Claim.state) == state.value,
                        col(Claim.next_due_at) <= now,
                        col(Claim.id) > after,
                    )
                    .order_by(col(Claim.id))
                    .limit(batch)
                )
            ).all()
        for claim_id in due:
            assert claim_id is not None
            after = claim_id
            yield claim_id
        if len(due) < batch:
            return


async def lock_due_claim(
    session: AsyncSession, claim_id: int, state: ClaimState, now: datetime, *, sqlite: bool
) -> Claim | None:
    """The claim, locked by its primary key (FOR UPDATE SKIP LOCKED on PostgreSQL, SQLite's
    write lock taken first) and read again under the lock: None when another worker, or a tap at
    the same moment, has moved it on since it was found due."""
    if sqlite:
        await session.exec(text("UPDATE claims SET id = id WHERE 0"))  # type: ignore[call-overload]
    return (
        await session.exec(
            select(Claim)
            .where(
                col(Claim.id) == claim_id,
                col(Claim.state) == state.value,
                col(Claim.next_due_at) <= now,
            )
            .with_for_update(skip_locked=True)
        )
    ).first()
