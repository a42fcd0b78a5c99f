"""Onboarding conversations: consent, the place picker, grid links, staff recognition, /join
and invites. Each resident test runs in both languages and compares against the catalog, so it
stays right whatever the translation says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.channels.memory import ShownMessage
from domain.i18n import Translator, pick_language, translator
from storage.models import Account, ConversationState, Invite, Staff, Unit
from tests.harness import Harness

RESIDENT = 900001
WANG = 700000001  # grid member of QS-JB-TH-01
LANGUAGES = ["en", "zh-hans"]


# Helpers shared by the conversation tests ---------------------------------------------------


def tr(harness: Harness, user: int) -> Translator:
    """The translator the bot uses for `user`."""
    return translator(pick_language(harness.languages.get(user, "zh-hans")))


def step_value(data: str) -> str | None:
    """The value of a step button (`c:<nonce>:<value>`), or None for other buttons."""
    prefix, _, rest = data.partition(":")
    return rest.partition(":")[2] if prefix == "c" else None


def choice(harness: Harness, user: int, value: str) -> str:
    """The data of the newest step button for `value` in the user's chat."""
    for shown in reversed(harness.sender.messages(user)):
        for button in shown.buttons:
            if step_value(button.data) == value:
                return button.data
    raise AssertionError(f"no step button {value!r} for {user}")


async def choose(harness: Harness, user: int, value: str) -> list[ShownMessage]:
    """Press the newest step button whose value is `value` (language-independent)."""
    return await harness.press(user, choice(harness, user, value))


def values(message: ShownMessage) -> list[str]:
    """The step values (or plain callback data) of a message's buttons."""
    return [step_value(b.data) or b.data for b in message.buttons]


async def register(harness: Harness, user: int, grid: str = "QS-JB-TH-01") -> None:
    """A resident who agreed and lives in `grid` (through the picker)."""
    await harness.say(user, "/start")
    await choose(harness, user, "yes")
    parts = grid.split("-")
    for depth in (2, 3, 4):
        await choose(harness, user, "-".join(parts[:depth]))


async def account_of(harness: Harness, user: int) -> Account | None:
    async with harness.db.session() as session:
        return (await session.exec(select(Account).where(Account.telegram_id == user))).first()


async def staff_named(harness: Harness, name: str) -> Staff:
    async with harness.db.session() as session:
        return (await session.exec(select(Staff).where(Staff.name == name))).one()


MENU = ["m:report", "m:family", "m:mine", "m:help"]
CONSENT = (
    "👋 Welcome to <b>Huiyin</b>, your community's help line.\n\n"
    "Tell us what you or your family need, and the grid member who looks after your "
    "area will take it up. You will hear back at every step.\n\n"
    "<b>What we keep:</b> your Telegram name, where you live, the family members you "
    "register (name, relation, place, phone if you give it) and what you tell us (text, "
    "voice, photos).\n"
    "<b>Who sees it:</b> the grid member of the area; if a need is not taken up in time, "
    "or is passed up, the community or village, the street or town, the district "
    "department for that kind of need and the district office. Staff of the community, "
    "the town and the district export their area's requests as a spreadsheet. A phone "
    "number is shown in full only to whoever handles the need and to the district "
    "office, and each time is recorded.\n"
    "Health and counselling needs are sent only after you agree again.\n"
    "/mydata shows what we keep about you; /forget erases it.\n\n"
    "Do you agree?"
)


TIANHE_2_PATH = {
    "en": "Jiangbei Street › Tianhe Community › Tianhe Grid 2",
    "zh-hans": "江北街道 › 天河社区 › 天河社区第二网格",
}


# Residents -----------------------------------------------------------------------------------


@pytest.fixture(params=LANGUAGES)
def lang(request: pytest.FixtureRequest, harness: Harness) -> str:
    harness.languages[RESIDENT] = request.param
    return request.param


async def test_start_consent_picker_then_menu(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    (consent,) = await harness.say(RESIDENT, "/start")
    assert consent.text == t._(CONSENT)
    assert values(consent) == ["yes", "no"]
    assert await account_of(harness, RESIDENT) is None  # nothing kept before consent

    thanks, towns = await choose(harness, RESIDENT, "yes")
    assert thanks.text == t._("Thank you. Where do you live?")
    assert towns.text.splitlines()[0] == t._("Choose the street or town:")
    assert values(towns) == ["QS-FM", "QS-JB", "cancel"]

    (communities,) = await choose(harness, RESIDENT, "QS-JB")
    town_name = "Jiangbei Street" if lang == "en" else "江北街道"
    assert communities.text.splitlines()[0] == t._(
        "{place}: choose your community or village:", place=town_name
    )
    assert values(communities) == ["QS-JB-LY", "QS-JB-QJ", "QS-JB-TH", "back", "cancel"]

    (grids,) = await choose(harness, RESIDENT, "QS-JB-TH")
    assert values(grids) == ["QS-JB-TH-01", "QS-JB-TH-02", "back", "cancel"]

    (menu,) = await choose(harness, RESIDENT, "QS-JB-TH-02")
    place = TIANHE_2_PATH[lang]
    assert menu.text == (
        t._("📍 You are registered in {place}.", place=place)
        + "\n\n"
        + t._("What would you like to do?")
    )
    assert values(menu) == MENU

    account = await account_of(harness, RESIDENT)
    assert account is not None
    assert (account.home_grid_code, account.consent_at, account.language) == (
        "QS-JB-TH-02",
        harness.clock.now(),
        pick_language(lang),
    )
    async with harness.db.session() as session:
        assert await session.get(ConversationState, RESIDENT) is None

    (again,) = await harness.say(RESIDENT, "/start")
    assert again.text == t._("Welcome back to Huiyin. What would you like to do?")
    assert values(again) == MENU


async def test_declining_consent_stores_nothing(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    await harness.say(RESIDENT, "/start")
    (reply,) = await choose(harness, RESIDENT, "no")
    assert reply.text == t._(
        "All right, nothing has been stored. Send /start whenever you are ready."
    )
    assert await account_of(harness, RESIDENT) is None
    async with harness.db.session() as session:
        assert await session.get(ConversationState, RESIDENT) is None


async def test_grid_link_places_the_resident_right_after_consent(
    harness: Harness, lang: str
) -> None:
    t = tr(harness, RESIDENT)
    (consent,) = await harness.say(RESIDENT, "/start g_QS-JB-TH-02")
    assert values(consent) == ["yes", "no"]
    (menu,) = await choose(harness, RESIDENT, "yes")
    assert menu.text.startswith(t._("📍 You are registered in {place}.", place=TIANHE_2_PATH[lang]))
    assert values(menu) == MENU
    account = await account_of(harness, RESIDENT)
    assert account is not None and account.home_grid_code == "QS-JB-TH-02"


@pytest.mark.parametrize("link", ["g_QS-XX-99", "g_QS-JB-TH"])  # unknown; a community, not a grid
async def test_invalid_grid_link_falls_back_to_the_picker(
    harness: Harness, lang: str, link: str
) -> None:
    t = tr(harness, RESIDENT)
    notice, consent = await harness.say(RESIDENT, f"/start {link}")
    assert notice.text == t._(
        "That grid link is not valid any more; please choose your place below."
    )
    assert values(consent) == ["yes", "no"]
    _thanks, towns = await choose(harness, RESIDENT, "yes")
    assert values(towns) == ["QS-FM", "QS-JB", "cancel"]
    account = await account_of(harness, RESIDENT)
    assert account is not None and account.home_grid_code is None


async def test_back_button_in_the_picker_climbs_one_level(harness: Harness, lang: str) -> None:
    await harness.say(RESIDENT, "/start")
    await choose(harness, RESIDENT, "yes")
    await choose(harness, RESIDENT, "QS-FM")
    (grids,) = await choose(harness, RESIDENT, "QS-FM-MJ")
    assert values(grids) == ["QS-FM-MJ-01", "QS-FM-MJ-02", "back", "cancel"]

    # "Back" changes the picker in place rather than sending another one.
    assert await choose(harness, RESIDENT, "back") == []
    communities = harness.sender.messages(RESIDENT)[-1]
    assert communities.message_id == grids.message_id
    assert values(communities) == ["QS-FM-HW", "QS-FM-MJ", "QS-FM-SQ", "back", "cancel"]
    assert await choose(harness, RESIDENT, "back") == []
    towns = harness.sender.messages(RESIDENT)[-1]
    assert values(towns) == ["QS-FM", "QS-JB", "cancel"]

    await choose(harness, RESIDENT, "QS-JB")
    await choose(harness, RESIDENT, "QS-JB-LY")
    await choose(harness, RESIDENT, "QS-JB-LY-01")
    account = await account_of(harness, RESIDENT)
    assert account is not None and account.home_grid_code == "QS-JB-LY-01"


async def test_picker_refuses_a_place_that_is_not_below_the_one_shown(
    harness: Harness, lang: str
) -> None:
    t = tr(harness, RESIDENT)
    await harness.say(RESIDENT, "/start")
    await choose(harness, RESIDENT, "yes")
    await choose(harness, RESIDENT, "QS-JB")
    nonce = choice(harness, RESIDENT, "QS-JB-TH").split(":")[1]
    (again,) = await harness.press(RESIDENT, f"c:{nonce}:QS-FM-MJ-01")  # a grid of another town
    assert harness.last_answer == t._("That choice is no longer available. Please choose again.")
    assert values(again) == ["QS-JB-LY", "QS-JB-QJ", "QS-JB-TH", "back", "cancel"]
    account = await account_of(harness, RESIDENT)
    assert account is not None and account.home_grid_code is None


async def test_start_after_a_restart_keeps_the_place_in_the_picker(
    harness: Harness, lang: str
) -> None:
    t = tr(harness, RESIDENT)
    await harness.say(RESIDENT, "/start")
    await choose(harness, RESIDENT, "yes")
    await choose(harness, RESIDENT, "QS-JB")
    (grids,) = await choose(harness, RESIDENT, "QS-JB-TH")
    before = (grids.text, [b.data for b in grids.buttons])

    # (A new harness is a new phone: the old picker's buttons being taken off arrives there
    # as a message of its own, since that phone never had the old picker.)
    restarted = Harness(harness.db, harness.clock, languages=harness.languages)
    welcome, *closed, shown = await restarted.say(RESIDENT, "/start")
    assert welcome.text == t._("Welcome back! Let's continue where you left off.")
    assert [m.buttons for m in closed] == [[]]
    assert (shown.text, [b.data for b in shown.buttons]) == before
    await choose(restarted, RESIDENT, "QS-JB-TH-01")
    account = await account_of(harness, RESIDENT)
    assert account is not None and account.home_grid_code == "QS-JB-TH-01"


async def test_place_names_are_escaped_in_the_picker(harness: Harness) -> None:
    harness.languages[RESIDENT] = "en"
    async with harness.db.transaction() as session:
        town = await session.get(Unit, "QS-JB")
        assert town is not None
        town.name_en = "Jiangbei <East> & West"
        session.add(town)
    await harness.say(RESIDENT, "/start")
    await choose(harness, RESIDENT, "yes")
    (communities,) = await choose(harness, RESIDENT, "QS-JB")
    assert communities.text.splitlines()[0] == (
        "Jiangbei &lt;East&gt; &amp; West: choose your community or village:"
    )


# Staff ---------------------------------------------------------------------------------------

MA = 910013  # 马卫东's Telegram account; the roster has his phone 13800000013 but no Telegram id
ZHU = 920016  # 朱玉兰's Telegram account; she is in the roster without a Telegram id


@pytest.fixture(params=LANGUAGES)
def staff_lang(request: pytest.FixtureRequest, harness: Harness) -> str:
    for user in (WANG, MA, ZHU, 910099):
        harness.languages[user] = request.param
    return request.param


def staff_welcome(t: Translator, name: str, role: str, unit: tuple[str, str]) -> str:
    return t._(
        "Welcome, {name}. You are registered as {role} of {unit}. "
        "New tasks will arrive here; /tasks lists the open ones.",
        name=name,
        role=t._(role),
        unit=unit[0] if t.language == "en" else unit[1],
    )


TIANHE_1 = ("Tianhe Grid 1", "天河社区第一网格")
QIANJIN = ("Qianjin Community", "前进社区")
SHIQIAO = ("Shiqiao Village", "石桥村")


async def test_roster_telegram_id_is_recognised_at_start(harness: Harness, staff_lang: str) -> None:
    t = tr(harness, WANG)
    (welcome,) = await harness.say(WANG, "/start")
    assert welcome.text == staff_welcome(t, "王建华", "grid member", TIANHE_1)
    assert values(welcome) == ["m:tasks", *MENU]
    account = await account_of(harness, WANG)
    assert account is not None and account.language == pick_language(staff_lang)


async def test_join_with_own_contact_binds_the_roster_entry(
    harness: Harness, staff_lang: str
) -> None:
    t = tr(harness, MA)
    (prompt,) = await harness.say(MA, "/join")
    assert prompt.message.request_contact == t._("📱 Share my phone number")

    thanks, welcome = await harness.send(
        MA, "contact", contact_phone="+86 138 0000 0013", contact_user_id=MA
    )
    assert thanks.text == t._("✅ Thank you, your number matches the roster.")
    assert thanks.message.remove_keyboard
    expected = staff_welcome(t, "马卫东", "community coordinator", QIANJIN)
    assert welcome.text == expected
    assert (await staff_named(harness, "马卫东")).telegram_id == MA

    (again,) = await harness.say(MA, "/start")
    assert again.text == expected


async def test_join_matches_a_roster_number_written_with_the_country_code(
    harness: Harness,
) -> None:
    async with harness.db.transaction() as session:
        ma = (await session.exec(select(Staff).where(Staff.name == "马卫东"))).one()
        ma.phone = "+8613800000013"
        session.add(ma)
    await harness.say(MA, "/join")
    await harness.send(MA, "contact", contact_phone="13800000013", contact_user_id=MA)
    assert (await staff_named(harness, "马卫东")).telegram_id == MA


async def test_join_with_someone_elses_contact_is_refused(
    harness: Harness, staff_lang: str
) -> None:
    t = tr(harness, MA)
    await harness.say(MA, "/join")
    (reply,) = await harness.send(
        MA, "contact", contact_phone="13800000013", contact_user_id=123456
    )
    assert reply.text == t._(
        "Please share your own number with the button, not someone else's contact."
    )
    assert (await staff_named(harness, "马卫东")).telegram_id is None


async def test_join_with_a_number_outside_the_roster_is_politely_refused(
    harness: Harness, staff_lang: str
) -> None:
    user = 910099
    t = tr(harness, user)
    await harness.say(user, "/join")
    (reply,) = await harness.send(
        user, "contact", contact_phone="13912345678", contact_user_id=user
    )
    assert reply.text == t._(
        "This number is not in the staff roster. Residents do not need to share "
        "their number: just use the menu."
    )
    async with harness.db.session() as session:
        assert (await session.exec(select(Staff).where(Staff.telegram_id == user))).first() is None


INVITE_REFUSED = (
    "This invite link is not valid (it may have been used or expired). "
    "Please ask your administrator for a new one."
)


async def add_invite(
    harness: Harness, code: str, *, used: bool = False, expires_in: timedelta = timedelta(days=7)
) -> None:
    zhu = await staff_named(harness, "朱玉兰")
    now = harness.clock.now()
    async with harness.db.transaction() as session:
        session.add(
            Invite(
                code=code,
                staff_id=zhu.id or 0,
                created_at=now,
                expires_at=now + expires_in,
                used_at=now if used else None,
            )
        )


async def test_invite_link_binds_the_roster_entry_once(harness: Harness, staff_lang: str) -> None:
    latecomer = 910099
    t = tr(harness, ZHU)
    await add_invite(harness, "Zhu-2026-abc")

    (welcome,) = await harness.say(ZHU, "/start i_Zhu-2026-abc")
    assert welcome.text == staff_welcome(t, "朱玉兰", "community coordinator", SHIQIAO)
    assert (await staff_named(harness, "朱玉兰")).telegram_id == ZHU
    async with harness.db.session() as session:
        invite = await session.get(Invite, "Zhu-2026-abc")
        assert invite is not None
        assert (invite.used_at, invite.used_by_telegram_id) == (harness.clock.now(), ZHU)

    (refused,) = await harness.say(latecomer, "/start i_Zhu-2026-abc")
    assert refused.text == t._(INVITE_REFUSED)
    assert (await staff_named(harness, "朱玉兰")).telegram_id == ZHU


async def test_invite_after_the_consent_question_leaves_no_question_behind(
    harness: Harness, staff_lang: str
) -> None:
    t = tr(harness, ZHU)
    await add_invite(harness, "Zhu-2026-abc")
    await harness.say(ZHU, "/start")  # shown the residents' consent question first
    await harness.say(ZHU, "/start i_Zhu-2026-abc")
    (reply,) = await harness.say(ZHU, "hello")
    assert reply.text == t._("To tell us about a need, tap “Report a need” below.")
    async with harness.db.session() as session:
        assert await session.get(ConversationState, ZHU) is None


@pytest.mark.parametrize(
    ("used", "expires_in"),
    [
        (True, timedelta(days=7)),
        (False, timedelta(seconds=-1)),
        (False, timedelta(0)),
    ],
    ids=["used", "expired", "expiring-now"],
)
async def test_used_or_expired_invite_is_refused(
    harness: Harness, staff_lang: str, used: bool, expires_in: timedelta
) -> None:
    await add_invite(harness, "Zhu-2026-abc", used=used, expires_in=expires_in)
    (refused,) = await harness.say(ZHU, "/start i_Zhu-2026-abc")
    assert refused.text == tr(harness, ZHU)._(INVITE_REFUSED)
    assert (await staff_named(harness, "朱玉兰")).telegram_id is None


async def test_unknown_invite_code_is_refused(harness: Harness, lang: str) -> None:
    (refused,) = await harness.say(RESIDENT, "/start i_nope<script>")
    assert refused.text == tr(harness, RESIDENT)._(INVITE_REFUSED)
    assert await account_of(harness, RESIDENT) is None
