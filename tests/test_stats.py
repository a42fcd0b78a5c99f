"""/stats on a prepared data set: the summary each viewer gets (scoped to their area), the
chart photo, the refusals, the usage answer; and a chart photo through the real Telegram
stacks."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.channels.memory import ShownMessage
from domain import charts
from domain.areas import Area, area_of_unit
from domain.i18n import translator
from domain.lifecycle import Level
from domain.messages import MAX_TEXT
from domain.metrics import Counts
from domain.reports import Figures, Period, Report
from handlers.stats import chart_for, summary
from storage.database import Database
from storage.models import Unit
from tests.harness import Harness
from tests.test_conversation_onboarding import register
from tests.test_e2e_telegram import Running, Start, User, bot_running, starts
from tests.test_metrics import HOUR, owner, request

ZONE = ZoneInfo("Asia/Shanghai")
WANG = 700000001  # grid member
XU = 700000011  # coordinator of Tianhe (QS-JB-TH)
HU = 700000017  # town officer of Jiangbei (QS-JB)
GAO = 700000021  # the health commission: health; counseling
CAO = 700000026  # district admin
RESIDENT = 900001
PNG = b"\x89PNG\r\n\x1a\n"


def local(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def prepare(db: Database) -> None:
    """November 2026 (the clock stands at 10:00 on the 30th):

    Tianhe (QS-JB-TH)  grid 1: closed, accepted in 1 h, satisfied          (repair)
                       grid 1: closed, accepted in 2 h, not rated          (health)
                       grid 2: assigned, never accepted: overdue            (repair)
    Liuyuan (QS-JB-LY) grid 1: resolved, accepted late (30 h)              (health)
                       grid 1: cancelled                                   (repair)
    Maojiachong (QS-FM-MJ, the other town): closed, accepted in 1 h, not satisfied (health)
    October, Tianhe grid 1: closed (outside the period)
    """
    async with db.transaction() as session:
        ids = await owner(session)
        session.add_all(
            [
                request(ids, "closed", accepted=HOUR, satisfaction="satisfied",
                        grid="QS-JB-TH-01", created_at=local(11, 2, 9)),
                request(ids, "closed", accepted=2 * HOUR, grid="QS-JB-TH-01",
                        category="health", created_at=local(11, 2, 23, 30)),
                request(ids, "assigned", grid="QS-JB-TH-02", created_at=local(11, 3, 0, 30)),
                request(ids, "resolved", accepted=30 * HOUR, grid="QS-JB-LY-01",
                        category="health", created_at=local(11, 20, 15)),
                request(ids, "cancelled", grid="QS-JB-LY-01", created_at=local(11, 21)),
                request(ids, "closed", accepted=HOUR, satisfaction="not_satisfied",
                        grid="QS-FM-MJ-01", category="health", created_at=local(11, 25)),
                request(ids, "closed", accepted=HOUR, grid="QS-JB-TH-01",
                        created_at=local(10, 31, 23, 59)),
            ]
        )  # fmt: skip


async def ask(harness: Harness, user: int, command: str) -> list[ShownMessage]:
    await harness.say(user, "/start")
    return await harness.say(user, command)


def lines(message: ShownMessage) -> list[str]:
    return [re.sub(r"</?b>", "", line) for line in message.text.split("\n")]


def photo_of(shown: list[ShownMessage]) -> ShownMessage:
    (photo,) = [m for m in shown if m.message.upload_kind == "photo"]
    return photo


async def test_town_officer_sees_the_town_by_community_and_category(
    harness: Harness, db: Database
) -> None:
    await prepare(db)
    harness.languages[HU] = "en"
    shown = await ask(harness, HU, "/stats 2026-11")
    assert len(shown) == 2
    # Received: the 4 Jiangbei requests that are not cancelled. Accepted: 3 (all but the one
    # never accepted). Responded in time: 2 (the 30 h one was late). Resolved: 3; closed: 2;
    # open: 1, overdue (never accepted, past its first deadline). Rated: 1, satisfied: 1.
    assert lines(shown[0]) == [
        "📊 Jiangbei Street · 2026-11",
        "Received 4 · accepted 3 · resolved 3 · closed 2 · open 1 · overdue 1",
        "Response rate 50% (2/4) · resolution rate 75% (3/4) · satisfaction rate 100% (1/1)",
        "",
        "By community",
        "Liuyuan Community: 1 received, 0 open · response 0% (0/1) · resolution 100% (1/1) · "
        "satisfaction —",
        "Qianjin Community: 0 received, 0 open · response — · resolution — · satisfaction —",
        "Tianhe Community: 3 received, 1 open · response 67% (2/3) · resolution 67% (2/3) · "
        "satisfaction 100% (1/1)",
        "",
        "By category",
        "Home repairs (water, power): 2 received, 1 open · response 50% (1/2) · "
        "resolution 50% (1/2) · satisfaction 100% (1/1)",
        "Health and medical care: 2 received, 0 open · response 50% (1/2) · "
        "resolution 100% (2/2) · satisfaction —",
    ]
    photo = photo_of(shown)
    assert photo.message.upload_bytes.startswith(PNG)
    assert photo.message.upload_name == "stats-QS-JB-2026-11.png"
    assert photo.text == "Jiangbei Street · 2026-11"


async def test_in_chinese(harness: Harness, db: Database) -> None:
    await prepare(db)
    harness.languages[HU] = "zh-hans"
    shown = await ask(harness, HU, "/stats 2026-11")
    text = lines(shown[0])
    assert text[0] == "📊 江北街道 · 2026-11"
    assert text[2] == "响应率 50%（2/4） · 解决率 75%（3/4） · 满意率 100%（1/1）"
    assert (
        "按社区（村）" in text
        and "天河社区：受理 3，办理中 1 · 响应 67%（2/3） · 解决 67%（2/3） · 满意 100%（1/1）"
        in text
    )
    assert photo_of(shown).text == "江北街道 · 2026-11"


async def test_coordinator_sees_only_their_community_by_grid(
    harness: Harness, db: Database
) -> None:
    await prepare(db)
    harness.languages[XU] = "en"
    shown = await ask(harness, XU, "/stats month")
    text = lines(shown[0])
    assert text[:3] == [
        "📊 Tianhe Community · 2026-11",
        "Received 3 · accepted 2 · resolved 2 · closed 2 · open 1 · overdue 1",
        "Response rate 67% (2/3) · resolution rate 67% (2/3) · satisfaction rate 100% (1/1)",
    ]
    assert text[4] == "By grid"
    assert text[5].startswith("Tianhe Grid 1: 2 received") and text[6].startswith(
        "Tianhe Grid 2: 1 received"
    )
    assert photo_of(shown).message.upload_bytes.startswith(PNG)


async def test_a_unit_outside_the_area_reveals_nothing(harness: Harness, db: Database) -> None:
    await prepare(db)
    harness.languages[XU] = "en"
    (other_town,) = await ask(harness, XU, "/stats QS-FM")
    (other_community,) = await ask(harness, XU, "/stats 2026-11 QS-JB-LY")
    (no_such_unit,) = await ask(harness, XU, "/stats QS-ZZ")
    asked = ((other_town, "QS-FM"), (other_community, "QS-JB-LY"), (no_such_unit, "QS-ZZ"))
    answers = {m.text.replace(unit, "X") for m, unit in asked}
    assert len(answers) == 1
    assert answers.pop().startswith("There is no unit “X” in your area.")


async def test_town_officer_narrows_to_a_community_by_name(harness: Harness, db: Database) -> None:
    await prepare(db)
    harness.languages[HU] = "zh-hans"
    shown = await ask(harness, HU, "/stats 2026-11 柳园社区")
    text = lines(shown[0])
    assert text[0] == "📊 柳园社区 · 2026-11"
    assert text[1] == "受理 1 · 已接单 1 · 已解决 1 · 已办结 0 · 办理中 0 · 超时 0"
    assert "按网格" in text


async def test_admin_sees_the_district_by_town(harness: Harness, db: Database) -> None:
    await prepare(db)
    harness.languages[CAO] = "en"
    text = lines((await ask(harness, CAO, "/stats 2026-11"))[0])
    assert text[1] == "Received 5 · accepted 4 · resolved 4 · closed 3 · open 1 · overdue 1"
    assert text[2] == (
        "Response rate 60% (3/5) · resolution rate 80% (4/5) · satisfaction rate 50% (1/2)"
    )
    assert text[4:7] == [
        "By town",
        "Fengming Town: 1 received, 0 open · response 100% (1/1) · resolution 100% (1/1) · "
        "satisfaction 0% (0/1)",
        "Jiangbei Street: 4 received, 1 open · response 50% (2/4) · resolution 75% (3/4) · "
        "satisfaction 100% (1/1)",
    ]


async def test_a_department_sees_its_remit_only(harness: Harness, db: Database) -> None:
    await prepare(db)
    harness.languages[GAO] = "en"
    text = lines((await ask(harness, GAO, "/stats 2026-11"))[0])
    # health only: Tianhe's closed one, Liuyuan's resolved one, Maojiachong's closed one
    assert text[1] == "Received 3 · accepted 3 · resolved 3 · closed 2 · open 0 · overdue 0"
    assert "Only the categories in your remit are counted." in text
    assert [line.split(":")[0] for line in text[text.index("By category") + 1 :]] == [
        "Health and medical care"
    ]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
async def test_refusals_and_usage(harness: Harness, db: Database, language: str) -> None:
    t = translator("en" if language == "en" else "zh_CN")
    for user in (WANG, RESIDENT, HU):
        harness.languages[user] = language
    refusal = t._(
        "/stats is for community coordinators, town officers, district departments and the "
        "district admin."
    )
    (grid_member,) = await ask(harness, WANG, "/stats")
    await register(harness, RESIDENT)
    (resident,) = await harness.say(RESIDENT, "/stats")
    assert grid_member.text == resident.text == refusal
    usage = t._(
        "Usage: /stats [today|week|month|YYYY-MM] [UNIT]. For example: /stats 2026-10, or "
        "/stats week QS-JB-TH (a town or community in your area, by code or name)."
    )
    for bad in ("/stats 2026-13", "/stats 2031-01", "/stats yesterday QS-JB"):
        (answer,) = await ask(harness, HU, bad)
        assert answer.text == usage, bad
    (grid,) = await ask(harness, HU, "/stats QS-JB-TH-01")
    assert grid.text.startswith("天河社区第一网格" if language != "en" else "Tianhe Grid 1")


def test_the_summary_stays_within_telegrams_limit() -> None:
    figures = Figures.of(Counts(received=123456, accepted=1, responded=1, resolved=1, rated=1))
    area_parts = {f"P{n:03d}": f"P{n:03d}" for n in range(300)}
    area = Area("QS", Level.DISTRICT, None, None, area_parts)
    report = Report(
        area,
        Period(local(11, 1), local(12, 1), "2026-11"),
        figures,
        [(code, figures) for code in area_parts],
        [("repair", figures), ("health", figures)],
        [(date(2026, 11, 1), 1)],
    )
    t = translator("zh_CN")
    text = summary(t, report, Level.DISTRICT, {})
    assert len(text) <= MAX_TEXT
    assert text.split("\n")[-5] == t._("… and more; the chart and /export have everything.")
    assert "按类别" in text  # the shorter section is kept whole


async def test_without_a_chinese_font_the_chart_is_in_english(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(charts, "_configured", None)
    monkeypatch.setattr(charts, "_candidates", lambda: [charts.default_font()])
    charts.chart_font.cache_clear()
    try:
        async with db.session() as session:
            area = await area_of_unit(session, "QS-JB")
            assert area is not None
            units = {
                u.code: u for u in [await session.get(Unit, c) for c in ("QS-JB", "QS-JB-TH")] if u
            }
        figures = Figures.of(Counts(received=2, responded=1))
        report = Report(
            area, Period(local(11, 1), local(12, 1), "2026-11"), figures,
            [("QS-JB-TH", figures)], [], [(date(2026, 11, 1), 2)],
        )  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="domain.charts"):
            chart = chart_for(translator("zh_CN"), report, units)
            again = chart_for(translator("zh_CN"), report, units)
    finally:
        charts.chart_font.cache_clear()
    assert chart.texts.title == "Jiangbei Street · 2026-11"
    assert [label for label, _ in chart.parts] == ["Tianhe Community"]
    assert chart.font == charts.Font(None) and again == chart
    warnings = [r for r in caplog.records if "no installed font has Chinese glyphs" in r.message]
    assert len(warnings) == 1  # once, however many charts


@pytest.mark.parametrize("start", starts())
async def test_chart_photo_arrives_through_telegram(tmp_path: Path, start: Start) -> None:
    """Through the real stacks, at each moment of the matrix. November's requests are in the
    database when the bot starts, so on a working morning its start-up digest has something
    to say to the Jiangbei coordinators and town officer (none of whom has opened the bot)."""

    async def november(running: Running) -> None:
        await prepare(running.db)

    async with bot_running(tmp_path, start, november) as running:
        officer = User(running.fake, HU, language="zh-hans")
        await officer.say("/start", "")
        mark = len(running.fake.calls)
        running.fake.push_text(HU, "/stats 2026-11", language_code="zh-hans")
        await officer.expect("江北街道", after=mark)
        call = await running.fake.wait_for("sendPhoto", after=mark)
        assert call.ok
        photo = running.fake.messages(HU)[-1]
        assert (photo.kind, photo.plain_text) == ("photo", "江北街道 · 2026-11")
        uploaded = running.fake.file_of(photo)
        assert uploaded.content.startswith(PNG)
        assert uploaded.file_name == "stats-QS-JB-2026-11.png"
