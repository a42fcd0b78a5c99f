"""The `huiyin` command: run without a token, import (accepted and refused), invite, roster
status, db, demo."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.cli import main
from bot.demo import demo_start, run_demo
from domain.clock import ManualClock
from storage.database import Database
from storage.models import Invite, Staff
from storage.roster import sample_district_dir

ZONE = ZoneInfo("Asia/Shanghai")


def local(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZONE).astimezone(UTC)


# When the demo is played (it runs on its own clock from the next working morning after).
PLAYED = ManualClock(local(12, 2, 23))  # a Wednesday evening


@pytest.fixture
def database_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("HUIYIN_DATABASE_URL", url)
    monkeypatch.delenv("HUIYIN_BOT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    return url


def test_run_without_a_token_explains_how_to_get_one(
    database_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "@BotFather" in err and "huiyin demo" in err


def test_bad_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUIYIN_FRAMEWORK", "flask")
    assert main(["db", "upgrade"]) == 2
    assert "HUIYIN_FRAMEWORK" in capsys.readouterr().err


async def count_staff(url: str) -> int:
    db = Database(url)
    async with db.session() as session:
        staff = (await session.exec(select(Staff))).all()
    await db.dispose()
    return len(staff)


def test_import_then_invite(database_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    assert main(["import", str(sample_district_dir())]) == 0
    assert "26 added" in capsys.readouterr().out
    assert asyncio.run(count_staff(database_env)) == 26
    assert main(["import", str(sample_district_dir())]) == 0
    assert "26 unchanged" in capsys.readouterr().out

    assert main(["invite", "13800000013", "--bot-username", "@huiyin_bot"], clock=PLAYED) == 0
    out = capsys.readouterr().out
    assert "https://t.me/huiyin_bot?start=i_" in out

    async def invites() -> list[Invite]:
        db = Database(database_env)
        async with db.session() as session:
            rows = list((await session.exec(select(Invite))).all())
        await db.dispose()
        return rows

    [invite] = asyncio.run(invites())
    assert f"i_{invite.code}" in out
    assert main(["invite", "19999999999"], clock=PLAYED) == 1


def test_invite_again_gives_the_link_still_in_circulation(
    database_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(sample_district_dir())]) == 0
    capsys.readouterr()
    assert main(["invite", "13800000013"], clock=PLAYED) == 0
    first = capsys.readouterr().out
    assert "Invite for 马卫东 (coordinator, QS-JB-QJ), valid until 2026-12-09 23:00:" in first
    later = ManualClock(local(12, 5, 10))
    assert main(["invite", "13800000013", "--bot-username", "huiyin_bot"], clock=later) == 0
    again = capsys.readouterr().out
    code = re.search(r"/start (i_\S+)\)", first)
    assert code is not None and f"https://t.me/huiyin_bot?start={code.group(1)}" in again


def test_roster_status_at_the_terminal(
    database_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nobody has opened Huiyin right after the import (see tests/test_team.py for the states)."""
    assert main(["import", str(sample_district_dir())]) == 0
    capsys.readouterr()
    assert main(["roster", "status", "--unit", "QS-FM-SQ"]) == 0
    assert [re.sub(r" +", " ", line) for line in capsys.readouterr().out.splitlines()] == [
        "QS-FM-SQ 石桥村 (Shiqiao Village)",
        " 朱玉兰 coordinator QS-FM-SQ 13800000016 not opened",
        "QS-FM-SQ-01 石桥村网格 (Shiqiao Grid)",
        " 吴敏 grid_member QS-FM-SQ-01 13800000010 not opened",
        "2 staff: 0 reachable, 2 not opened, 0 blocked (or deactivated, or chat not found)",
    ]
    assert main(["roster", "status"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "26 staff: 0 reachable, 26 not opened, 0 blocked (or deactivated, or chat not found)"
    )
    assert main(["roster", "status", "--unit", "QS-XX"]) == 1
    assert "no unit with that code" in capsys.readouterr().err


def test_refused_import_writes_nothing(
    database_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    roster = tmp_path / "roster"
    shutil.copytree(sample_district_dir(), roster)
    people = roster / "people.csv"
    people.write_text(
        people.read_text(encoding="utf-8").replace("grid_member", "wizard", 1), encoding="utf-8"
    )
    assert main(["import", str(roster)]) == 1
    err = capsys.readouterr().err
    assert "nothing was written" in err and "people.csv:2:" in err
    assert asyncio.run(count_staff(database_env)) == 0


async def test_demo_plays_the_whole_loop() -> None:
    out = io.StringIO()
    driver = await run_demo("en", out, clock=PLAYED)
    transcript = out.getvalue()
    assert "Your reference number is HY000001" in transcript
    assert "has been accepted by" in transcript
    assert "Replaced the pipe joint" in transcript
    assert "Reported by: Li Ming" in transcript
    assert "This task is not assigned to you." in transcript
    assert driver.sender.messages(700000008), "the second grid member got the family request"
    # An hour later (the demo's own clock) the verdict, then the coordinator's questions.
    # Her typed words are kept and the question asked again; each answered question then
    # shows her choice instead of its buttons.
    assert "your words on HY000001 are kept with the request" in transcript
    assert "💬 Comment: It's fixed, thank you Mr Wang!" in transcript
    assert "(card updated)" in transcript and "\n      ✅ Solved\n" in transcript
    assert "Thank you! HY000001 is closed, and your words are kept with it." in transcript
    assert "⭐ Verdict: solved · satisfied · by the reporter" in transcript
    assert "📊 Tianhe Community ·" in transcript
    assert "[photo: " in transcript


def message_with(transcript: str, fragment: str) -> str:
    """The text of the transcript's first message holding `fragment` (up to the next line the
    transcript starts: a message, an action or a narrator's note)."""
    start = transcript.index(fragment)
    ends = [transcript.find(mark, start) for mark in ("\n   🤖", "\n👤", "\n\n===")]
    return transcript[start : min([end for end in ends if end != -1] or [len(transcript)])]


async def test_demo_a_party_member_claims_a_visit_to_a_left_behind_elder() -> None:
    """The demo's last scene: a party member joins the village's volunteers by its link and is
    approved with one tap; the son's need of company for his mother is offered automatically;
    she claims it (only then seeing the mother's name and phone), reports it done, the grid
    member confirms and the son's verdict comes back to her."""
    out = io.StringIO()
    driver = await run_demo("en", out, clock=PLAYED)
    transcript = out.getvalue()
    scene = transcript[transcript.index("=== 6. A party member claims") :]
    assert "Approved by 程刚" in scene
    card = message_with(scene, "📣 Can you help? HY000003")
    assert "Visits and company · Maojiachong Village" in card
    assert "Chen Shufen" not in card and "13912345678" not in card
    mine = message_with(scene, "🙋 HY000003 is yours.")
    assert "👤 For: Chen Shufen · ☎ 13912345678" in mine and "✅ Done" in mine
    assert "HY000003 was claimed by Liu Hong (volunteer) · party member" in scene
    assert "Time given: 2 h" in scene
    assert "confirmed your work on HY000003" in scene
    assert "Your request HY000003 has been resolved." in scene
    assert (
        "🌟 The resident's verdict on HY000003: solved, and they were satisfied. Thank you!"
        in scene
    )
    assert "⚠" not in scene  # no press was refused
    record = message_with(scene, "🙋 Your service record")
    assert "Claims: 1 · done: 1 · hours: 2" in record
    assert "HY000003 Visits and company" in record and "the resident was satisfied" in record
    verdicts = [m for m in driver.sender.messages(900000003) if m.text.startswith("🌟")]
    assert len(verdicts) == 1 and not verdicts[0].buttons


async def test_demo_in_chinese_reads_in_chinese() -> None:
    out = io.StringIO()
    await run_demo("zh", out, clock=PLAYED)
    transcript = out.getvalue()
    assert "HY000002" in transcript
    assert "Your reference number" not in transcript
    assert "🌟 群众对 HY000003 的评价：已解决，满意。谢谢您！" in transcript


async def test_demo_database_is_gone_afterwards() -> None:
    driver = await run_demo("en", io.StringIO(), clock=PLAYED)
    database_file = Path(driver.db.url.split("///")[1])
    assert not await asyncio.to_thread(database_file.exists)


@pytest.mark.parametrize(
    ("played", "starts"),
    [
        (local(12, 2, 9), local(12, 2, 10)),  # a working morning: later that morning
        (local(12, 2, 10), local(12, 3, 10)),  # 10:00 has come: the next working day
        (local(12, 2, 23), local(12, 3, 10)),  # an evening: the next morning
        (local(12, 4, 18), local(12, 7, 10)),  # Friday evening: Monday
        (local(12, 5, 10), local(12, 7, 10)),  # Saturday: Monday
        (local(9, 30, 12), local(10, 8, 10)),  # before National Day: the first working day after
    ],
)
def test_the_demo_plays_on_the_next_working_morning(played: datetime, starts: datetime) -> None:
    assert demo_start(played) == starts


async def test_the_demo_reads_the_same_whenever_it_is_played() -> None:
    """Played on a working morning, an evening or a Saturday, the demo tells the same story;
    only its dates differ (its own clock starts at the next working morning)."""

    async def transcript(played: datetime) -> str:
        out = io.StringIO()
        await run_demo("en", out, clock=ManualClock(played))
        dated = re.sub(r"\d{4}-\d{2}-\d{2}", "<date>", out.getvalue())
        return re.sub(r"\[photo: [^\]]+\]", "[photo]", dated)  # a temporary file's name

    morning = await transcript(local(12, 2, 9))
    assert await transcript(local(12, 2, 23)) == morning
    assert await transcript(local(12, 5, 10)) == morning
