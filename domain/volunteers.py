"""Volunteers and the units that claim as a body: the words the rules store.

/volunteer or /start v_<community> ──► pending ──approve (coordinator, one tap)──► approved
                                          └─decline──► declined
approved ◄──resume── paused ;  approved | paused ──leave──► left (hands back its claims)
roster import (volunteers.csv) ──► approved, bound to an account by phone when they join
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.catalog import CATEGORY_BY_CODE
from domain.i18n import N_
from domain.reach import reachable_clause
from storage.models import Account, Organisation, Staff, Unit, Volunteer


class VolunteerStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    PAUSED = "paused"
    LEFT = "left"


class OrganisationKind(StrEnum):
    DEPARTMENT = "department"  # a district department (its cadres claim; the body claims)
    ENTERPRISE = "enterprise"
    SOCIAL = "social"  # a social organisation


# Categories an offer never goes out for: a safety hazard is staff's own work.
NEVER_OFFERED: frozenset[str] = frozenset({"safety"})
# Categories offered to volunteers as soon as a need is routed, unless settings say otherwise.
DEFAULT_AUTO_OFFER: frozenset[str] = frozenset({"companionship", "errand"})
VOLUNTEER_LINK_PREFIX = "v_"


def offers(volunteer: Volunteer, category: str) -> bool:
    """Whether a volunteer gets claim cards for a category: approved, and offering it."""
    return volunteer.status == VolunteerStatus.APPROVED and category in volunteer.category_list


def valid_categories(codes: list[str]) -> list[str]:
    return [c for c in codes if c in CATEGORY_BY_CODE and c not in NEVER_OFFERED]


# Kinds of organisation, in words (the roster's `kind` column takes the codes).
KIND_LABELS: dict[str, str] = {
    OrganisationKind.DEPARTMENT: N_("department"),
    OrganisationKind.ENTERPRISE: N_("enterprise"),
    OrganisationKind.SOCIAL: N_("social organisation"),
}
STATUS_LABELS: dict[str, str] = {
    VolunteerStatus.PENDING: N_("waiting for approval"),
    VolunteerStatus.APPROVED: N_("approved"),
    VolunteerStatus.DECLINED: N_("declined"),
    VolunteerStatus.PAUSED: N_("paused"),
    VolunteerStatus.LEFT: N_("left"),
}
# What a volunteer may do to their own profile, and from which statuses.
MOVES: dict[VolunteerStatus, frozenset[VolunteerStatus]] = {
    VolunteerStatus.PAUSED: frozenset({VolunteerStatus.APPROVED}),
    VolunteerStatus.APPROVED: frozenset({VolunteerStatus.PAUSED}),
    VolunteerStatus.LEFT: frozenset(
        {VolunteerStatus.APPROVED, VolunteerStatus.PAUSED, VolunteerStatus.PENDING}
    ),
}
# Listed first by /volunteers: who waits for a decision.
STATUS_ORDER: tuple[VolunteerStatus, ...] = (
    VolunteerStatus.PENDING,
    VolunteerStatus.APPROVED,
    VolunteerStatus.PAUSED,
    VolunteerStatus.DECLINED,
    VolunteerStatus.LEFT,
)


async def volunteer_of(session: AsyncSession, account_id: int | None) -> Volunteer | None:
    if account_id is None:
        return None
    rows = await session.exec(select(Volunteer).where(Volunteer.account_id == account_id))
    return rows.first()


def move(volunteer: Volunteer, to: VolunteerStatus, now: datetime) -> bool:
    """Pause, resume or leave; False (nothing changed) when the profile is not in a status
    that allows it (a second tap, a stale button)."""
    if volunteer.status not in MOVES[to]:
        return False
    volunteer.status = to.value
    if to is VolunteerStatus.PAUSED:
        volunteer.paused_at = now
    elif to is VolunteerStatus.APPROVED:
        volunteer.paused_at = None
    else:
        volunteer.left_at = now
    return True


async def decide(
    session: AsyncSession, volunteer_id: int, approve: bool, staff_id: int, now: datetime
) -> bool:
    """Approve or decline an application: one conditional UPDATE, so of two coordinators
    tapping at once exactly one decides. True for the tap that decided."""
    status = VolunteerStatus.APPROVED if approve else VolunteerStatus.DECLINED
    result = await session.exec(
        update(Volunteer)
        .where(
            col(Volunteer.id) == volunteer_id,
            col(Volunteer.status) == VolunteerStatus.PENDING.value,
        )
        .values(status=status.value, decided_at=now, decided_by_staff_id=staff_id)
        .execution_options(synchronize_session=False)
    )  # type: ignore[call-overload]
    decided = result.rowcount == 1  # type: ignore[attr-defined]
    if decided:
        volunteer = await session.get(Volunteer, volunteer_id)
        if volunteer is not None:
            await session.refresh(volunteer)
    return decided


async def deciders(session: AsyncSession, unit_code: str) -> list[Staff]:
    """Who approves a volunteer of `unit_code` (报到审核): the community's reachable
    coordinators; if none can be reached, the reachable officers of its town (a volunteer
    serving a town goes to the town's officers)."""
    unit = await session.get(Unit, unit_code)
    if unit is None:
        return []
    asked: list[tuple[str, str]] = []
    if unit.level == "community":
        asked.append(("coordinator", unit.code))
        if unit.parent_code:
            asked.append(("town_officer", unit.parent_code))
    elif unit.level == "town":
        asked.append(("town_officer", unit.code))
    for role, code in asked:
        rows = await session.exec(
            select(Staff)
            .where(Staff.role == role, Staff.unit_code == code, col(Staff.active).is_(True))
            .where(reachable_clause())
            .order_by(col(Staff.id))
        )
        found = list(rows.all())
        if found:
            return found
    return []


async def may_decide(session: AsyncSession, staff: Staff | None, volunteer: Volunteer) -> bool:
    """Whether `staff` oversees the volunteer's community or town: its coordinator, the town's
    officer, or the district admin."""
    if staff is None or not staff.active:
        return False
    if staff.role == "admin":
        return True
    if staff.role == "coordinator":
        return volunteer.unit_code == staff.unit_code
    if staff.role == "town_officer":
        if volunteer.unit_code == staff.unit_code:
            return True
        unit = await session.get(Unit, volunteer.unit_code)
        return unit is not None and unit.parent_code == staff.unit_code
    return False


async def served_units(session: AsyncSession, staff: Staff | None) -> list[str] | None:
    """The communities and town whose volunteers `staff` sees in /volunteers: a coordinator's
    community; a town officer's town and its communities; None for the admin (all); [] for
    anyone else."""
    if staff is None or not staff.active:
        return []
    if staff.role == "admin":
        return None
    if staff.role == "coordinator":
        return [staff.unit_code]
    if staff.role == "town_officer":
        rows = await session.exec(
            select(Unit.code).where(Unit.parent_code == staff.unit_code, Unit.level == "community")
        )
        return [staff.unit_code, *sorted(rows.all())]
    return []


async def organisations_for(session: AsyncSession, unit_code: str) -> list[Organisation]:
    """The organisations a volunteer of `unit_code` may come from: those of the community, of
    its town, and those of the whole district."""
    codes = [unit_code]
    unit = await session.get(Unit, unit_code)
    if unit is not None and unit.level == "community" and unit.parent_code:
        codes.append(unit.parent_code)
    rows = await session.exec(
        select(Organisation)
        .where(col(Organisation.unit_code).in_(codes) | col(Organisation.unit_code).is_(None))
        .order_by(col(Organisation.name), col(Organisation.id))
    )
    return list(rows.all())


async def bind_waiting(
    session: AsyncSession, account: Account, phones: list[str] | None = None
) -> Volunteer | None:
    """An imported volunteer (no account yet) whose phone is one of `phones`, or whose Telegram
    id is the account's, is now this account's; None when there is none, or when the account
    has a profile already."""
    if account.id is None or await volunteer_of(session, account.id) is not None:
        return None
    match = col(Volunteer.telegram_id) == account.telegram_id
    if phones:
        match = match | col(Volunteer.phone).in_(phones)
    rows = await session.exec(
        select(Volunteer).where(col(Volunteer.account_id).is_(None)).where(match)
    )
    volunteer = rows.first()
    if volunteer is None:
        return None
    volunteer.account_id = account.id
    volunteer.telegram_id = account.telegram_id
    session.add(volunteer)
    return volunteer
