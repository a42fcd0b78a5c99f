"""The deadline policy: defaults, the file that changes them (and its error messages), and the
deadline columns a request gets at each step (start, accept, complex, urgent, pause, resume,
reminders)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.settings import SettingsError, load_settings
from domain.calendar import Weekdays
from domain.deadlines import (
    COMPLEX,
    DEFAULT_POLICY,
    NORMAL,
    URGENT,
    PolicyError,
    breached_clock,
    change_priority,
    due_reminders,
    fixed_policy,
    load_policy,
    parse_duration,
    parse_reminder,
    pause_clocks,
    policy_from,
    reminder_done,
    resume_clocks,
    start_clocks,
    stop_accept_clock,
)
from storage.models import Request

ZONE = ZoneInfo("Asia/Shanghai")
POLICY = fixed_policy()  # Monday to Friday, no holidays: the arithmetic is easy to follow


def at(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def request(category: str = "repair", priority: str = NORMAL, status: str = "assigned") -> Request:
    now = at(11, 30, 10)
    return Request(
        kind="living",
        category=category,
        reporter_account_id=1,
        beneficiary_id=1,
        grid_code="QS-JB-TH-01",
        status=status,
        priority=priority,
        created_at=now,
        updated_at=now,
    )


# The defaults ---------------------------------------------------------------------------------


def test_safety_is_urgent_by_default_and_the_rest_normal() -> None:
    assert DEFAULT_POLICY.priority_for("safety") == URGENT
    assert DEFAULT_POLICY.priority_for("repair") == NORMAL
    assert DEFAULT_POLICY.priority_for("unknown-code") == NORMAL


def test_default_clocks_follow_the_issue_table() -> None:
    urgent = DEFAULT_POLICY.clocks("safety", URGENT)
    assert (urgent.accept_within.hours, urgent.accept_within.working) == (1, False)
    assert (urgent.resolve_within.hours, urgent.resolve_within.working) == (24, False)
    normal = DEFAULT_POLICY.clocks("repair", NORMAL)
    assert (normal.accept_within.working_days, normal.resolve_within.working_days) == (1, 7)
    assert normal.accept_within.working and normal.resolve_within.working
    complex_ = DEFAULT_POLICY.clocks("repair", COMPLEX)
    assert (complex_.accept_within.working_days, complex_.resolve_within.working_days) == (1, 15)
    assert DEFAULT_POLICY.working_hours.length == timedelta(hours=9)
    assert DEFAULT_POLICY.quiet_hours.start == time(21)


# Clocks of a request --------------------------------------------------------------------------


def test_a_normal_request_gets_both_clocks_and_their_reminders() -> None:
    req = request()
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)  # Monday 10:00
    assert req.level_assigned_at == at(11, 30, 10)
    assert req.accept_due_at == at(12, 1, 10)  # one working day
    assert req.accept_remind_at == at(11, 30, 16, 45)  # at 75%
    assert req.resolve_due_at == at(12, 9, 10)  # seven working days
    assert req.resolve_remind_at == at(12, 7, 12, 15)  # 75% of 63 working hours
    assert req.next_due_at == req.accept_remind_at


def test_an_urgent_request_at_night_runs_around_the_clock() -> None:
    req = request("safety", URGENT)
    start_clocks(req, at(11, 30, 23), ZONE, POLICY)
    assert req.accept_due_at == at(12, 1, 0)
    # 75% is 23:45; "one hour before" would be the start itself, so there is one reminder.
    assert req.accept_remind_at == at(11, 30, 23, 45)
    assert req.resolve_due_at == at(12, 1, 23)
    assert req.resolve_remind_at == at(12, 1, 17)  # 75% of 24 h; then one hour before


def test_urgent_reminders_come_one_after_the_other_each_once() -> None:
    req = request("safety", URGENT, status="in_progress")
    start_clocks(req, at(11, 30, 23), ZONE, POLICY)
    assert due_reminders(req, at(12, 1, 17)) == ["resolve"]
    reminder_done(req, "resolve", at(12, 1, 17), ZONE, POLICY)
    assert req.resolve_remind_at == at(12, 1, 22)  # one hour before
    assert due_reminders(req, at(12, 1, 21, 59)) == []
    reminder_done(req, "resolve", at(12, 1, 22), ZONE, POLICY)
    assert (req.resolve_remind_at, req.resolve_reminder_stage) == (None, 2)
    assert req.next_due_at == req.resolve_due_at


def test_reminders_already_behind_are_passed_over_not_sent_late() -> None:
    req = request("safety", URGENT, status="in_progress")
    start_clocks(req, at(11, 30, 23), ZONE, POLICY)
    # The sweep comes back at 22:30 (after downtime): both reminders are due; one goes out.
    assert due_reminders(req, at(12, 1, 22, 30)) == ["resolve"]
    reminder_done(req, "resolve", at(12, 1, 22, 30), ZONE, POLICY)
    assert req.resolve_remind_at is None


def test_accepting_stops_the_accept_clock_only() -> None:
    req = request()
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)
    req.status = "in_progress"
    stop_accept_clock(req)
    assert (req.accept_due_at, req.accept_remind_at) == (None, None)
    assert req.resolve_due_at == at(12, 9, 10)
    assert req.next_due_at == at(12, 7, 12, 15)


def test_accepting_as_complex_gives_fifteen_working_days_from_the_start() -> None:
    req = request()
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)
    req.status = "in_progress"
    stop_accept_clock(req)
    change_priority(req, COMPLEX, at(11, 30, 15), ZONE, POLICY)
    assert req.priority == COMPLEX
    assert req.resolve_due_at == at(12, 21, 10)  # 15 working days after Monday 30 Nov 10:00


def test_marking_urgent_never_gives_more_time() -> None:
    req = request()
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)
    change_priority(req, URGENT, at(11, 30, 11), ZONE, POLICY)
    assert req.accept_due_at == at(11, 30, 12)  # an hour from now, sooner than tomorrow
    assert req.resolve_due_at == at(12, 1, 11)  # 24 h from now
    late = request()
    start_clocks(late, at(11, 30, 10), ZONE, POLICY)
    change_priority(late, URGENT, at(12, 9, 9, 30), ZONE, POLICY)
    assert late.resolve_due_at == at(12, 9, 10)  # the old deadline was sooner: it stays


def test_pause_stops_the_sweep_and_resume_gives_back_the_time_left() -> None:
    req = request(status="in_progress")
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)
    stop_accept_clock(req)
    reminder_done(req, "resolve", at(12, 7, 12, 15), ZONE, POLICY)  # the 75% reminder went out
    pause_clocks(req, at(12, 8, 10))  # Tuesday 8 Dec 10:00: 9 working hours left to resolve
    assert req.next_due_at is None
    assert breached_clock(req, at(12, 31)) is None and due_reminders(req, at(12, 31)) == []
    resume_clocks(req, at(12, 14, 9), ZONE, POLICY)  # Monday 14 Dec 09:00
    assert req.paused_at is None
    assert req.resolve_due_at == at(12, 15, 9)  # nine working hours later
    assert req.resolve_remind_at is None  # the only reminder was sent before the pause


def test_a_reminder_due_at_the_pause_is_due_on_resuming() -> None:
    req = request(status="in_progress")
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)
    stop_accept_clock(req)
    pause_clocks(req, at(12, 8, 10))  # the 75% reminder (7 Dec) was due and not yet sent
    resume_clocks(req, at(12, 14, 9), ZONE, POLICY)
    assert req.resolve_remind_at == at(12, 14, 9)


def test_pause_before_the_reminder_moves_the_reminder_too() -> None:
    req = request(status="in_progress")
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)
    stop_accept_clock(req)
    pause_clocks(req, at(12, 7, 11, 15))  # one working hour before the reminder
    resume_clocks(req, at(12, 10, 9), ZONE, POLICY)
    assert req.resolve_remind_at == at(12, 10, 10)
    # 16¾ working hours were left: 8½ on Thursday from 09:00, 8¼ on Friday.
    assert req.resolve_due_at == at(12, 11, 16, 45)


def test_breach_accept_first() -> None:
    req = request()
    start_clocks(req, at(11, 30, 10), ZONE, POLICY)
    assert breached_clock(req, at(12, 1, 9, 59)) is None
    assert breached_clock(req, at(12, 1, 10)) == "accept"
    assert breached_clock(req, at(12, 31)) == "accept"


def test_the_national_day_holiday_holds_the_clock() -> None:
    req = request()
    start_clocks(req, at(9, 30, 10), ZONE, DEFAULT_POLICY)  # the official calendar
    assert req.accept_due_at == at(10, 8, 10)
    assert req.resolve_due_at == at(10, 15, 10)  # with Saturday 10 Oct worked (调休)


# The policy file ------------------------------------------------------------------------------

GOOD = """
working_hours = "09:00-17:00"
quiet_hours = "22:00-07:30"
calendar = "weekdays"
holidays = [2026-12-01]

[priorities.normal]
accept_within = "4 working hours"
reminders = ["50%", "1 hour before"]

[categories.health]
priority = "urgent"

[categories.health.urgent]
accept_within = "30 minutes"

[categories.mediation.complex]
resolve_within = "20 working days"
"""


def test_the_file_changes_defaults_per_priority_and_category(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(GOOD, encoding="utf-8")
    policy = load_policy(path)
    assert policy.working_hours.length == timedelta(hours=8)
    assert policy.quiet_hours.release(at(11, 30, 23), ZONE) == at(12, 1, 7, 30)
    assert policy.priority_for("health") == URGENT
    assert policy.priority_for("safety") == URGENT  # still the catalog's default
    assert policy.clocks("health", URGENT).accept_within.hours == 0.5
    assert policy.clocks("safety", URGENT).accept_within.hours == 1  # unchanged
    assert policy.clocks("mediation", COMPLEX).resolve_within.working_days == 20
    assert policy.clocks("mediation", NORMAL).accept_within.hours == 4  # from [priorities]

    req = request()
    start_clocks(req, at(11, 30, 16), ZONE, policy)  # Monday 16:00; Tuesday 1 Dec is a holiday
    assert req.accept_due_at == at(12, 2, 12)  # 1 h on Monday, 3 h on Wednesday from 09:00
    assert req.accept_remind_at == at(12, 2, 10)  # 50%; "1 hour before" is 11:00, next


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('colour = "blue"', "colour: unknown key"),
        ('[priorities.normal]\naccept_within = "1 workday"', "priorities.normal.accept_within"),
        ('[priorities.normal]\nreminders = ["120%"]', "between 0% and 100%"),
        ('[priorities.fast]\naccept_within = "1 hour"', "priorities.fast"),
        ('[categories.plumbing]\npriority = "urgent"', "unknown categories plumbing"),
        ('[categories.repair]\npriority = "asap"', "categories.repair.priority"),
        ('working_hours = "18:00-09:00"', "working hours must start before they end"),
        ('quiet_hours = "late"', "is not a span"),
        ("working_hours = ", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_a_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert message in str(refused.value)


def test_every_problem_is_listed() -> None:
    with pytest.raises(PolicyError) as refused:
        policy_from({"priorities": {"normal": {"accept_within": "soon", "resolve_within": "0 h"}}})
    lines = str(refused.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("priorities.normal.accept_within: 'soon' is not a time span")


def test_spans_and_reminders_parse() -> None:
    assert parse_duration("90 minutes").hours == 1.5
    assert parse_duration("2 days").hours == 48 and not parse_duration("2 days").working
    assert parse_duration("3 working days").working_days == 3
    assert parse_reminder("1 hour before").before_hours == 1
    with pytest.raises(ValueError):
        parse_reminder("1 working day before")


# Settings -------------------------------------------------------------------------------------


def test_settings_load_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(GOOD, encoding="utf-8")
    settings = load_settings(_env_file=None, policy_file=str(path))
    assert settings.policy.clocks("repair", NORMAL).accept_within.hours == 4
    assert settings.policy.source == str(path)


def test_a_bad_policy_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[priorities.normal]\naccept_within = "tomorrow"', encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, policy_file=str(path))
    text = str(refused.value)
    assert text.startswith("HUIYIN_POLICY_FILE:")
    assert "priorities.normal.accept_within: 'tomorrow' is not a time span" in text
    with pytest.raises(SettingsError, match=r"HUIYIN_POLICY_FILE: .*cannot be read"):
        load_settings(_env_file=None, policy_file=str(tmp_path / "missing.toml"))


def test_sweep_interval_setting() -> None:
    assert load_settings(_env_file=None).sweep_interval_seconds == 30
    assert load_settings(_env_file=None).policy_file is None
    with pytest.raises(SettingsError, match="HUIYIN_SWEEP_INTERVAL_SECONDS"):
        load_settings(_env_file=None, sweep_interval_seconds=0)


def test_weekdays_calendar_choice() -> None:
    policy = policy_from({"calendar": "weekdays"})
    assert isinstance(policy.days, Weekdays)
