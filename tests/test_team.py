"""/team and `huiyin roster status`: who below a coordinator, town officer, department or admin
Huiyin can reach, each person's state in words, not-reachable first; nothing outside the
viewer's team shows or gets a link (also through forged buttons); the join link works and makes
its person reachable; paging on a roster of a real district's size (13 towns, 650 villages,
about 3,000 staff) stays within Telegram's limits; the terminal's view of the same."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlmodel import col, select

from bot.channels.console import plain
from bot.channels.memory import ShownMessage
from bot.cli import display_width, roster_status_command
from domain.clock import ManualClock
from domain.invites import issue_invite
from domain.reach import Reach, reach_of
from handlers.lookup import PAGE
from storage.database import Database
from storage.models import Invite, Staff, Unit
from tests.harness import ZONE, Harness

WANG = 700000001  # grid member, Tianhe Grid 1
LI = 700000002  # grid member, Tianhe Grid 1
ZHANG = 700000003  # grid member, Tianhe Grid 2
LIU = 700000004  # grid member, Liuyuan Grid 1 (another community)
ZHAO = 700000007  # grid member, Maojiachong Grid 1 (another town)
XU = 700000011  # coordinator, Tianhe community
SUN = 700000012  # coordinator, Liuyuan community
HU = 700000017  # town officer, Jiangbei street
LUO = 700000022  # district housing bureau
CAO = 700000026  # district admin
RESIDENT = 900001

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE).astimezone(UTC)
MAX_TEXT = 4096
MAX_BUTTONS = 100
MAX_CALLBACK_BYTES = 64


@pytest.fixture
def harness(unopened_db: Database, clock: ManualClock) -> Harness:
    """The sample district on the day Huiyin is switched on: nobody has opened it yet."""
    harness = Harness(unopened_db, clock)
    for user in (WANG, LI, ZHANG, LIU, ZHAO, XU, SUN, HU, LUO, CAO, RESIDENT):
        harness.languages[user] = "en"
    return harness


async def staff_of(db: Database, telegram_id: int) -> Staff:
    async with db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()


async def set_staff(db: Database, who: int, **values: object) -> None:
    async with db.transaction() as session:
        await session.exec(update(Staff).where(col(Staff.telegram_id) == who).values(**values))  # type: ignore[call-overload]


PERSON = re.compile(r"^(?:✅|⏳|🚫) <b>([^<]+)</b> · ", re.MULTILINE)


def names_listed(message: ShownMessage) -> list[str]:
    return PERSON.findall(message.text)


def link_buttons(message: ShownMessage) -> list[str]:
    return [b.data for b in message.buttons if b.data.startswith("tl:")]


def within_telegram_limits(message: ShownMessage) -> None:
    shown = plain(message.text)
    assert len(message.text) <= MAX_TEXT
    assert len(shown.encode("utf-16-le")) // 2 <= MAX_TEXT  # how Telegram counts
    assert len(message.buttons) <= MAX_BUTTONS
    assert all(len(b.data.encode()) <= MAX_CALLBACK_BYTES for b in message.buttons if b.data)


# Who may, and what they see --------------------------------------------------------------------


@pytest.mark.parametrize("user", [WANG, RESIDENT], ids=["grid-member", "resident"])
async def test_those_without_an_area_are_refused(harness: Harness, user: int) -> None:
    await harness.say(user, "/start")
    if user == RESIDENT:
        await harness.tap(RESIDENT, value="yes")
    (answer,) = await harness.say(user, "/team")
    assert answer.text == (
        "/team is for community coordinators, town officers, district departments and the "
        "district admin."
    )
    assert answer.buttons == []


async def test_a_coordinator_sees_the_community_grid_members_not_reachable_first(
    harness: Harness,
) -> None:
    await harness.say(XU, "/start")
    await harness.say(ZHANG, "/start")  # opened Huiyin: reachable
    await set_staff(harness.db, LI, opened_at=MONDAY, refused_at=MONDAY, refused_reason="blocked")
    (team,) = await harness.say(XU, "/team")
    lines = team.text.split("\n")
    assert lines[:3] == [
        "<b>Your team: 3 people</b>",
        "✅ 1 reachable · ⏳ 1 not opened yet · 🚫 1 blocked or gone",
        "",
    ]
    # Not reachable first (Tianhe Grid 1), by unit and name; then the reachable (Grid 2).
    assert sorted(lines[3:5]) == [
        "⏳ <b>王建华</b> · grid member · Tianhe Grid 1 — has not opened Huiyin yet",
        "🚫 <b>李秀英</b> · grid member · Tianhe Grid 1 — blocked Huiyin",
    ]
    assert lines[5] == "✅ <b>张伟</b> · grid member · Tianhe Grid 2"
    assert lines[6:] == [
        "",
        "Huiyin can write only to people who have opened it. Tap 🔗 for a person's join link "
        "and forward it to them.",
    ]
    wang, li = await staff_of(harness.db, WANG), await staff_of(harness.db, LI)
    assert sorted(link_buttons(team)) == sorted([f"tl:{wang.id}", f"tl:{li.id}"])
    assert {b.text for b in team.buttons} == {"🔗 Link for 王建华", "🔗 Link for 李秀英"}


async def test_each_refusal_is_named_and_everyone_reachable_needs_no_links(
    harness: Harness,
) -> None:
    await harness.say(XU, "/start")
    for user in (WANG, LI, ZHANG):
        await harness.say(user, "/start")
    (team,) = await harness.say(XU, "/team")
    assert "✅ 3 reachable · ⏳ 0 not opened yet · 🚫 0 blocked or gone" in team.text
    assert team.buttons == [] and "Tap 🔗" not in team.text
    for reason, words in (
        ("deactivated", "Telegram account deleted"),
        ("chat_not_found", "Telegram cannot find the chat"),
        ("blocked", "blocked Huiyin"),
    ):
        await set_staff(harness.db, WANG, refused_at=MONDAY, refused_reason=reason)
        (team,) = await harness.say(XU, "/team")
        assert f"🚫 <b>王建华</b> · grid member · Tianhe Grid 1 — {words}" in team.text


@pytest.mark.parametrize(
    ("viewer", "team"),
    [
        (XU, {"王建华", "李秀英", "张伟"}),
        (SUN, {"刘芳", "陈磊"}),
        (HU, {"徐国庆", "孙红梅", "马卫东", "王建华", "李秀英", "张伟", "刘芳", "陈磊", "杨静"}),
        (LUO, set()),  # the housing bureau has no other staff
        (CAO, "everyone but the admin"),
    ],
    ids=["coordinator", "other-coordinator", "town-officer", "department", "admin"],
)
async def test_the_team_is_the_staff_below_the_viewer(
    harness: Harness, viewer: int, team: set[str] | str
) -> None:
    await harness.say(viewer, "/start")
    shown = await harness.say(viewer, "/team")
    if team == set():
        assert [m.text for m in shown] == ["There is nobody on the roster below you yet."]
        return
    names = set(names_listed(shown[0]))
    offset = PAGE
    while any(b.data == f"tm:{offset}" for b in shown[0].buttons):
        shown = await harness.press(viewer, f"tm:{offset}")
        names |= set(names_listed(shown[0]))
        offset += PAGE
    if isinstance(team, str):
        async with harness.db.session() as session:
            everyone = set((await session.exec(select(Staff.name))).all())
        assert names == everyone - {"曹明"}
    else:
        assert names == team


async def test_help_lists_team_for_those_with_an_area(harness: Harness) -> None:
    await harness.say(XU, "/start")
    await harness.say(WANG, "/start")
    assert "/team" in (await harness.say(XU, "/help"))[0].text
    assert "/team" not in (await harness.say(WANG, "/help"))[0].text


# Buttons checked again when pressed -----------------------------------------------------------


async def test_forged_or_stale_buttons_make_nothing(harness: Harness) -> None:
    await harness.say(XU, "/start")
    await harness.say(WANG, "/start")
    await harness.say(ZHANG, "/start")
    liu, zhao = await staff_of(harness.db, LIU), await staff_of(harness.db, ZHAO)
    xu, zhang = await staff_of(harness.db, XU), await staff_of(harness.db, ZHANG)
    # Another community's, another town's, himself, no one, garbage: not in his team.
    for data in (f"tl:{liu.id}", f"tl:{zhao.id}", f"tl:{xu.id}", "tl:999999", "tl:abc", "tl:"):
        assert await harness.press(XU, data) == []
        assert harness.last_answer == "This person is not in your team."
        assert harness.results[-1].callback_alert
    # Someone in his team who has opened Huiyin meanwhile: no link needed.
    assert await harness.press(XU, f"tl:{zhang.id}") == []
    assert harness.last_answer == "张伟 has opened Huiyin already: no link is needed."
    # A grid member has no team at all.
    assert await harness.press(WANG, f"tl:{zhang.id}") == []
    assert harness.last_answer == "This person is not in your team."
    for data in ("tm:7", "tm:abc", "tm:-10"):
        assert await harness.press(XU, data) == []
        assert harness.last_answer == "This button is no longer active."
    assert await harness.press(WANG, "tm:0") == []
    async with harness.db.session() as session:
        assert (await session.exec(select(Invite))).all() == []


# The join link ---------------------------------------------------------------------------------


async def test_the_join_link_binds_its_person_who_is_then_reachable(harness: Harness) -> None:
    await harness.say(XU, "/start")
    await harness.say(XU, "/team")
    intro, forward = await harness.tap(XU, "Link for 王建华")
    assert intro.text == (
        "🔗 The join link for 王建华. Forward the next message to them: it works once, for them "
        "only, until 2026-12-07 10:00. Once they open it, Huiyin can reach them."
    )
    assert forward.text.startswith(
        "Huiyin, the community service bot: 徐国庆 asks you to join as grid member of Tianhe "
        "Grid 1. Your tasks will come to you there.\n"
        "Open the Huiyin bot in Telegram and send it this line: <code>/start i_"
    )
    code = re.search(r"/start i_([A-Za-z0-9_-]+)", forward.text)
    assert code is not None
    # Asked again while it is still good: the same link, not a second one in circulation.
    (_, again) = await harness.tap(XU, "Link for 王建华")
    assert f"i_{code.group(1)}" in again.text

    harness.clock.advance(timedelta(hours=2))
    (welcome, *_) = await harness.say(WANG, f"/start i_{code.group(1)}")
    assert "You are registered as grid member of Tianhe Grid 1" in welcome.text
    wang = await staff_of(harness.db, WANG)
    assert reach_of(wang) is Reach.REACHABLE
    assert wang.opened_at is not None
    async with harness.db.session() as session:
        invite = await session.get(Invite, code.group(1))
        assert invite is not None and invite.used_by_telegram_id == WANG
    (team,) = await harness.say(XU, "/team")
    assert "✅ <b>王建华</b> · grid member · Tianhe Grid 1" in team.text
    assert "Link for 王建华" not in [b.text for b in team.buttons]
    # The old button: he is reachable now, so nothing more is made.
    assert await harness.press(XU, f"tl:{wang.id}") == []
    assert harness.last_answer == "王建华 has opened Huiyin already: no link is needed."


async def test_with_the_bot_username_the_link_is_a_t_me_link(harness: Harness) -> None:
    harness.dispatcher.bot_username = "huiyin_bot"
    await harness.say(HU, "/start")
    await harness.say(HU, "/team")
    _, forward = await harness.tap(HU, "Link for 马卫东")
    match = re.search(
        r"Open this link to join: (https://t\.me/huiyin_bot\?start=i_\S+)$", forward.text
    )
    assert match is not None
    assert [(b.text, b.url) for b in forward.buttons] == [("Open Huiyin", match.group(1))]


async def test_an_invite_is_reused_only_while_it_has_a_day_left(unopened_db: Database) -> None:
    async with unopened_db.transaction() as session:
        wang = (await session.exec(select(Staff).where(Staff.telegram_id == WANG))).one()
        first = await issue_invite(session, wang, MONDAY)
        same = await issue_invite(session, wang, MONDAY + timedelta(days=5, hours=23))
        fresh = await issue_invite(session, wang, MONDAY + timedelta(days=6, hours=1))
    assert same.code == first.code
    assert fresh.code != first.code
    assert fresh.expires_at == MONDAY + timedelta(days=13, hours=1)


# A district's size -----------------------------------------------------------------------------

TOWNS = 13
VILLAGES_PER_TOWN = 50


@dataclass
class BigDistrict:
    staff: int
    town_staff: dict[str, int]  # town code: its coordinators and grid members
    states: dict[Reach, int]


def reach_values(n: int, now: datetime) -> dict[str, Any]:
    """Every third person has opened Huiyin, every seventh of those then blocked it; a few
    have no Telegram id at all."""
    if n % 3 == 0:
        refused = n % 7 == 0
        return {
            "telegram_id": 800_000_000 + n,
            "opened_at": now,
            "refused_at": now if refused else None,
            "refused_reason": "blocked" if refused else None,
        }
    return {"telegram_id": None if n % 10 == 1 else 800_000_000 + n}


async def big_district(db: Database, now: datetime) -> BigDistrict:
    """13 towns of 50 villages with 3 or 4 grids each: an officer per town, a coordinator per
    village, a grid member per grid, and an admin — 2,939 staff. The first town's people and
    places have the longest names the roster allows (50 and 100 characters)."""
    units: list[Unit] = [Unit(code="BD", level="district", name="大区", name_en="Big District")]
    people: list[Staff] = []
    town_staff: dict[str, int] = {}
    states = dict.fromkeys(Reach, 0)

    def person(name: str, role: str, unit: str) -> None:
        n = len(people) + 1
        row = Staff(
            name=name, phone=f"139{n:08d}", role=role, unit_code=unit, **reach_values(n, now)
        )
        states[reach_of(row)] += 1
        people.append(row)

    for t in range(1, TOWNS + 1):
        town = f"BD-T{t:02d}"
        long = t == 1
        units.append(Unit(code=town, level="town", parent_code="BD", name=f"第{t}镇"))
        person(f"镇干部{t}", "town_officer", town)
        before = len(people)
        for v in range(1, VILLAGES_PER_TOWN + 1):
            village = f"{town}-V{v:03d}"
            village_name = ("长" * 90 + f"村{t}-{v}")[-100:] if long else f"{t}镇{v}村"
            units.append(Unit(code=village, level="community", parent_code=town, name=village_name))
            person(
                ("欧阳" + "名" * 48)[:46] + f"{v:04d}" if long else f"村干部{t}-{v}",
                "coordinator",
                village,
            )
            for g in range(1, 3 + v % 2 + 1):
                grid = f"{village}-G{g}"
                grid_name = (village_name + f"第{g}网格")[-100:]
                units.append(Unit(code=grid, level="grid", parent_code=village, name=grid_name))
                name = (
                    ("欧阳" + "格" * 48)[:44] + f"{v:03d}-{g:02d}" if long else f"网格员{t}-{v}-{g}"
                )
                person(name, "grid_member", grid)
        town_staff[town] = len(people) - before
    person("区管理员", "admin", "BD")
    async with db.transaction() as session:
        session.add_all(units)
        await session.flush()
        session.add_all(people)
    return BigDistrict(len(people), town_staff, states)


@pytest.fixture
async def big(empty_db: Database, clock: ManualClock) -> tuple[Harness, BigDistrict]:
    district = await big_district(empty_db, clock.now() - timedelta(days=1))
    harness = Harness(empty_db, clock)
    return harness, district


async def telegram_of_role(db: Database, role: str, unit: str) -> int:
    async with db.transaction() as session:
        staff = (
            await session.exec(select(Staff).where(Staff.role == role, Staff.unit_code == unit))
        ).one()
        staff.telegram_id = staff.telegram_id or 890_000_000 + (staff.id or 0)
        session.add(staff)
        return staff.telegram_id


async def test_a_district_of_3000_pages_within_telegram_limits(
    big: tuple[Harness, BigDistrict],
) -> None:
    harness, district = big
    assert district.staff == 2939
    admin = await telegram_of_role(harness.db, "admin", "BD")
    officer = await telegram_of_role(harness.db, "town_officer", "BD-T01")
    for user in (admin, officer):
        harness.languages[user] = "en"
        await harness.say(user, "/start")

    # The town with the longest names, page by page: everyone once, not reachable first.
    (page,) = await harness.say(officer, "/team")
    seen: list[tuple[bool, str]] = []
    pages = 0
    while True:
        pages += 1
        within_telegram_limits(page)
        body = page.text.split("\n")
        rows = [line for line in body if PERSON.match(line)]
        assert 0 < len(rows) <= PAGE
        seen += [(row.startswith("✅"), row) for row in rows]
        assert len(link_buttons(page)) == sum(not row.startswith("✅") for row in rows)
        nexts = [b.data for b in page.buttons if b.text == "Next ▶"]
        if not nexts:
            break
        (page,) = await harness.press(officer, nexts[0])
    total = district.town_staff["BD-T01"]
    assert total == 225 and len(seen) == total and len({row for _, row in seen}) == total
    assert pages == (total + PAGE - 1) // PAGE
    assert [reachable for reachable, _ in seen] == sorted(reachable for reachable, _ in seen)
    assert body[0].startswith(f"<b>Your team: {total} people</b> · page {pages} of {pages}")

    # The admin: everyone else; the first page, a middle one, the last, one past the end.
    (first,) = await harness.say(admin, "/team")
    everyone = district.staff - 1
    last_page = (everyone - 1) // PAGE
    assert first.text.startswith(f"<b>Your team: {everyone} people</b> · page 1 of {last_page + 1}")
    states = district.states
    # The admin and the officer opened Huiyin above; the admin is not in his own team.
    assert (
        f"✅ {states[Reach.REACHABLE] + 1} reachable · ⏳ {states[Reach.NOT_OPENED] - 2} not "
        f"opened yet · 🚫 {states[Reach.REFUSED]} blocked or gone"
    ) in first.text
    for offset in (0, 1470, last_page * PAGE, 999_990):
        (page,) = await harness.press(admin, f"tm:{offset}")
        within_telegram_limits(page)
        shown = min(offset, last_page * PAGE) // PAGE + 1
        assert f"page {shown} of {last_page + 1}" in page.text.split("\n")[0]
    assert [b.text for b in page.buttons if b.data.startswith("tm:")] == ["◀ Previous"]


async def test_roster_status_on_a_district_is_one_query_for_the_people(
    big: tuple[Harness, BigDistrict], capsys: pytest.CaptureFixture[str]
) -> None:
    harness, district = big
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(harness.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await roster_status_command(harness.db, None) == 0
    finally:
        event.remove(harness.db.engine.sync_engine, "before_cursor_execute", count)
    assert len([s for s in statements if "FROM staff" in s]) == 1
    out = capsys.readouterr().out.splitlines()
    states = district.states
    assert out[-1] == (
        f"{district.staff} staff: {states[Reach.REACHABLE]} reachable, "
        f"{states[Reach.NOT_OPENED]} not opened, {states[Reach.REFUSED]} blocked (or "
        "deactivated, or chat not found)"
    )
    assert len([line for line in out if line.startswith("  ")]) == district.staff


# huiyin roster status --------------------------------------------------------------------------


async def test_roster_status_of_a_community(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    await harness.say(XU, "/start")
    await harness.say(WANG, "/start")
    await set_staff(harness.db, LI, opened_at=MONDAY, refused_at=MONDAY, refused_reason="blocked")
    assert await roster_status_command(harness.db, "QS-JB-TH") == 0
    out = capsys.readouterr().out.splitlines()
    words = [re.sub(r" +", " ", line) for line in out]
    assert words[:3] == [
        "QS-JB-TH 天河社区 (Tianhe Community)",
        " 徐国庆 coordinator QS-JB-TH 13800000011 reachable",
        "QS-JB-TH-01 天河社区第一网格 (Tianhe Grid 1)",
    ]
    assert set(words[3:5]) == {  # within a unit by name, in the database's order
        " 李秀英 grid_member QS-JB-TH-01 13800000002 blocked",
        " 王建华 grid_member QS-JB-TH-01 13800000001 reachable",
    }
    assert words[5:] == [
        "QS-JB-TH-02 天河社区第二网格 (Tianhe Grid 2)",
        " 张伟 grid_member QS-JB-TH-02 13800000003 not opened",
        "4 staff: 2 reachable, 1 not opened, 1 blocked (or deactivated, or chat not found)",
    ]
    # The columns line up in a terminal, Chinese characters taking two columns each.
    columns = {
        display_width(line[: line.index(f" {role} ")])
        for line in out
        for role in ("coordinator", "grid_member")
        if f" {role} " in line
    }
    assert len(columns) == 1


async def test_roster_status_of_an_unknown_unit(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await roster_status_command(harness.db, "QS-XX") == 1
    assert "--unit 'QS-XX': no unit with that code" in capsys.readouterr().err
