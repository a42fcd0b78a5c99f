"""The district's own official calendar (HUIYIN_CALENDAR_FILE): reading CSV and iCal, refusing
bad files line by line, coming before the chinesecalendar package and Monday–Friday, saying
when the official data runs out, and timing a request across the 2027 Spring Festival from the
example file the docs show (docs/calendar-example.csv)."""

from __future__ import annotations

import csv
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from bot.settings import SettingsError, load_settings
from domain.calendar import (
    CalendarFileError,
    ChineseWorkdays,
    FixedWorkdays,
    OfficialDays,
    Weekdays,
    WorkingTime,
    load_official_days,
    official_days_from,
    package_years,
)
from domain.deadlines import (
    DEFAULT_POLICY,
    NORMAL,
    Policy,
    fixed_policy,
    load_policy,
    policy_from,
    start_clocks,
)
from storage.models import Request

ZONE = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "calendar-example.csv"
# The last year the installed package knows: read, not assumed, so a newer release passes too.
PACKAGE_LAST = max(chinese_calendar.holidays).year


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A time in Shanghai, as the aware UTC datetime the bot stores."""
    return datetime(year, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def example() -> OfficialDays:
    return load_official_days(EXAMPLE)


def write(tmp_path: Path, text: str, name: str = "calendar.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(text: str, *, ical: bool = False) -> list[str]:
    """The problem lines of a refused file (after the line naming the file)."""
    with pytest.raises(CalendarFileError) as refused:
        official_days_from(text, "cal", ical=ical)
    first, *lines = str(refused.value).splitlines()
    assert first == "cal:"
    return [line.strip() for line in lines]


# CSV ------------------------------------------------------------------------------------------


def test_the_example_file_is_read_with_its_names() -> None:
    official = example()
    assert official.years == frozenset({2027})
    assert date(2027, 2, 8) in official.holidays
    assert official.workdays == frozenset(
        {date(2027, 1, 31), date(2027, 2, 20), date(2027, 5, 8), date(2027, 9, 26)}
        | {date(2027, 10, 9)}
    )
    with EXAMPLE.open(encoding="utf-8") as handle:
        rows = {row[0]: row[2] for row in csv.reader(line for line in handle if line[:1].isdigit())}
    assert official.name(date(2027, 2, 8)) == rows["2027-02-08"]
    assert official.name(date(2027, 2, 20)) == rows["2027-02-20"]
    assert official.name(date(2027, 3, 1)) is None


def test_csv_comments_blank_lines_quotes_and_an_optional_name() -> None:
    official = official_days_from(
        "\ufeff# copied from the notice\r\n"
        "\r\n"
        "Date, Kind\r\n"
        "2027-02-05, holiday\r\n"
        "  # a comment with, commas\r\n"
        '2027-02-06,HOLIDAY,"Spring Festival, day 2"\r\n'
        "2027-02-20,workday,\r\n"
    )
    assert official.holidays == frozenset({date(2027, 2, 5), date(2027, 2, 6)})
    assert official.workdays == frozenset({date(2027, 2, 20)})
    assert official.name(date(2027, 2, 6)) == "Spring Festival, day 2"
    assert official.name(date(2027, 2, 5)) is None
    assert official.name(date(2027, 2, 20)) is None


def test_the_same_day_twice_as_the_same_kind_is_fine() -> None:
    official = official_days_from("date,kind\n2027-02-05,holiday\n2027-02-05,holiday,again\n")
    assert official.holidays == frozenset({date(2027, 2, 5)})


def test_a_gbk_file_from_excel_is_read(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    name = "\u6625\u8282"  # the Spring Festival, in characters GBK has
    path.write_bytes(f"date,kind,name\n2027-02-05,holiday,{name}\n".encode("gbk"))
    assert load_official_days(path).name(date(2027, 2, 5)) == name


# iCal -----------------------------------------------------------------------------------------

MAKE_UP = "\u8865\u73ed"  # the usual summary of a make-up working day in Chinese holiday feeds

ICAL = (
    "BEGIN:VCALENDAR\r\n"  # 1
    "VERSION:2.0\r\n"  # 2
    "BEGIN:VEVENT\r\n"  # 3
    "DTSTART;VALUE=DATE:20270205\r\n"  # 4
    "DTEND;VALUE=DATE:20270214\r\n"  # 5: exclusive, so 5-13 February
    "SUMMARY:Spring\\, Festival\r\n"  # 6
    "BEGIN:VALARM\r\n"  # 7: an alarm's properties are not the event's
    "DURATION:P30D\r\n"
    "SUMMARY:workday\r\n"
    "END:VALARM\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20270131\r\n"  # 13
    "SUMMARY:Spring Festival make-\r\n"  # 14: folded in the middle of "make-up"
    " up day\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20270220\r\n"
    f"SUMMARY:{MAKE_UP}\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20270403\r\n"
    "DURATION:P3D\r\n"
    "SUMMARY:Qingming\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20270301\r\n"
    "STATUS:CANCELLED\r\n"
    "SUMMARY:withdrawn\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_ical_spans_folded_lines_and_make_up_days(tmp_path: Path) -> None:
    official = load_official_days(write(tmp_path, ICAL, "holidays.ics"))
    spring = {date(2027, 2, day) for day in range(5, 14)}
    qingming = {date(2027, 4, day) for day in range(3, 6)}
    assert official.holidays == frozenset(spring | qingming)
    assert official.workdays == frozenset({date(2027, 1, 31), date(2027, 2, 20)})
    assert official.name(date(2027, 2, 13)) == "Spring, Festival"
    assert official.name(date(2027, 1, 31)) == "Spring Festival make-up day"
    assert date(2027, 2, 14) not in official.holidays  # DTEND is the day after
    assert date(2027, 3, 1) not in official.holidays  # cancelled


def test_a_file_that_starts_like_ical_is_ical_whatever_its_name(tmp_path: Path) -> None:
    official = load_official_days(write(tmp_path, ICAL, "holidays.txt"))
    assert date(2027, 2, 20) in official.workdays


def test_an_event_without_dtend_is_one_day() -> None:
    text = "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20270609\nSUMMARY:Dragon Boat\nEND:VEVENT\n"
    assert official_days_from(text, ical=True).holidays == frozenset({date(2027, 6, 9)})


# Refusals, each with its line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "date,kind\n2027-02-05,rest\n",
            "line 2: unknown kind 'rest'; write holiday or workday",
        ),
        (
            "date,kind\n# note\n2027-02-30,holiday\n",
            "line 3: '2027-02-30' is not a date; write it as YYYY-MM-DD",
        ),
        (
            "date,kind\n2027/02/05,holiday\n",
            "line 2: '2027/02/05' is not a date; write it as YYYY-MM-DD",
        ),
        (
            "date,kind\n20270205,holiday\n",
            "line 2: '20270205' is not a date; write it as YYYY-MM-DD",
        ),
        (
            "date,kind\n2027-02-06,holiday\n\n2027-02-06,workday\n",
            "line 4: 2027-02-06 is a workday here but a holiday on line 2",
        ),
        (
            "date,kind\n2027-02-05,holiday\n2027-02-19,workday\n",
            "line 3: 2027-02-19 is a Friday: a make-up working day (tiaoxiu) is always a "
            "Saturday or Sunday",
        ),
        (
            "date,kind\n2027-02-20,workday\n",
            "line 2: 2027 has make-up working days but no holidays",
        ),
        (
            "2027-02-05,holiday\n",
            "line 1: the first line must be the header date,kind,name",
        ),
        (
            "day,type\n2027-02-05,holiday\n",
            "line 1: the first line must be the header date,kind,name",
        ),
        (
            "date,kind,name\n2027-02-05,holiday,Spring,Festival\n",
            "line 2: 4 fields; write date,kind,name",
        ),
        ("date,kind,name\n2027-02-05\n", "line 2: 1 fields; write date,kind,name"),
        ("date,kind,name\n# nothing yet\n", "the file lists no days"),
        ("", "the file lists no days"),
    ],
)
def test_bad_csv_is_refused_naming_the_line(text: str, problem: str) -> None:
    lines = refusal(text)
    assert len(lines) == 1
    assert lines[0].startswith(problem)


def event(*lines: str) -> str:
    return "BEGIN:VCALENDAR\nBEGIN:VEVENT\n" + "\n".join(lines) + "\nEND:VEVENT\nEND:VCALENDAR\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            event("DTSTART:20270205T000000Z", "SUMMARY:x"),
            "line 3: DTSTART '20270205T000000Z' is a time, not a whole day",
        ),
        (event("DTSTART;VALUE=DATE:20270230"), "line 3: DTSTART '20270230' is not a date"),
        (
            event("DTSTART;VALUE=DATE:20270205", "DTEND;VALUE=DATE:20270205"),
            "line 4: DTEND 2027-02-05 is not after DTSTART 2027-02-05 (it is exclusive)",
        ),
        (
            event("DTSTART;VALUE=DATE:20270205", "DTEND;VALUE=DATE:2027-02-14"),
            "line 4: DTEND '2027-02-14' is not a day",
        ),
        (
            event("DTSTART;VALUE=DATE:20270205", "DTEND;VALUE=DATE:20280214"),
            "line 3: the event from 2027-02-05 lasts 374 days",
        ),
        (
            event("DTSTART;VALUE=DATE:20270205", "DURATION:PT8H"),
            "line 4: DURATION 'PT8H': write it in days, e.g. P3D",
        ),
        (
            event("DTSTART;VALUE=DATE:20270101", "RRULE:FREQ=YEARLY"),
            "line 4: RRULE: repeating events are not expanded",
        ),
        (event("SUMMARY:no start"), "line 2: an event without DTSTART"),
        (
            event("DTSTART;VALUE=DATE:20270205", "DTEND;VALUE=DATE:20270207", "SUMMARY:Holiday")
            + event("DTSTART;VALUE=DATE:20270206", "SUMMARY:Workday"),
            "line 10: 2027-02-06 is a workday here but a holiday on line 3",
        ),
        (
            event("DTSTART;VALUE=DATE:20270205", "SUMMARY:x")
            + event("DTSTART;VALUE=DATE:20270210", f"SUMMARY:{MAKE_UP}"),
            "line 9: 2027-02-10 is a Wednesday: a make-up working day",
        ),
        (
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20270205\n",
            "line 2: the event is not closed with END:VEVENT",
        ),
        ("BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n", "the file lists no days"),
    ],
)
def test_bad_ical_is_refused_naming_the_line(text: str, problem: str) -> None:
    lines = refusal(text, ical=True)
    assert len(lines) == 1, lines
    assert lines[0].startswith(problem)


def test_every_problem_is_listed_in_line_order() -> None:
    lines = refusal(
        "date,kind,name\n"
        "2027-02-06,holiday\n"
        "2027-02-31,holiday\n"
        "2027-02-05,rest\n"
        "2027-02-10,workday\n"
        "2027-02-06,workday\n"
    )
    assert [line.split(":")[0] for line in lines] == ["line 3", "line 4", "line 5", "line 6"]


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarFileError, match="cannot be read"):
        load_official_days(tmp_path / "missing.csv")


# Which source decides -------------------------------------------------------------------------


def test_the_2027_spring_festival_from_the_file_is_a_rest_day() -> None:
    days = ChineseWorkdays(extra=example())
    assert not days.is_workday(date(2027, 2, 8))  # a Monday in the holiday
    assert not days.is_workday(date(2027, 2, 12))  # a Friday in the holiday
    assert days.is_workday(date(2027, 2, 20))  # the make-up Saturday
    assert days.is_workday(date(2027, 1, 31))  # the make-up Sunday
    assert not days.is_workday(date(2027, 2, 27))  # an ordinary Saturday
    assert days.is_workday(date(2027, 3, 1))  # an ordinary Monday: not listed, Mon–Fri
    assert days.covers(2027)


def test_without_the_file_2027_falls_back_to_monday_to_friday(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if PACKAGE_LAST >= 2027:
        pytest.skip("the installed chinesecalendar knows 2027")
    days = ChineseWorkdays()
    with caplog.at_level(logging.WARNING, logger="domain.calendar"):
        assert days.is_workday(date(2027, 2, 8))
        assert not days.is_workday(date(2027, 2, 20))
    assert not days.covers(2027)
    assert any("2027" in record.getMessage() for record in caplog.records)


def test_the_package_still_decides_the_years_the_file_does_not_list(
    caplog: pytest.LogCaptureFixture,
) -> None:
    days = ChineseWorkdays(extra=example())
    with caplog.at_level(logging.WARNING, logger="domain.calendar"):
        assert not days.is_workday(date(2026, 10, 1))  # National Day 2026, from the package
        assert days.is_workday(date(2026, 10, 10))  # its make-up Saturday
        assert days.is_workday(date(2100, 1, 1))  # neither knows 2100: Monday–Friday
        assert not days.is_workday(date(2100, 1, 2))
    assert [r for r in caplog.records if "2100" in r.getMessage()]
    assert not [r for r in caplog.records if "2026" in r.getMessage()]


def test_a_year_in_the_file_is_decided_by_the_file_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "date,kind\n2026-06-01,holiday\n")  # a Monday the package works
    with caplog.at_level(logging.WARNING, logger="domain.calendar"):
        official = load_official_days(path)
    days = ChineseWorkdays(extra=official)
    assert not days.is_workday(date(2026, 6, 1))  # the file over the package
    assert days.is_workday(date(2026, 10, 1))  # not listed: a Thursday, so a working day
    assert not days.is_workday(date(2026, 10, 10))  # the package's make-up Saturday is not used
    (warning,) = [r for r in caplog.records if str(path) in r.getMessage()]
    assert "2026" in warning.getMessage() and "disagree" in warning.getMessage()


def test_the_policys_own_rest_days_apply_on_top_of_the_file() -> None:
    policy = policy_from(
        {"holidays": [date(2027, 3, 1)], "workdays": [date(2027, 2, 27)]}, official=example()
    )
    assert not policy.days.is_workday(date(2027, 3, 1))  # a local rest day
    assert policy.days.is_workday(date(2027, 2, 27))  # a local extra working Saturday
    assert not policy.days.is_workday(date(2027, 2, 8))  # the file's Spring Festival
    assert policy.days.is_workday(date(2027, 2, 20))  # the file's make-up Saturday


def test_a_weekdays_policy_leaves_the_file_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="domain.deadlines"):
        policy = policy_from({"calendar": "weekdays"}, official=example())
    assert isinstance(policy.days, Weekdays)
    assert policy.days.is_workday(date(2027, 2, 8))
    assert any("weekdays" in record.getMessage() for record in caplog.records)


# When the official data runs out --------------------------------------------------------------


def test_covered_until_for_each_calendar() -> None:
    assert Weekdays().covered_until() is None
    assert FixedWorkdays(frozenset({date(2027, 2, 8)})).covered_until() is None
    assert fixed_policy().days.covered_until() is None
    assert ChineseWorkdays().covered_until() == date(PACKAGE_LAST, 12, 31)
    assert ChineseWorkdays(extra=example()).covered_until() == date(max(PACKAGE_LAST, 2027), 12, 31)
    assert DEFAULT_POLICY.days.covered_until() == date(PACKAGE_LAST, 12, 31)


def test_the_adjusted_calendar_asks_its_base() -> None:
    local = {"holidays": [date(2027, 3, 1)]}
    assert policy_from(local, official=example()).days.covered_until() == date(
        max(PACKAGE_LAST, 2027), 12, 31
    )
    assert policy_from(local).days.covered_until() == date(PACKAGE_LAST, 12, 31)
    assert policy_from({**local, "calendar": "weekdays"}).days.covered_until() is None


def test_file_years_after_a_gap_do_not_count() -> None:
    """Monday–Friday would start in the missing year, so that is where the warning belongs."""
    far = OfficialDays(holidays=frozenset({date(2100, 1, 1)}))
    assert ChineseWorkdays(extra=far).covered_until() == date(PACKAGE_LAST, 12, 31)
    following = OfficialDays(
        holidays=frozenset({date(PACKAGE_LAST + 1, 1, 1), date(PACKAGE_LAST + 2, 1, 1)})
    )
    assert ChineseWorkdays(extra=following).covered_until() == date(PACKAGE_LAST + 2, 12, 31)


def test_the_packages_years_are_found_without_its_table(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = (min(chinese_calendar.holidays).year, PACKAGE_LAST)
    assert package_years() == expected
    monkeypatch.setattr(chinese_calendar, "holidays", None)  # is_workday keeps its own copy
    assert package_years.__wrapped__() == expected  # found by asking year after year


# Settings -------------------------------------------------------------------------------------


def test_settings_feed_the_file_to_the_default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUIYIN_POLICY_FILE", raising=False)
    settings = load_settings(_env_file=None, calendar_file=str(EXAMPLE))
    assert settings.calendar_file == EXAMPLE
    policy = settings.policy
    assert isinstance(policy.days, ChineseWorkdays)
    assert policy.days.extra is example()  # parsed once, shared by every policy built
    assert settings.policy.days.extra is policy.days.extra
    assert not policy.days.is_workday(date(2027, 2, 8))
    assert policy.clocks("repair", NORMAL) == DEFAULT_POLICY.clocks("repair", NORMAL)


def test_settings_feed_the_file_to_a_policy_file_too(tmp_path: Path) -> None:
    policy_path = write(tmp_path, "holidays = [2027-03-01]\n", "policy.toml")
    settings = load_settings(
        _env_file=None, calendar_file=str(EXAMPLE), policy_file=str(policy_path)
    )
    days = settings.policy.days
    assert not days.is_workday(date(2027, 2, 8)) and not days.is_workday(date(2027, 3, 1))
    assert days.covered_until() == date(max(PACKAGE_LAST, 2027), 12, 31)
    assert load_policy(policy_path).days.is_workday(date(2027, 2, 8))  # without the file


def test_without_a_calendar_file_the_defaults_stand(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUIYIN_CALENDAR_FILE", "HUIYIN_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings(_env_file=None).calendar_file is None
    assert load_settings(_env_file=None, calendar_file=" ").calendar_file is None
    assert load_settings(_env_file=None).policy is DEFAULT_POLICY


def test_a_bad_calendar_file_stops_the_start_naming_each_line(tmp_path: Path) -> None:
    path = write(tmp_path, "date,kind,name\n2027-02-05,holiday\n2027-02-31,holiday\nx,rest\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, calendar_file=str(path))
    lines = str(refused.value).splitlines()
    assert lines[0] == f"HUIYIN_CALENDAR_FILE: {path}:"
    assert lines[1].strip().startswith("line 3: '2027-02-31' is not a date")
    assert lines[2].strip().startswith("line 4: 'x' is not a date")
    assert lines[3].strip().startswith("line 4: unknown kind 'rest'")
    with pytest.raises(SettingsError, match=r"HUIYIN_CALENDAR_FILE: .*cannot be read"):
        load_settings(_env_file=None, calendar_file=str(tmp_path / "missing.csv"))


# A deadline across the 2027 Spring Festival ---------------------------------------------------


def request() -> Request:
    now = at(2027, 2, 4, 10)
    return Request(
        kind="living",
        category="repair",
        reporter_account_id=1,
        beneficiary_id=1,
        grid_code="QS-JB-TH-01",
        status="assigned",
        priority=NORMAL,
        created_at=now,
        updated_at=now,
    )


def test_a_request_before_the_spring_festival_waits_for_the_holiday_to_end() -> None:
    """The worked example in docs/calendar.md."""
    policy: Policy = load_settings(_env_file=None, calendar_file=str(EXAMPLE)).policy
    req = request()
    start_clocks(req, at(2027, 2, 4, 10), ZONE, policy)  # Thursday 10:00, the day before
    assert req.accept_due_at == at(2027, 2, 15, 10)  # one working day: the Monday after
    assert req.resolve_due_at == at(2027, 2, 22, 10)  # seven, Saturday 20 February counted
    working = WorkingTime(policy.days, ZONE)
    assert working.add_days(at(2027, 2, 5, 9), 1) == at(2027, 2, 15, 17, 30)  # in the holiday
    assert working.between(at(2027, 2, 4, 17), at(2027, 2, 15, 9, 30)).total_seconds() == 5400


def test_without_the_file_the_request_would_fall_due_in_the_holiday() -> None:
    if PACKAGE_LAST >= 2027:
        pytest.skip("the installed chinesecalendar knows 2027")
    req = request()
    start_clocks(req, at(2027, 2, 4, 10), ZONE, DEFAULT_POLICY)
    assert req.accept_due_at == at(2027, 2, 5, 10)
