"""Shared needs (共性需求): one open need of a village that several residents have.

    report: category ──► the village's open needs in it (the 3 newest) ──► "➕ Me too"
                                    │                                      └─► a supporter
                                    └─ "No, mine is different" (or just describe it) ──► describe
    staff:  /shared HY000123 (or 🤝 on /status) ──► marked shared (`shared_at`, a SHARE event)
            /merge HY000124 HY000123 ──► the duplicate is merged (its status "merged",
                 `merged_into_id`), its reporter (and supporters) support the target instead,
                 a MERGED_IN event on the target; both timelines are kept

A supporter (`supporters` row) is a resident account and the beneficiary they speak for (a
family member may say "me too" for a parent): one per need per beneficiary, by a unique index.
They are told of every step the reporter is told of, and asked for their own verdict when the
need is resolved; the need's own verdict stays the reporter's. `requests.supporter_count`
counts them, so cards, lists and figures need no join.

The village of a need is the community above its grid. The look-up reads the village's grids
(`units.parent_code`, indexed) and their open requests of the category through
`ix_requests_grid_category_status` (migration 19d): a handful of rows in a district of 651
villages, never a scan of the district nor of the village's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claims import ClaimState, end, live_claim
from domain.lifecycle import OPEN_STATUSES, Action
from domain.requests import note_event, transition
from storage.models import Account, Beneficiary, Request, Supporter, Unit
from storage.roster_cache import unit_of

SIMILAR_SHOWN = 3  # open needs offered before a resident describes theirs
SNIPPET = 60  # characters of each one's description
OPEN_VALUES = sorted(s.value for s in OPEN_STATUSES)


async def village_of(session: AsyncSession, grid_code: str) -> str:
    """The community (village) above a grid; the grid itself when it has no parent."""
    unit = await unit_of(session, grid_code)  # the roster cache: no statement
    return unit.parent_code if unit is not None and unit.parent_code else grid_code


async def similar_open(
    session: AsyncSession, beneficiary: Beneficiary, category: str, limit: int = SIMILAR_SHOWN
) -> list[Request]:
    """The newest open needs of `category` in the beneficiary's village that the beneficiary
    neither reported nor already supports (not merged ones). One query."""
    village = await village_of(session, beneficiary.grid_code)
    grids = select(Unit.code).where(or_(Unit.parent_code == village, Unit.code == village))
    supported = exists().where(
        col(Supporter.request_id) == col(Request.id),
        col(Supporter.beneficiary_id) == beneficiary.id,
    )
    rows = await session.exec(
        select(Request)
        .where(
            col(Request.grid_code).in_(grids),
            Request.category == category,
            col(Request.status).in_(OPEN_VALUES),
            col(Request.merged_into_id).is_(None),
            Request.beneficiary_id != beneficiary.id,
            ~supported,
        )
        .order_by(col(Request.created_at).desc(), col(Request.id).desc())
        .limit(limit)
    )
    return list(rows.all())


async def in_village_of(session: AsyncSession, request: Request, beneficiary: Beneficiary) -> bool:
    return await village_of(session, request.grid_code) == await village_of(
        session, beneficiary.grid_code
    )


def snippet(request: Request) -> str:
    text = request.description[:SNIPPET]
    return text + "…" if len(request.description) > SNIPPET else text


async def supporter_of(
    session: AsyncSession, request_id: int, beneficiary_id: int
) -> Supporter | None:
    return (
        await session.exec(
            select(Supporter).where(
                Supporter.request_id == request_id, Supporter.beneficiary_id == beneficiary_id
            )
        )
    ).first()


async def add_supporter(
    session: AsyncSession,
    request: Request,
    account: Account,
    beneficiary: Beneficiary,
    now: datetime,
    *,
    event: bool = True,
) -> Supporter | None:
    """Add `beneficiary` (spoken for by `account`) as a supporter of `request`; None when they
    already are one, or the need is their own. The caller holds the request's row lock, so two
    taps at once add one row (and the unique index stands behind that)."""
    assert request.id is not None and account.id is not None and beneficiary.id is not None
    if request.beneficiary_id == beneficiary.id:
        return None
    if await supporter_of(session, request.id, beneficiary.id) is not None:
        return None
    supporter = Supporter(
        request_id=request.id,
        account_id=account.id,
        beneficiary_id=beneficiary.id,
        created_at=now,
    )
    session.add(supporter)
    request.supporter_count += 1
    request.updated_at = now
    session.add(request)
    if event:
        note_event(session, request, Action.SUPPORT, now, actor_account_id=account.id)
    await session.flush()
    return supporter


async def supporters_of(session: AsyncSession, request_id: int) -> list[Supporter]:
    rows = await session.exec(
        select(Supporter).where(Supporter.request_id == request_id).order_by(col(Supporter.id))
    )
    return list(rows.all())


async def supporter_accounts(session: AsyncSession, request: Request) -> list[Account]:
    """The accounts that support `request` (each once), not erased; whether Telegram still
    takes messages to them is the caller's to check."""
    if request.id is None or not request.supporter_count:
        return []
    rows = await session.exec(
        select(Account)
        .join(Supporter, col(Supporter.account_id) == col(Account.id))
        .where(Supporter.request_id == request.id, col(Account.erased_at).is_(None))
        .order_by(col(Supporter.id))
    )
    seen: set[int] = set()
    people: list[Account] = []
    for account in rows.all():
        if account.id is not None and account.id not in seen:
            seen.add(account.id)
            people.append(account)
    return people


async def share(session: AsyncSession, request: Request, now: datetime, staff_id: int) -> bool:
    """Mark an open need shared (共性需求); False when it is already, or no longer open."""
    if request.shared_at is not None or request.status not in OPEN_VALUES:
        return False
    request.shared_at = now
    request.updated_at = now
    session.add(request)
    note_event(session, request, Action.SHARE, now, actor_staff_id=staff_id)
    return True


class MergeRefused(Exception):
    """Why a merge cannot be done: "same", "duplicate_not_open", "target_not_open"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Merged:
    duplicate: Request
    target: Request
    # The duplicate's reporter as a supporter of the target (None: theirs is the same
    # beneficiary as the target's, or they already supported it).
    supporter: Supporter | None
    moved: list[Supporter] = field(default_factory=list)


async def merge(
    session: AsyncSession, duplicate: Request, target: Request, now: datetime, staff_id: int
) -> Merged:
    """Merge `duplicate` into `target`: the duplicate's status becomes "merged" (its timeline
    kept), its reporter and its supporters support the target instead, and the target's
    timeline says so. Both rows locked by the caller."""
    if duplicate.id == target.id:
        raise MergeRefused("same")
    if duplicate.status not in OPEN_VALUES or duplicate.merged_into_id is not None:
        raise MergeRefused("duplicate_not_open")
    if target.status not in OPEN_VALUES or target.merged_into_id is not None:
        raise MergeRefused("target_not_open")
    assert duplicate.id is not None and target.id is not None
    await transition(
        session, duplicate, Action.MERGE, now, actor_staff_id=staff_id, note=target.reference
    )
    duplicate.merged_into_id = target.id
    claim = await live_claim(session, duplicate)
    if claim is not None:
        end(claim, duplicate, ClaimState.CLOSED, now)
        session.add(claim)
    reporter = await session.get(Account, duplicate.reporter_account_id)
    beneficiary = await session.get(Beneficiary, duplicate.beneficiary_id)
    supporter = None
    if reporter is not None and beneficiary is not None:
        supporter = await add_supporter(session, target, reporter, beneficiary, now, event=False)
    moved: list[Supporter] = []
    for row in await supporters_of(session, duplicate.id):
        if row.beneficiary_id == target.beneficiary_id or await supporter_of(
            session, target.id, row.beneficiary_id
        ):
            continue
        row.request_id = target.id
        session.add(row)
        moved.append(row)
        duplicate.supporter_count -= 1
        target.supporter_count += 1
        await session.flush()
    session.add(duplicate)
    session.add(target)
    note_event(
        session, target, Action.MERGED_IN, now, actor_staff_id=staff_id, note=duplicate.reference
    )
    await session.flush()
    return Merged(duplicate, target, supporter, moved)


# Figures -------------------------------------------------------------------------------------


def is_shared() -> ColumnElement[bool]:
    """A shared need: marked by staff, or with supporters."""
    return or_(col(Request.shared_at).is_not(None), col(Request.supporter_count) > 0)


async def shared_figures(
    session: AsyncSession, where: ColumnElement[bool], start: datetime, end_: datetime
) -> tuple[int, int]:
    """How many needs received in [start, end) under `where` are shared, and how many
    supporters they have."""
    row = (
        await session.exec(
            select(
                func.count(col(Request.id)), func.coalesce(func.sum(Request.supporter_count), 0)
            ).where(
                where,
                and_(col(Request.created_at) >= start, col(Request.created_at) < end_),
                is_shared(),
            )
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0)
