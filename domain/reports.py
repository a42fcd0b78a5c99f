"""The figures of an area for a period (/stats, the chart, the .xlsx export), built in SQL.

The cohort is the requests received (`created_at`) in the period within the area; every
figure is a count over that cohort, defined in docs/metrics.md and counted by
`domain.metrics.tally`. A report takes two aggregate queries whatever the number of
requests: one GROUP BY grid and category (folded here into the total, the parts one level
down and the categories), one GROUP BY quarter hour for the requests per day.

Days are the district's local days. SQLite has no time zone database, so both backends count
per quarter hour of UTC time (every time zone's offset is a whole number of quarter hours) and
the quarter hours are folded into local days here, with the zone's own rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import Area
from domain.catalog import CATEGORIES
from domain.metrics import Counts, Rates, conditions, tally
from storage.models import Request

SLOT_SECONDS = 15 * 60
MONTH = re.compile(r"(\d{4})-(\d{1,2})")
TODAY_WORDS = frozenset({"today", "今天", "今日"})
WEEK_WORDS = frozenset({"week", "本周", "这周"})
MONTH_WORDS = frozenset({"", "month", "本月", "这个月"})


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # aware, inclusive (local midnight of the first day, as UTC)
    end: datetime  # aware, exclusive
    label: str  # "2026-11", "2026-11-30", "2026-11-23 – 2026-11-29"

    def days(self, zone: ZoneInfo) -> list[date]:
        """Every local day the period touches, in order."""
        first = self.start.astimezone(zone).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def parse_period(text: str, now: datetime, zone: ZoneInfo) -> Period | None:
    """ "today" | "week" (this ISO week so far) | "month" (this month so far) | "YYYY-MM";
    "" means "month"; anything else None. Chinese words 今天/本周/本月 accepted too.

    A period ends with today at the latest: a month not yet begun is None."""
    word = text.strip().lower()
    today = now.astimezone(zone).date()
    tomorrow = local_midnight(today + timedelta(days=1), zone)
    if word in TODAY_WORDS:
        return Period(local_midnight(today, zone), tomorrow, today.isoformat())
    if word in WEEK_WORDS:
        monday = today - timedelta(days=today.weekday())
        return Period(local_midnight(monday, zone), tomorrow, f"{monday} – {today}")
    if word in MONTH_WORDS:
        first = today.replace(day=1)
        return Period(local_midnight(first, zone), tomorrow, f"{first:%Y-%m}")
    match = MONTH.fullmatch(word)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and year >= 2000):
        return None
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    start = local_midnight(first, zone)
    end = min(local_midnight(following, zone), tomorrow)
    if start >= end:
        return None
    return Period(start, end, f"{first:%Y-%m}")


@dataclass(frozen=True, slots=True)
class Figures:
    received: int
    accepted: int
    resolved: int
    closed: int
    open: int
    overdue: int
    rates: Rates  # response, resolution and satisfaction

    @classmethod
    def of(cls, counts: Counts) -> Figures:
        return cls(
            received=counts.received,
            accepted=counts.accepted,
            resolved=counts.resolved,
            closed=counts.closed,
            open=counts.open,
            overdue=counts.overdue,
            rates=counts.rates,
        )


@dataclass(frozen=True, slots=True)
class Report:
    area: Area
    period: Period
    total: Figures
    by_part: list[tuple[str, Figures]]  # unit code one level down (Area.part_of), sorted by code
    by_category: list[tuple[str, Figures]]  # category code, catalog order
    per_day: list[tuple[date, int]]  # requests received per local day, every day of the period


def cohort(area: Area, period: Period) -> ColumnElement[bool]:
    """The requests received in the period within the area (cancelled and merged ones too:
    the figures' conditions leave those out where docs/metrics.md says so)."""
    return (
        area.clause()
        & (col(Request.created_at) >= period.start)
        & (col(Request.created_at) < period.end)
    )


def quarter_hour(dialect: str) -> Any:
    """The number of the UTC quarter hour `created_at` falls in (seconds since 1970 // 900)."""
    if dialect == "postgresql":
        seconds: Any = func.extract("epoch", col(Request.created_at))
    else:
        seconds = func.strftime("%s", col(Request.created_at))
    return func.floor(seconds.cast(BigInteger) / SLOT_SECONDS).cast(BigInteger)


async def received_per_day(
    session: AsyncSession, area: Area, period: Period, now: datetime, zone: ZoneInfo
) -> list[tuple[date, int]]:
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    slot = quarter_hour(dialect).label("slot")
    statement = (
        select(slot, func.count().label("n"))
        .where(cohort(area, period) & conditions(now)["received"])
        .group_by(slot)
    )
    per_day = dict.fromkeys(period.days(zone), 0)
    for number, count in (await session.exec(statement)).all():  # type: ignore[call-overload]
        moment = datetime.fromtimestamp(int(number) * SLOT_SECONDS, UTC)
        day = moment.astimezone(zone).date()
        if day in per_day:
            per_day[day] += int(count)
    return list(per_day.items())


async def build_report(
    session: AsyncSession, area: Area, period: Period, now: datetime, zone: ZoneInfo
) -> Report:
    counted = await tally(
        session,
        cohort(area, period),
        now,
        group_by=[col(Request.grid_code), col(Request.category)],
    )
    total = Counts()
    parts = dict.fromkeys(sorted(set(area.part_of_grid.values())), Counts())
    categories: dict[str, Counts] = {}
    for (grid, category), counts in counted.items():
        total += counts
        part = area.part_of(grid)
        if part is not None:
            parts[part] = parts.get(part, Counts()) + counts
        categories[category] = categories.get(category, Counts()) + counts
    catalog_order = [c.code for c in CATEGORIES]
    unknown = sorted(set(categories) - set(catalog_order))
    return Report(
        area=area,
        period=period,
        total=Figures.of(total),
        by_part=[(code, Figures.of(parts[code])) for code in sorted(parts)],
        by_category=[
            (code, Figures.of(categories[code]))
            for code in [*catalog_order, *unknown]
            if categories.get(code, Counts()) != Counts()
        ],
        per_day=await received_per_day(session, area, period, now, zone),
    )
