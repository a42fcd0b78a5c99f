"""The figures of a set of requests, and the three rates of the resident's verdict (响应率、解决率、
满意率), counted in SQL.

Every figure is a count of requests meeting one condition; the conditions are the SQL
expressions below, and `tally` sums them in one aggregate query (optionally GROUP BY), so a
month of a whole district is counted by the database, not by loading its rows. `Rates` turns
the counts into the three rates. The formulas, with their edge cases, are in docs/metrics.md;
this module is the one place they are computed, so every report (chat, chart, export) agrees.

`responded_in_time` is the response condition for one request already loaded (the ledger marks
each row with it); tests/test_metrics.py checks it agrees with the SQL condition row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, case, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.lifecycle import OPEN_STATUSES, Status
from domain.verdicts import FAIRLY, SATISFIED
from storage.models import Request

# Withdrawn and duplicate requests are not counted as received.
NOT_COUNTED = frozenset({Status.CANCELLED.value, Status.MERGED.value})
DONE = frozenset({Status.RESOLVED.value, Status.CLOSED.value})
OPEN = frozenset(status.value for status in OPEN_STATUSES)
SATISFIED_ANSWERS = (SATISFIED, FAIRLY)


@dataclass(frozen=True, slots=True)
class Rates:
    received: int
    responded: int  # first accepted by the first holder's accept deadline
    resolved: int  # resolved or closed now (a reopened request counts again once resolved)
    rated: int  # a satisfaction was given (by the resident, or recorded by staff); not "not rated"
    satisfied: int  # satisfied or fairly satisfied

    @property
    def response(self) -> float | None:
        return self.responded / self.received if self.received else None

    @property
    def resolution(self) -> float | None:
        return self.resolved / self.received if self.received else None

    @property
    def satisfaction(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None


@dataclass(frozen=True, slots=True)
class Counts:
    """How many requests of a set meet each condition of `conditions` (docs/metrics.md)."""

    received: int = 0
    accepted: int = 0
    responded: int = 0
    resolved: int = 0
    closed: int = 0
    open: int = 0
    overdue: int = 0
    rated: int = 0
    satisfied: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Counts)))

    @property
    def rates(self) -> Rates:
        return Rates(self.received, self.responded, self.resolved, self.rated, self.satisfied)


def responded_in_time(request: Request) -> bool:
    """The response condition for one loaded request (the SQL one is in `conditions`)."""
    return (
        request.responded_at is not None
        and request.respond_by is not None
        and request.responded_at <= request.respond_by
    )


def overdue_since(now: datetime) -> ColumnElement[datetime | None]:
    """Since when an open request has been overdue (None: it is not), as an SQL expression.

    The earliest of: the first deadline this round of work missed (`Request.overdue_since`,
    kept through escalations); the first holder's accept deadline, passed and never accepted
    (a request nobody could take has no clocks of its own); the holder's running deadline,
    passed but not yet seen by the sweep. Each later candidate can only be later than the one
    before it, so the first that is set is the earliest.
    """
    running = col(Request.paused_at).is_(None)
    running_due = func.coalesce(col(Request.accept_due_at), col(Request.resolve_due_at))
    return case(
        (col(Request.status).not_in(sorted(OPEN)), None),
        (col(Request.overdue_since).is_not(None), col(Request.overdue_since)),
        (
            and_(col(Request.responded_at).is_(None), col(Request.respond_by) <= now),
            col(Request.respond_by),
        ),
        (and_(running, running_due <= now), running_due),
        else_=None,
    )


def conditions(now: datetime) -> dict[str, ColumnElement[bool]]:
    """Each figure of `Counts` as a condition on one row of `requests`; `now` decides overdue."""
    received = col(Request.status).not_in(sorted(NOT_COUNTED))
    is_open = col(Request.status).in_(sorted(OPEN))
    rated = col(Request.satisfaction).is_not(None)
    return {
        "received": received,
        "accepted": and_(received, col(Request.responded_at).is_not(None)),
        "responded": and_(
            received,
            col(Request.responded_at).is_not(None),
            col(Request.respond_by).is_not(None),
            col(Request.responded_at) <= col(Request.respond_by),
        ),
        "resolved": col(Request.status).in_(sorted(DONE)),
        "closed": col(Request.status) == Status.CLOSED.value,
        "open": is_open,
        "overdue": overdue_since(now).is_not(None),
        "rated": and_(received, rated),
        "satisfied": and_(received, col(Request.satisfaction).in_(SATISFIED_ANSWERS)),
    }


def _sum(condition: ColumnElement[bool], name: str) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer).label(name)


async def tally(
    session: AsyncSession,
    where: ColumnElement[bool],
    now: datetime,
    group_by: Sequence[Any] = (),
) -> dict[tuple[Any, ...], Counts]:
    """The counts of the requests matching `where`, per value of the `group_by` expressions
    (one aggregate query); without `group_by`, one entry keyed `()`. Groups with no request
    are absent."""
    measured = conditions(now)
    keys = [expression.label(f"key{i}") for i, expression in enumerate(group_by)]
    statement = select(*keys, *(_sum(measured[f.name], f.name) for f in fields(Counts))).where(
        where
    )
    if keys:
        statement = statement.group_by(*(key.element for key in keys))
    rows = (await session.exec(statement)).all()  # type: ignore[call-overload]
    result: dict[tuple[Any, ...], Counts] = {}
    for row in rows:
        values = tuple(row)
        key, numbers = values[: len(keys)], values[len(keys) :]
        if not keys and not any(numbers):
            continue
        result[tuple(key)] = Counts(*(int(n) for n in numbers))
    return result


async def rates(session: AsyncSession, where: ColumnElement[bool], now: datetime) -> Rates:
    """The three rates of the requests matching `where`."""
    return (await tally(session, where, now)).get((), Counts()).rates
