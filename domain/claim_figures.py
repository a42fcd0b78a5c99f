"""The claimants' record (认领考核): what each volunteer and each unit claimed, did, the hours
they gave and the residents' verdicts on it — for `/mine`, `/stats`, the ledger's "Volunteers"
sheet (UNCLAIMED_AFTER: when the morning digest names an offer nobody claimed). Defined in
docs/metrics.md ("Claimed needs").

For a set of claims (a volunteer's, or those claimed in a period on needs of an area):

    claims     claimed (a claimant took the offer), whatever happened after
    done       of those, confirmed (by the holder, or after HUIYIN_CLAIM_CONFIRM_HOURS)
    hours      the hours given on the confirmed ones (when the volunteer said)
    rated      of the confirmed ones, those with the resident's verdict
    satisfied  of the rated, 满意 or 基本满意
    satisfaction rate = satisfied ÷ rated

A claim in a unit's name counts for the unit, not for its contact person; `/mine` shows a
volunteer every claim they made, their unit's included. The verdict is copied onto the claim
that resolved the need when it is given (`credit_verdict`), and the claimant is told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claims import ClaimState
from domain.i18n import N_, translator
from domain.messages import Outbound
from domain.outbox import enqueue
from domain.reach import account_reachable
from storage.models import Account, Claim, Organisation, Request, Volunteer

SATISFIED_VALUES = ("satisfied", "fairly")
# An offer nobody has claimed for this long is named in the morning digest.
UNCLAIMED_AFTER = timedelta(days=1)

VERDICT_TOLD: dict[str, str] = {
    "satisfied": N_(
        "🌟 The resident's verdict on {ref}: solved, and they were satisfied. Thank you!"
    ),
    "fairly": N_("🙂 The resident's verdict on {ref}: fairly satisfied. Thank you!"),
    "not_satisfied": N_(
        "😞 The resident's verdict on {ref}: not satisfied; it goes back to the staff to see to."
    ),
}
NOT_SOLVED_TOLD = N_(
    "😞 The resident's verdict on {ref}: not solved; it goes back to the staff to see to."
)


@dataclass(frozen=True, slots=True)
class Record:
    claims: int = 0
    done: int = 0
    hours: float = 0.0
    rated: int = 0
    satisfied: int = 0

    @property
    def satisfaction_rate(self) -> float:
        return self.satisfied / self.rated if self.rated else 0.0


@dataclass(frozen=True, slots=True)
class ClaimantRow:
    """One line of the area's figures: a volunteer (`kind` "volunteer") or a unit ("unit")."""

    kind: str
    name: str
    unit_code: str  # where the volunteer serves, or the unit's area ("" for the district)
    party_member: bool
    record: Record


def _tallies() -> list[Any]:
    confirmed = col(Claim.state) == ClaimState.CONFIRMED.value
    return [
        func.count(),
        func.sum(case((confirmed, 1), else_=0)),
        func.sum(case((confirmed, func.coalesce(col(Claim.hours), 0.0)), else_=0.0)),
        func.sum(case((and_(confirmed, col(Claim.satisfaction).is_not(None)), 1), else_=0)),
        func.sum(
            case((and_(confirmed, col(Claim.satisfaction).in_(SATISFIED_VALUES)), 1), else_=0)
        ),
    ]


def _record(row: Sequence[Any]) -> Record:
    claims, done, hours, rated, satisfied = row
    return Record(
        claims=int(claims or 0),
        done=int(done or 0),
        hours=float(hours or 0.0),
        rated=int(rated or 0),
        satisfied=int(satisfied or 0),
    )


async def record_of(session: AsyncSession, volunteer_id: int) -> Record:
    """Every claim a volunteer made (their unit's included), all time."""
    row = (
        await session.exec(
            select(*_tallies()).where(  # type: ignore[call-overload]
                col(Claim.volunteer_id) == volunteer_id, col(Claim.claimed_at).is_not(None)
            )
        )
    ).one()
    return _record(row)


async def claims_done_by(
    session: AsyncSession, volunteer_id: int, *, limit: int
) -> list[tuple[Claim, Request]]:
    """What a volunteer did: their confirmed claims, the latest first."""
    rows = await session.exec(
        select(Claim, Request)
        .join(Request, col(Request.id) == col(Claim.request_id))
        .where(
            col(Claim.volunteer_id) == volunteer_id,
            col(Claim.state) == ClaimState.CONFIRMED.value,
        )
        .order_by(col(Claim.confirmed_at).desc(), col(Claim.id).desc())
        .limit(limit)
    )
    return [(claim, request) for claim, request in rows.all()]


async def area_figures(
    session: AsyncSession, where: ColumnElement[bool], start: datetime, end: datetime
) -> tuple[Record, list[ClaimantRow]]:
    """The claims made in [start, end) on the needs `where` selects (an area's clause on
    `requests`): the totals, and a row per volunteer and per unit, most done first."""
    rows = (
        await session.exec(
            select(col(Claim.volunteer_id), col(Claim.organisation_id), *_tallies())  # type: ignore[call-overload]
            .join(Request, col(Request.id) == col(Claim.request_id))
            .where(
                where,
                col(Claim.claimed_at) >= start,
                col(Claim.claimed_at) < end,
            )
            .group_by(col(Claim.volunteer_id), col(Claim.organisation_id))
        )
    ).all()
    by_volunteer: dict[int, Record] = {}
    by_unit: dict[int, Record] = {}
    total = Record()
    for volunteer_id, organisation_id, *tallies in rows:
        record = _record(tallies)
        total = _add(total, record)
        if organisation_id is not None:
            by_unit[organisation_id] = _add(by_unit.get(organisation_id, Record()), record)
        elif volunteer_id is not None:
            by_volunteer[volunteer_id] = _add(by_volunteer.get(volunteer_id, Record()), record)
    result: list[ClaimantRow] = []
    if by_volunteer:
        volunteers = await session.exec(
            select(Volunteer).where(col(Volunteer.id).in_(sorted(by_volunteer)))
        )
        for volunteer in volunteers.all():
            assert volunteer.id is not None
            result.append(
                ClaimantRow(
                    "volunteer",
                    volunteer.name,
                    volunteer.unit_code,
                    volunteer.party_member,
                    by_volunteer[volunteer.id],
                )
            )
    if by_unit:
        units = await session.exec(
            select(Organisation).where(col(Organisation.id).in_(sorted(by_unit)))
        )
        for unit in units.all():
            assert unit.id is not None
            result.append(
                ClaimantRow("unit", unit.name, unit.unit_code or "", False, by_unit[unit.id])
            )
    result.sort(key=lambda r: (-r.record.done, -r.record.claims, r.kind, r.name))
    return total, result


def _add(a: Record, b: Record) -> Record:
    return Record(
        a.claims + b.claims,
        a.done + b.done,
        a.hours + b.hours,
        a.rated + b.rated,
        a.satisfied + b.satisfied,
    )


async def credit_verdict(
    session: AsyncSession, request: Request, now: datetime, *, solved: bool, satisfaction: str
) -> Claim | None:
    """The resident's verdict on a need resolved through a claim is the claimant's: kept on the
    claim (the latest confirmed one not yet rated) and told to the volunteer. None when the
    need was not resolved through a claim."""
    claim = (
        await session.exec(
            select(Claim)
            .where(
                col(Claim.request_id) == request.id,
                col(Claim.state) == ClaimState.CONFIRMED.value,
                col(Claim.rated_at).is_(None),
            )
            .order_by(col(Claim.id).desc())
            .limit(1)
        )
    ).first()
    if claim is None:
        return None
    claim.solved = solved
    claim.satisfaction = satisfaction
    claim.rated_at = now
    session.add(claim)
    volunteer = await session.get(Volunteer, claim.volunteer_id) if claim.volunteer_id else None
    account = (
        await session.get(Account, volunteer.account_id)
        if volunteer is not None and volunteer.account_id is not None
        else None
    )
    if account is not None and account_reachable(account):
        t = translator(account.language)
        said = VERDICT_TOLD.get(satisfaction, NOT_SOLVED_TOLD) if solved else NOT_SOLVED_TOLD
        enqueue(
            session,
            Outbound(chat_id=account.chat_id, text=t._(said, ref=request.reference)),
            now,
        )
    return claim
