"""Periods, and the report of an area for a period: totals, parts, categories, local days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.areas import area_of_unit
from domain.reports import Period, build_report, parse_period
from storage.database import Database
from tests.test_metrics import HOUR, owner, request

ZONE = ZoneInfo("Asia/Shanghai")
# 10:00 on Monday 30 November 2026 in Shanghai
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def local(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("today", local(11, 30), local(12, 1), "2026-11-30"),
        ("今天", local(11, 30), local(12, 1), "2026-11-30"),
        ("week", local(11, 30), local(12, 1), "2026-11-30 – 2026-11-30"),
        ("month", local(11, 1), local(12, 1), "2026-11"),
        ("", local(11, 1), local(12, 1), "2026-11"),
        ("本月", local(11, 1), local(12, 1), "2026-11"),
        ("2026-10", local(10, 1), local(11, 1), "2026-10"),
        ("2026-1", local(1, 1), local(2, 1), "2026-01"),
        (" 2025-12 ", datetime(2025, 11, 30, 16, 0, tzinfo=UTC), local(1, 1), "2025-12"),
    ],
)
def test_parse_period(text: str, start: datetime, end: datetime, label: str) -> None:
    assert parse_period(text, NOW, ZONE) == Period(start, end, label)


def test_a_week_so_far_starts_on_monday() -> None:
    sunday_evening = local(12, 6, 21)
    period = parse_period("本周", sunday_evening, ZONE)
    assert period == Period(local(11, 30), local(12, 7), "2026-11-30 – 2026-12-06")
    assert len(period.days(ZONE)) == 7


@pytest.mark.parametrize("text", ["yesterday", "2026-13", "2026-00", "1999-05", "2027-01", "11"])
def test_bad_periods_are_none(text: str) -> None:
    assert parse_period(text, NOW, ZONE) is None


async def test_report_of_a_town_for_a_month(db: Database) -> None:
    async with db.transaction() as session:
        ids = await owner(session)
        session.add_all(
            [
                # Tianhe (QS-JB-TH), two grids
                request(ids, "closed", accepted=HOUR, satisfaction="satisfied",
                        grid="QS-JB-TH-01", created_at=local(11, 2, 9)),
                request(ids, "resolved", accepted=30 * HOUR,
                        grid="QS-JB-TH-02", category="health", created_at=local(11, 2, 23, 59)),
                # 00:01 on the 3rd, local: a different day from the one above (15:59 and 16:01
                # UTC on the 2nd)
                request(ids, "assigned", grid="QS-JB-TH-02", created_at=local(11, 3, 0, 1)),
                # Liuyuan (QS-JB-LY)
                request(ids, "in_progress", accepted=2 * HOUR, grid="QS-JB-LY-01",
                        category="health", created_at=local(11, 30, 8),
                        resolve_due_at=local(12, 3)),
                request(ids, "cancelled", grid="QS-JB-LY-02", created_at=local(11, 30, 9)),
                # outside the period (October) and outside the town (Fengming)
                request(ids, "closed", grid="QS-JB-TH-01", created_at=local(10, 31, 23, 59)),
                request(ids, "closed", grid="QS-FM-MJ-01", created_at=local(11, 5)),
            ]
        )  # fmt: skip
    period = parse_period("month", NOW, ZONE)
    assert period is not None
    async with db.session() as session:
        town = await area_of_unit(session, "QS-JB")
        assert town is not None
        report = await build_report(session, town, period, NOW, ZONE)
    total = report.total
    assert (total.received, total.accepted, total.resolved, total.closed) == (4, 3, 2, 1)
    assert (total.open, total.overdue) == (2, 1)  # the one never accepted is past due
    assert (total.rates.responded, total.rates.rated, total.rates.satisfied) == (2, 1, 1)
    parts = {code: figures.received for code, figures in report.by_part}
    assert parts == {"QS-JB-LY": 1, "QS-JB-QJ": 0, "QS-JB-TH": 3}
    assert [code for code, _ in report.by_part] == ["QS-JB-LY", "QS-JB-QJ", "QS-JB-TH"]
    # catalog order: repair before health; the cancelled-only nothing is not listed
    assert [(c, f.received) for c, f in report.by_category] == [("repair", 2), ("health", 2)]
    days = dict(report.per_day)
    assert len(days) == 30 and report.per_day[0][0] == date(2026, 11, 1)
    assert (days[date(2026, 11, 2)], days[date(2026, 11, 3)], days[date(2026, 11, 30)]) == (
        2,
        1,
        1,  # the cancelled one is not received
    )
    assert sum(days.values()) == total.received


async def test_report_of_a_community_breaks_down_by_grid(db: Database) -> None:
    async with db.transaction() as session:
        ids = await owner(session)
        session.add_all(
            [
                request(ids, "closed", accepted=HOUR, grid="QS-JB-TH-01", created_at=local(11, 9)),
                request(ids, "closed", accepted=HOUR, grid="QS-JB-TH-01", created_at=local(11, 9)),
                request(ids, "assigned", grid="QS-JB-LY-01", created_at=local(11, 9)),
            ]
        )
    period = parse_period("2026-11", NOW, ZONE)
    assert period is not None
    async with db.session() as session:
        community = await area_of_unit(session, "QS-JB-TH")
        district = await area_of_unit(session, "QS")
        assert community is not None and district is not None
        mine = await build_report(session, community, period, NOW, ZONE)
        everything = await build_report(session, district, period, NOW, ZONE)
    assert [(c, f.received) for c, f in mine.by_part] == [("QS-JB-TH-01", 2), ("QS-JB-TH-02", 0)]
    assert mine.total.rates.response == 1.0
    assert [(c, f.received) for c, f in everything.by_part] == [("QS-FM", 0), ("QS-JB", 3)]
    assert everything.total.rates.response == pytest.approx(2 / 3)


async def test_an_empty_period_has_undefined_rates(db: Database) -> None:
    period = parse_period("today", NOW, ZONE)
    assert period is not None
    async with db.session() as session:
        district = await area_of_unit(session, "QS")
        assert district is not None
        report = await build_report(session, district, period, NOW, ZONE)
    assert report.total.received == 0 and report.total.rates.response is None
    assert report.by_category == [] and report.per_day == [(date(2026, 11, 30), 0)]


def test_days_follow_the_zone_across_a_daylight_saving_change() -> None:
    paris = ZoneInfo("Europe/Paris")
    period = parse_period("2026-03", datetime(2026, 4, 2, tzinfo=UTC), paris)
    assert period is not None
    days = period.days(paris)
    assert (days[0], days[-1], len(days)) == (date(2026, 3, 1), date(2026, 3, 31), 31)
    assert period.end - period.start == timedelta(days=31) - timedelta(hours=1)
