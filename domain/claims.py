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

from datetime import datetime
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Claim, Request, Volunteer


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
    result = await session.execute(
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
    return released
