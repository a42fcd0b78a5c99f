"""The morning digest: its timing on the Chinese working calendar (make-up days and holidays),
exactly once per person per day across repeated runs, restarts (also in the afternoon, when it
is a catch-up and not a "good morning") and two workers at once, only to people Huiyin can
reach, what it says to whom (who on the team cannot be reached included), the admins' warning
that the working calendar runs out, and the cron trigger the worker builds for it. Time is a
ManualClock; the job is called directly at each moment."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import update
from sqlmodel import col, select

from bot.app import build_worker
from bot.channels.memory import MemorySender
from bot.settings import SettingsError, load_settings
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY, Policy
from domain.i18n import translator
from domain.lifecycle import Action
from schedules.digest import DigestReport, record_delivery, send_digests
from storage.database import Database
from storage.models import Account, DigestDelivery, OutboxMessage, Staff, Unit
from tests.fake_bot_api import parse_html
from tests.test_ledger import account, act, submit

ZONE = ZoneInfo("Asia/Shanghai")
AT = time(8, 30)
XU = 700000011  # coordinator, Tianhe community (Jiangbei street)
SUN = 700000012  # coordinator, Liuyuan community (Jiangbei street)
HU = 700000017  # town officer, Jiangbei street
GUO = 700000018  # town officer, Fengming town
CHENG = 700000014  # coordinator, Maojiachong village (Fengming town)
LEI = 700000015  # coordinator, Hujiawan village (Fengming town; grid member 周强)
CAO = 700000026  # the district admin
# The roster's two coordinators without a Telegram id (Qianjin in Jiangbei, Shiqiao in
# Fengming) have never opened Huiyin: each town officer's digest names one of them.
EXAMPLE_CALENDAR = Path(__file__).resolve().parents[1] / "docs" / "calendar-example.csv"


@dataclass(frozen=True)
class Covered:
    """The Chinese working calendar, its official data said to end on `until`."""

    until: date | None

    def is_workday(self, day: date) -> bool:
        return DEFAULT_POLICY.days.is_workday(day)

    def covered_until(self) -> date | None:
        return self.until


def policy_until(until: date | None) -> Policy:
    return dataclasses.replace(DEFAULT_POLICY, days=Covered(until))


# The calendar's data reaches far ahead: no warning for the admins in most tests.
POLICY = policy_until(date(2027, 12, 31))


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def run(
    db: Database, clock: ManualClock, moment: datetime, policy: Policy = POLICY
) -> DigestReport:
    clock.set(moment)
    return await send_digests(db, clock, ZONE, policy, AT)


async def digests(db: Database, chat_id: int | None = None) -> list[OutboxMessage]:
    async with db.session() as session:
        query = select(OutboxMessage).where(col(OutboxMessage.ref_key).startswith("digest:"))
        if chat_id is not None:
            query = query.where(OutboxMessage.chat_id == chat_id)
        return list((await session.exec(query.order_by(col(OutboxMessage.id)))).all())


async def delivered(db: Database) -> set[tuple[int, date]]:
    async with db.session() as session:
        rows = await session.exec(select(DigestDelivery.staff_id, DigestDelivery.day))
        return {(staff_id, day) for staff_id, day in rows.all()}


async def set_staff(db: Database, who: int, **values: object) -> None:
    """Change the roster entry whose Telegram id is `who`."""
    async with db.transaction() as session:
        await session.exec(update(Staff).where(col(Staff.telegram_id) == who).values(**values))  # type: ignore[call-overload]


async def english(db: Database, *telegram_ids: int) -> None:
    async with db.transaction() as session:
        for telegram_id in telegram_ids:
            session.add(
                Account(
                    telegram_id=telegram_id,
                    chat_id=telegram_id,
                    display_name=str(telegram_id),
                    language="en",
                    created_at=local(11, 1, 9),
                )
            )


async def telegram_of(db: Database, staff_ids: list[int]) -> list[int]:
    async with db.session() as session:
        rows = await session.exec(select(Staff.telegram_id).where(col(Staff.id).in_(staff_ids)))
        return sorted(t for t in rows.all() if t is not None)


@pytest.fixture
async def week(db: Database) -> dict[str, int]:
    """Requests in Jiangbei street as Monday 30 November 2026 begins.

    overdue    Tianhe 1, Fri 20 Nov: never accepted (due Mon 23 Nov 10:00)
    resolved   Tianhe 1, Wed 25 Nov: accepted and resolved, waiting for the verdict
    fresh      Tianhe 2, Fri 27 Nov 14:00 (after Friday's digest): due to be accepted today
    weekend    Liuyuan 1, Sat 28 Nov: due to be accepted by today 17:30
    """
    resident = await account(db, 900001, "Li Ming", "QS-JB-TH-01", local(11, 1, 9))
    ids = {
        "overdue": await submit(db, local(11, 20, 10), resident, grid="QS-JB-TH-01"),
        "resolved": await submit(db, local(11, 25, 10), resident, grid="QS-JB-TH-01"),
        "fresh": await submit(db, local(11, 27, 14), resident, grid="QS-JB-TH-02"),
        "weekend": await submit(db, local(11, 28, 11), resident, grid="QS-JB-LY-01"),
    }
    await act(db, ids["resolved"], Action.ACCEPT, local(11, 25, 11))
    await act(db, ids["resolved"], Action.RESOLVE, local(11, 26, 15))
    return ids


def ref(request_id: int) -> str:
    return f"HY{request_id:06d}"


async def test_the_first_working_morning_once(
    db: Database, clock: ManualClock, week: dict[str, int]
) -> None:
    assert (await run(db, clock, local(11, 30, 8, 29))).skipped == "too early"
    assert await digests(db) == []

    first = await run(db, clock, local(11, 30, 8, 30))
    assert first.morning
    assert await telegram_of(db, first.sent) == [XU, SUN, HU, GUO]
    # The other town's coordinators have nothing to hear about: nothing at all is sent to them.
    # Its town officer has no request either, but a coordinator who never opened Huiyin.
    assert set(await telegram_of(db, first.nothing)) == {CHENG, LEI}
    sent = await digests(db)
    assert sorted(m.chat_id for m in sent) == [XU, SUN, HU, GUO]
    assert {m.ref_key for m in sent} == {"digest:2026-11-30"}
    assert {m.next_attempt_at for m in sent} == {local(11, 30, 8, 30)}  # staff: no quiet hours
    assert await delivered(db) == {(staff_id, date(2026, 11, 30)) for staff_id in first.sent}

    again = await run(db, clock, local(11, 30, 8, 31))
    assert again.sent == [] and len(again.already) == 4
    # A restart: a new worker, its catch-up run at start (its calendar file reaches 2027).
    settings = load_settings(
        _env_file=None,
        database_url=db.url,
        digest_time="08:30",
        calendar_file=str(EXAMPLE_CALENDAR),
    )
    restarted = build_worker(db, MemorySender(), clock, settings)
    (daily,) = restarted.dailies
    clock.set(local(11, 30, 10, 15))
    report = await daily.job()
    assert isinstance(report, DigestReport) and report.sent == [] and len(report.already) == 4
    assert len(await digests(db)) == 4


async def test_what_each_person_reads(
    db: Database, clock: ManualClock, week: dict[str, int]
) -> None:
    async with db.transaction() as session:
        session.add(
            Account(
                telegram_id=XU,
                chat_id=XU,
                display_name="Xu",
                language="en",
                created_at=local(11, 1, 9),
            )
        )
    await run(db, clock, local(11, 30, 8, 30))
    (xu,) = await digests(db, XU)
    t = translator("en")
    assert xu.payload["text"] == "\n".join(
        [
            t._("☀️ Good morning. Where things stand in {place}:", place="Tianhe Community"),
            f"🆕 New since 2026-11-27 08:30: <b>1</b> — {ref(week['fresh'])}",
            f"📅 Due today: <b>1</b> — {ref(week['fresh'])}",
            f"⏰ Overdue: <b>1</b> — {ref(week['overdue'])}",
            f"⭐ Waiting for the resident's verdict: <b>1</b> — {ref(week['resolved'])}",
        ]
    )
    (hu,) = await digests(db, HU)  # no account: Chinese, the district's language
    zh = translator("zh_CN")
    lines = hu.payload["text"].split("\n")
    assert lines[0] == zh._("☀️ Good morning. Where things stand in {place}:", place="江北街道")
    assert lines[1] == (
        zh._("🆕 New since {time}", time="2026-11-27 08:30")
        + f": <b>2</b> — {ref(week['fresh'])}, {ref(week['weekend'])}"
    )
    assert (
        lines[2]
        == zh._("📅 Due today") + f": <b>2</b> — {ref(week['fresh'])}, {ref(week['weekend'])}"
    )
    # Qianjin's coordinator has no Telegram account in the roster: never opened Huiyin.
    assert lines[5:] == [
        zh.ngettext(
            "📵 {n} of your staff has not opened Huiyin yet: {names}; send /team for "
            "their join links.",
            "📵 {n} of your staff have not opened Huiyin yet: {names}; send /team for "
            "their join links.",
            1,
            names="马卫东",
        )
    ]
    (sun,) = await digests(db, SUN)
    sun_lines = sun.payload["text"].split("\n")
    assert sun_lines[3] == zh._("⏰ Overdue") + ": 0"
    assert sun_lines[4] == zh._("⭐ Waiting for the resident's verdict") + ": 0"


async def test_more_than_a_few_references_are_counted(db: Database, clock: ManualClock) -> None:
    resident = await account(db, 900001, "Li Ming", "QS-JB-TH-01", local(11, 1, 9))
    ids = [await submit(db, local(11, 27, 9, n), resident, grid="QS-FM-HW-01") for n in range(7)]
    await run(db, clock, local(11, 30, 9))
    (lei,) = await digests(db, 700000015)  # Hujiawan village coordinator
    t = translator("zh_CN")
    new_line = lei.payload["text"].split("\n")[1]
    shown = ", ".join(ref(i) for i in ids[:5])
    assert new_line.endswith(f"<b>7</b> — {shown} " + t._("and {count} more", count=2))


@pytest.mark.parametrize(
    ("moment", "sent"),
    [
        (local(11, 28, 8, 30), False),  # Saturday
        (local(11, 29, 9, 0), False),  # Sunday
        (local(10, 10, 8, 30), True),  # Saturday worked in exchange for National Day (调休)
        (local(9, 20, 8, 30), True),  # Sunday worked in exchange (调休)
        (local(10, 1, 8, 30), False),  # National Day, a Thursday
        (local(10, 7, 8, 30), False),  # still the National Day holiday, a Wednesday
        (local(11, 30, 16, 0), True),  # down all morning: it catches up before the day ends
        (local(11, 30, 17, 30), False),  # but not after the working day
    ],
)
async def test_working_days_only(
    db: Database, clock: ManualClock, moment: datetime, sent: bool
) -> None:
    resident = await account(db, 900001, "Li Ming", "QS-JB-TH-01", local(9, 1, 9))
    waiting = await submit(db, local(9, 1, 10), resident, grid="QS-JB-TH-01")
    await act(db, waiting, Action.ACCEPT, local(9, 1, 11))
    await act(db, waiting, Action.RESOLVE, local(9, 1, 12))  # awaiting the verdict from then on
    report = await run(db, clock, moment)
    assert bool(report.sent) is sent
    rows = await digests(db)
    assert bool(rows) is sent
    if sent:
        day = moment.astimezone(ZONE).date().isoformat()
        assert {m.ref_key for m in rows} == {f"digest:{day}"}
        assert sorted(m.chat_id for m in rows) == [XU, HU, GUO]


async def test_the_next_working_day_counts_new_since_the_last(
    db: Database, clock: ManualClock, week: dict[str, int]
) -> None:
    await run(db, clock, local(11, 30, 8, 30))
    resident = await account(db, 900009, "Zhou", "QS-JB-TH-02", local(11, 30, 9))
    later = await submit(db, local(11, 30, 11), resident, grid="QS-JB-TH-02")
    await run(db, clock, local(12, 1, 8, 30))
    xu = await digests(db, XU)
    assert [m.ref_key for m in xu] == ["digest:2026-11-30", "digest:2026-12-01"]
    t = translator("zh_CN")
    assert xu[1].payload["text"].split("\n")[1] == (
        t._("🆕 New since {time}", time="2026-11-30 08:30") + f": <b>1</b> — {ref(later)}"
    )


async def test_two_workers_at_once_send_once(
    db: Database, clock: ManualClock, week: dict[str, int]
) -> None:
    second = Database(db.url)  # another process's engine on the same database
    try:
        clock.set(local(11, 30, 8, 30))
        reports = await asyncio.gather(
            *(send_digests(d, clock, ZONE, POLICY, AT) for d in (db, second))
        )
    finally:
        await second.dispose()
    sent = [staff_id for r in reports for staff_id in r.sent]
    assert sorted(await telegram_of(db, sent)) == [XU, SUN, HU, GUO]
    assert len(sent) == 4
    assert sorted(m.chat_id for m in await digests(db)) == [XU, SUN, HU, GUO]
    assert len(await delivered(db)) == 4


async def test_the_record_decides_even_for_a_worker_that_did_not_wait(db: Database) -> None:
    """Past the roster-row lock, the primary key of digest_deliveries is what keeps a digest to
    one a day: a second process inserting the same person and day inserts nothing."""
    day, now = date(2026, 11, 30), local(11, 30, 8, 30)
    async with db.session() as session:
        xu = (await session.exec(select(Staff).where(Staff.telegram_id == XU))).one()
    assert xu.id is not None
    second = Database(db.url)  # another process's engine on the same database
    try:
        async with db.transaction() as session:
            assert await record_delivery(session, xu.id, day, now)
        async with second.transaction() as session:
            assert not await record_delivery(session, xu.id, day, now + timedelta(minutes=5))
            assert await record_delivery(session, xu.id, day + timedelta(days=1), now)
    finally:
        await second.dispose()
    assert await delivered(db) == {(xu.id, day), (xu.id, day + timedelta(days=1))}


async def test_one_persons_failure_keeps_no_one_elses_digest_back(
    db: Database, clock: ManualClock, week: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Digests are written several to a transaction; when one of them fails, the others are
    sent one by one, and the one that failed has no record: the next run tries it again."""
    import schedules.digest

    enqueue = schedules.digest.enqueue

    def failing(session: Any, message: Any, now: datetime) -> None:
        if message.chat_id == SUN:
            raise RuntimeError("this one fails")
        enqueue(session, message, now)

    monkeypatch.setattr(schedules.digest, "enqueue", failing)
    first = await run(db, clock, local(11, 30, 8, 30))
    assert await telegram_of(db, first.sent) == [XU, HU, GUO]
    assert sorted(m.chat_id for m in await digests(db)) == [XU, HU, GUO]
    assert len(await delivered(db)) == 3
    monkeypatch.setattr(schedules.digest, "enqueue", enqueue)
    again = await run(db, clock, local(11, 30, 8, 45))
    assert await telegram_of(db, again.sent) == [SUN]
    assert sorted(m.chat_id for m in await digests(db)) == [XU, SUN, HU, GUO]


# Only once, only to those who can be reached, and what they hear ---------------------------

XU_NEW = 700000111  # Xu's Telegram account after he changed phones
RESTARTS = [(14, 41), (14, 43), (14, 51), (15, 1), (15, 2)]


async def test_restarts_in_the_afternoon_send_one_catch_up_each(
    db: Database, clock: ManualClock, week: dict[str, int]
) -> None:
    """Reported: the bot was down all morning and restarted at 14:41, 14:43, 14:51, 15:01 and
    15:02, and the coordinators got "☀️ Good morning…" each time. Now the first run after the
    morning is a catch-up titled with its time, and every later restart finds the record in
    digest_deliveries and sends nothing: also to Xu, who changed Telegram accounts between two
    restarts. Hujiawan's coordinator, with nothing to hear at 14:41, hears of the request that
    came at 14:42 at the next restart, once."""
    settings = load_settings(
        _env_file=None,
        database_url=db.url,
        digest_time="08:30",
        calendar_file=str(EXAMPLE_CALENDAR),
    )
    resident = await account(db, 900009, "Zhou", "QS-FM-HW-01", local(11, 30, 9))
    sender = MemorySender()
    reports: list[DigestReport] = []
    for hour, minute in RESTARTS:
        if (hour, minute) == (14, 43):  # what happened since the restart at 14:41
            await submit(db, local(11, 30, 14, 42), resident, grid="QS-FM-HW-01")
            await set_staff(db, XU, telegram_id=XU_NEW, opened_at=local(11, 30, 14, 42))
        clock.set(local(11, 30, hour, minute))
        process = Database(db.url)  # a restart: a new process, its engine and its worker
        try:
            worker = build_worker(process, sender, clock, settings)
            (daily,) = worker.dailies
            report = await daily.job()
            await worker.outbox.deliver_due()
        finally:
            await process.dispose()
        assert isinstance(report, DigestReport) and not report.morning
        reports.append(report)

    rows = await digests(db)
    zh = translator("zh_CN")
    titles = [(m.chat_id, m.payload["text"].split("\n")[0]) for m in rows]
    assert not [title for _, title in titles if title.startswith("☀️")]
    # One each, whatever the restarts (and Xu's new account).
    assert sorted(chat for chat, _ in titles) == sorted([XU, SUN, HU, GUO, LEI])
    assert sorted(sender.chats) == sorted([XU, SUN, HU, GUO, LEI])
    assert dict(titles)[XU] == zh._(
        "📋 Where things stand in {place} at {time}:", place="天河社区", time="14:41"
    )
    assert dict(titles)[LEI] == zh._(
        "📋 Where things stand in {place} at {time}:", place="胡家湾村", time="14:43"
    )
    assert await telegram_of(db, reports[0].sent) == [SUN, HU, GUO, XU_NEW]
    assert await telegram_of(db, reports[1].sent) == [LEI]
    assert [r.sent for r in reports[2:]] == [[], [], []]
    assert len(await delivered(db)) == 5


@pytest.mark.parametrize(
    ("hour", "minute", "morning"),
    [(8, 30, True), (9, 29, True), (9, 30, False), (17, 29, False)],
)
async def test_good_morning_only_in_the_morning(
    db: Database, clock: ManualClock, week: dict[str, int], hour: int, minute: int, morning: bool
) -> None:
    """Within an hour of the digest time it is the morning digest; later, a catch-up."""
    await english(db, XU)
    report = await run(db, clock, local(11, 30, hour, minute))
    assert report.morning is morning
    (xu,) = await digests(db, XU)
    title = xu.payload["text"].split("\n")[0]
    if morning:
        assert title == "☀️ Good morning. Where things stand in Tianhe Community:"
    else:
        assert title == f"📋 Where things stand in Tianhe Community at {hour:02}:{minute:02}:"


async def test_only_people_huiyin_can_reach_get_it(
    db: Database, clock: ManualClock, week: dict[str, int]
) -> None:
    """Xu blocked the bot, Sun never opened it: neither is sent a digest (Telegram would refuse
    it), and their town officer reads who they are."""
    await set_staff(db, XU, refused_at=local(11, 27, 9), refused_reason="blocked")
    await set_staff(db, SUN, opened_at=None)
    await english(db, HU)
    report = await run(db, clock, local(11, 30, 8, 30))
    assert await telegram_of(db, report.sent) == [HU, GUO]
    assert await digests(db, XU) == [] and await digests(db, SUN) == []
    (hu,) = await digests(db, HU)
    # By unit, then name: Liuyuan (QS-JB-LY) before Qianjin (QS-JB-QJ).
    assert hu.payload["text"].split("\n")[5:] == [
        "📵 2 of your staff have not opened Huiyin yet: 孙红梅, 马卫东; send /team for their "
        "join links.",
        "🚫 1 of your staff has blocked Huiyin or left Telegram: 徐国庆; /team says which.",
    ]


async def test_nothing_new_but_someone_who_cannot_be_reached_is_still_told(
    db: Database, clock: ManualClock
) -> None:
    """Hujiawan has no request at all, but its grid member never opened Huiyin: the coordinator
    must act, so the digest goes out with four zeros and the name."""
    await set_staff(db, 700000009, opened_at=None)  # 周强, Hujiawan's grid member
    await english(db, LEI)
    report = await run(db, clock, local(11, 30, 8, 30))
    assert LEI in await telegram_of(db, report.sent)
    assert CHENG in await telegram_of(db, report.nothing)  # everyone of his team can be reached
    (lei,) = await digests(db, LEI)
    assert lei.payload["text"] == "\n".join(
        [
            "☀️ Good morning. Where things stand in Hujiawan Village:",
            "🆕 New since 2026-11-27 08:30: 0",
            "📅 Due today: 0",
            "⏰ Overdue: 0",
            "⭐ Waiting for the resident's verdict: 0",
            "📵 1 of your staff has not opened Huiyin yet: 周强; send /team for their join links.",
        ]
    )


async def test_a_town_with_many_unreached_names_the_first_few(
    db: Database, clock: ManualClock
) -> None:
    async with db.transaction() as session:
        await session.exec(
            update(Staff).where(col(Staff.unit_code).startswith("QS-FM-")).values(opened_at=None)
        )  # type: ignore[call-overload]
    await run(db, clock, local(11, 30, 8, 30))
    (guo,) = await digests(db, GUO)
    zh = translator("zh_CN")
    line = guo.payload["text"].split("\n")[5]
    assert line == zh.ngettext(
        "📵 {n} of your staff has not opened Huiyin yet: {names}; send /team for their join links.",
        "📵 {n} of your staff have not opened Huiyin yet: {names}; send /team for "
        "their join links.",
        7,
        names="雷桂洲, 周强, 程刚, 赵军, 黄丽 " + zh.ngettext("and {n} other", "and {n} others", 2),
    )
    assert line.startswith("📵 ") and "7" in line


@pytest.mark.parametrize(
    ("days_left", "warned"),
    [(61, False), (60, True), (1, True), (-3, True), (None, False)],
    ids=["61-days", "60-days", "1-day", "ran-out", "never-runs-out"],
)
async def test_admins_are_warned_when_the_working_calendar_runs_out(
    db: Database, clock: ManualClock, days_left: int | None, warned: bool
) -> None:
    today = date(2026, 11, 30)
    until = today + timedelta(days=days_left) if days_left is not None else None
    await english(db, CAO)
    report = await run(db, clock, local(11, 30, 8, 30), policy_until(until))
    admin_rows = await digests(db, CAO)
    if not warned:
        assert admin_rows == []
        assert CAO not in await telegram_of(db, report.sent + report.nothing)
        return
    assert until is not None
    (row,) = admin_rows
    if days_left is not None and days_left >= 0:
        assert row.payload["text"] == (
            f"📅 The working calendar runs out on {until.isoformat()}: from then on only "
            "Monday–Friday count. Add next year's official holidays (HUIYIN_CALENDAR_FILE, see "
            "docs/calendar.md)."
        )
    else:
        assert row.payload["text"] == (
            f"📅 The working calendar ran out on {until.isoformat()}: since then only "
            "Monday–Friday count. Add this year's official holidays (HUIYIN_CALENDAR_FILE, see "
            "docs/calendar.md)."
        )
    # Only that: the district's figures are /stats; and only once a day.
    again = await run(db, clock, local(11, 30, 14, 0), policy_until(until))
    assert CAO in await telegram_of(db, again.already)
    assert len(await digests(db, CAO)) == 1


async def test_an_admin_who_cannot_be_reached_is_not_warned(
    db: Database, clock: ManualClock
) -> None:
    await set_staff(db, CAO, opened_at=None)
    report = await run(db, clock, local(11, 30, 8, 30), policy_until(date(2026, 12, 31)))
    assert CAO not in await telegram_of(db, report.sent + report.nothing)
    assert await digests(db, CAO) == []


async def test_the_worker_schedules_it_at_the_digest_time(db: Database) -> None:
    clock = ManualClock(local(11, 30, 6))
    settings = load_settings(_env_file=None, database_url=db.url, digest_time="07:45")
    before = datetime.now(UTC)
    scheduler = build_worker(db, MemorySender(), clock, settings).build_scheduler()
    after = datetime.now(UTC)
    job = scheduler.get_job("digest")
    assert job is not None and isinstance(job.trigger, CronTrigger)
    fields = {f.name: str(f) for f in job.trigger.fields}
    assert (fields["hour"], fields["minute"], fields["day_of_week"]) == ("7", "45", "*")
    assert job.trigger.timezone == ZONE
    # And once at start, to catch up: at APScheduler's "now", the real one (the job itself
    # reads the injected clock and decides whether the day's digest is still to do).
    assert before <= job.next_run_time <= after
    after = job.trigger.get_next_fire_time(None, local(11, 30, 8))
    assert after == datetime(2026, 12, 1, 7, 45, tzinfo=ZONE)
    assert load_settings(_env_file=None).digest_at == time(8, 30)
    with pytest.raises(SettingsError, match="HUIYIN_DIGEST_TIME"):
        load_settings(_env_file=None, digest_time="8h30")


async def test_unit_and_staff_names_are_escaped(db: Database, clock: ManualClock) -> None:
    """A unit or a person named with `<` or `&` (as a roster may have them) is written as
    text: the digest stays HTML that Telegram accepts, showing the names as they are."""
    async with db.transaction() as session:
        unit = await session.get(Unit, "QS-FM-HW")
        assert unit is not None
        unit.name = unit.name_en = "Hujiawan <East> & Co"
        session.add(unit)
    await set_staff(db, 700000009, opened_at=None, name="周<b>强 & 子")
    await english(db, LEI)
    await run(db, clock, local(11, 30, 8, 30))
    (lei,) = await digests(db, LEI)
    text = lei.payload["text"]
    assert "Hujiawan &lt;East&gt; &amp; Co" in text
    assert "周&lt;b&gt;强 &amp; 子" in text
    plain, _ = parse_html(text)  # raises as Telegram would on bad HTML
    assert "Hujiawan <East> & Co" in plain and "周<b>强 & 子" in plain
