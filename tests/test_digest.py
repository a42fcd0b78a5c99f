"""The morning digest: its timing on the Chinese working calendar (make-up days and holidays),
exactly once per person per day across repeated runs, restarts and two workers at once, what
it says to whom, and the cron trigger the worker builds for it. Time is a ManualClock; the job
is called directly at each moment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlmodel import col, select

from bot.app import build_worker
from bot.channels.memory import MemorySender
from bot.clock import ManualClock
from bot.domain.deadlines import DEFAULT_POLICY
from bot.domain.lifecycle import Action
from bot.i18n import translator
from bot.settings import SettingsError, load_settings
from schedules.digest import DigestReport, send_digests
from storage.database import Database
from storage.models import Account, OutboxMessage, Staff
from tests.test_ledger import account, act, submit

ZONE = ZoneInfo("Asia/Shanghai")
AT = time(8, 30)
XU = 700000011  # coordinator, Tianhe community (Jiangbei street)
SUN = 700000012  # coordinator, Liuyuan community (Jiangbei street)
HU = 700000017  # town officer, Jiangbei street
GUO = 700000018  # town officer, Fengming town
CHENG = 700000014  # coordinator, Maojiachong village (Fengming town)


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def run(db: Database, clock: ManualClock, moment: datetime) -> DigestReport:
    clock.set(moment)
    return await send_digests(db, clock, ZONE, DEFAULT_POLICY, AT)


async def digests(db: Database, chat_id: int | None = None) -> list[OutboxMessage]:
    async with db.session() as session:
        query = select(OutboxMessage).where(col(OutboxMessage.ref_key).startswith("digest:"))
        if chat_id is not None:
            query = query.where(OutboxMessage.chat_id == chat_id)
        return list((await session.exec(query.order_by(col(OutboxMessage.id)))).all())


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
    assert await telegram_of(db, first.sent) == [XU, SUN, HU]
    # The other town's people have nothing to hear about: nothing at all is sent to them.
    assert set(await telegram_of(db, first.nothing)) == {GUO, CHENG, 700000015}
    sent = await digests(db)
    assert sorted(m.chat_id for m in sent) == [XU, SUN, HU]
    assert {m.ref_key for m in sent} == {"digest:2026-11-30"}
    assert {m.next_attempt_at for m in sent} == {local(11, 30, 8, 30)}  # staff: no quiet hours

    again = await run(db, clock, local(11, 30, 8, 31))
    assert again.sent == [] and len(again.already) == 3
    # A restart: a new worker, its catch-up run at start.
    settings = load_settings(_env_file=None, database_url=db.url, digest_time="08:30")
    restarted = build_worker(db, MemorySender(), clock, settings)
    (daily,) = restarted.dailies
    clock.set(local(11, 30, 10, 15))
    report = await daily.job()
    assert isinstance(report, DigestReport) and report.sent == [] and len(report.already) == 3
    assert len(await digests(db)) == 3


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
        assert sorted(m.chat_id for m in rows) == [XU, HU]


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
            *(send_digests(d, clock, ZONE, DEFAULT_POLICY, AT) for d in (db, second))
        )
    finally:
        await second.dispose()
    sent = [staff_id for r in reports for staff_id in r.sent]
    assert sorted(await telegram_of(db, sent)) == [XU, SUN, HU]
    assert len(sent) == 3
    assert sorted(m.chat_id for m in await digests(db)) == [XU, SUN, HU]


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
