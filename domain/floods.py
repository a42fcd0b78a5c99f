"""Floods: one person must not be able to bury the staff in messages.

Three defences, each configurable (bot/settings.py, README "Floods"):

- **Per-person limits.** A resident may submit at most `submissions_per_hour` needs in any
  hour (counted from the requests table: every need they reported in the last 60 minutes), and
  have at most `updates_per_minute` messages and button presses taken in one minute (a fixed
  window on their account: `updates_since`, `updates_count`). Over either limit they get one
  polite answer in their language and nothing is acted on; a need over the hourly limit stays
  on the "check your request" step, so what they typed is kept for later. Active staff are not
  limited (a grid member may register needs door to door). 0 turns a limit off.
- **One summary card for a burst.** When a need reaches someone who already holds other needs
  of the same reporter that reached them in the last `burst_window` and are not yet accepted,
  they get (or see updated) one summary card listing them, with a button to open each, instead
  of one more task card (handlers/cards.py). Escalations collapse the same way.
- **Nuisance.** A coordinator (anyone with an area) can mark the reporter of a need as a
  nuisance, and unmark them. A marked person's new needs are not routed: they wait, status
  `new` with no clocks, with the coordinator who marked them (or, if that person cannot be
  reached, a coordinator of the need's community), who passes each on to the normal route or
  closes it with a note. The marks and the screening are on the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.lifecycle import Level
from domain.reach import is_reachable
from domain.routing import Route, route_request
from storage.models import Account, Request, Staff

SUBMISSION_WINDOW = timedelta(hours=1)
UPDATE_WINDOW = timedelta(minutes=1)

# Timeline notes (codes, shown through domain.labels.NOTE_LABELS).
NOTE_SCREEN_HELD = "screen:held"  # the need waits for a coordinator to screen it
NOTE_SCREEN_PASSED = "screen:passed"  # the coordinator passed it on to the normal route
NOTE_SCREEN_CLOSED = "screen:closed"  # the coordinator closed it with a note
NOTE_NUISANCE_ON = "nuisance:on"
NOTE_NUISANCE_OFF = "nuisance:off"
# A reminder not sent on its own: the need is in a burst's summary card (handlers.cards).
NOTE_IN_SUMMARY = "burst:summary"


@dataclass(frozen=True, slots=True)
class Limits:
    """The flood limits in force (from the settings); 0 or a zero window turns one off."""

    submissions_per_hour: int = 0
    updates_per_minute: int = 0
    burst_window: timedelta = timedelta(0)


NO_LIMITS = Limits()
DEFAULT_LIMITS = Limits(
    submissions_per_hour=5, updates_per_minute=30, burst_window=timedelta(minutes=30)
)


@dataclass(frozen=True, slots=True)
class Count:
    """One update counted: how many this minute, and whether it is over the limit."""

    count: int
    over: bool
    # The first update over the limit this minute: the one that gets the polite answer.
    first_over: bool


async def count_update(
    session: AsyncSession, account: Account, now: datetime, limit: int
) -> Count | None:
    """Count one update from `account` in its current minute (one atomic UPDATE, so two
    replicas taking the same person's updates at once both count); None with no limit."""
    if limit <= 0 or account.id is None:
        return None
    fresh = col(Account.updates_since).is_(None) | (
        col(Account.updates_since) <= now - UPDATE_WINDOW
    )
    await session.exec(
        update(Account)
        .where(col(Account.id) == account.id)
        .values(
            updates_count=case((fresh, 1), else_=col(Account.updates_count) + 1),
            updates_since=case((fresh, now), else_=col(Account.updates_since)),
        )
        .execution_options(synchronize_session=False)
    )  # type: ignore[call-overload]
    count = (
        await session.exec(select(Account.updates_count).where(col(Account.id) == account.id))
    ).one()
    await session.refresh(account, ["updates_count", "updates_since"])
    return Count(count=count, over=count > limit, first_over=count == limit + 1)


def update_window_ends(account: Account) -> datetime | None:
    return account.updates_since + UPDATE_WINDOW if account.updates_since else None


async def submissions_since(session: AsyncSession, account_id: int, since: datetime) -> int:
    rows = await session.exec(
        select(func.count())
        .select_from(Request)
        .where(col(Request.reporter_account_id) == account_id)
        .where(col(Request.created_at) > since)
    )
    return int(rows.one())


async def next_submission_at(
    session: AsyncSession, account: Account, now: datetime, limit: int
) -> datetime | None:
    """None if `account` may submit a need now; else when the oldest need of the last hour
    leaves the window (and one more may be submitted)."""
    if limit <= 0 or account.id is None:
        return None
    since = now - SUBMISSION_WINDOW
    if await submissions_since(session, account.id, since) < limit:
        return None
    rows = await session.exec(
        select(Request.created_at)
        .where(col(Request.reporter_account_id) == account.id)
        .where(col(Request.created_at) > since)
        .order_by(col(Request.created_at).desc())
        .offset(limit - 1)
        .limit(1)
    )
    oldest_counted = rows.first()
    free_at = (oldest_counted or now) + SUBMISSION_WINDOW
    # To the next whole minute, as the resident is told the time in minutes.
    rounded = free_at.replace(second=0, microsecond=0)
    return rounded if rounded == free_at else rounded + timedelta(minutes=1)


# Nuisance ------------------------------------------------------------------------------------


def is_nuisance(account: Account | None) -> bool:
    return account is not None and account.nuisance_at is not None


def mark_nuisance(account: Account, staff: Staff, now: datetime) -> None:
    account.nuisance_at = now
    account.nuisance_by_staff_id = staff.id


def unmark_nuisance(account: Account) -> None:
    account.nuisance_at = None
    account.nuisance_by_staff_id = None


async def screener_for(session: AsyncSession, reporter: Account, grid_code: str) -> Route | None:
    """Who screens a marked person's need: the one who marked them, if still active and
    reachable; else a coordinator over the need's grid (or the first level above with someone
    reachable); None if no one at all can be reached."""
    if reporter.nuisance_by_staff_id is not None:
        marker = await session.get(Staff, reporter.nuisance_by_staff_id)
        if marker is not None and marker.active and is_reachable(marker):
            return Route(staff=marker, level=level_of_role(marker.role))
    return await route_request(session, grid_code, "other", start_level=Level.COMMUNITY)


def level_of_role(role: str) -> Level:
    return {
        "grid_member": Level.GRID,
        "coordinator": Level.COMMUNITY,
        "town_officer": Level.TOWN,
        "department": Level.DEPARTMENT,
    }.get(role, Level.DISTRICT)
