"""A family member's own Telegram account tied to the entry a resident made for them, through a
personal link (`/start b_<code>`), and what that link makes possible: both are asked for the
verdict and the first answer counts. Also the voice notes kept on the timeline, the staff
member's comment after a follow-up call, and the reopen count on the "My requests" lines."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import col, select

from domain.family_links import LINK_LIFETIME
from storage.models import Account, Beneficiary, BeneficiaryLink
from tests.harness import Harness
from tests.test_conversation_escalation import (
    at,
    containing,
    events,
    new_cards,
    request_row,
    tick,
)
from tests.test_conversation_onboarding import LANGUAGES, choose, register, tr, values
from tests.test_conversation_report import report_need
from tests.test_verdict import (
    LI,
    MOTHER,
    OTHER,
    RESIDENT,
    WANG,
    XU,
    add_mother_without_the_bot,
    asked,
    callback,
    resolve,
    setup,
)

CODE = re.compile(r"b_([A-Za-z0-9_-]+)")


async def account(harness: Harness, user: int) -> Account:
    async with harness.db.session() as session:
        return (await session.exec(select(Account).where(Account.telegram_id == user))).one()


async def mother_entry(harness: Harness) -> Beneficiary:
    async with harness.db.session() as session:
        return (
            await session.exec(select(Beneficiary).where(Beneficiary.name == "Chen Guilan"))
        ).one()


async def links(harness: Harness) -> list[BeneficiaryLink]:
    async with harness.db.session() as session:
        return list((await session.exec(select(BeneficiaryLink))).all())


async def make_link(harness: Harness) -> str:
    """The resident asks for a personal link for the mother; the code in the forwardable text."""
    member = await mother_entry(harness)
    shown = await harness.press(RESIDENT, f"bl:{member.id}")
    match = CODE.search(shown[-1].text)
    assert match is not None, shown[-1].text
    return match.group(1)


@pytest.fixture(params=LANGUAGES)
async def family(request: pytest.FixtureRequest, harness: Harness) -> Harness:
    """The resident registered their mother (who does not use the bot yet) and reported a
    repair for her; the mother and a neighbour speak the same language."""
    await setup(harness, request.param)
    await add_mother_without_the_bot(harness)
    return harness


async def test_the_mother_opens_her_link_and_answers_first(family: Harness) -> None:
    harness = family
    t = tr(harness, RESIDENT)
    member = await mother_entry(harness)
    # The "saved" message offers the link at once.
    saved = next(m for m in harness.sender.messages(RESIDENT) if f"bl:{member.id}" in values(m))
    assert saved.text == t._(
        "Saved {name}. Next time you can choose them straight away.", name="Chen Guilan"
    )
    how, card = await harness.press(RESIDENT, f"bl:{member.id}")
    (link,) = await links(harness)
    assert link.expires_at == at(11, 30, 10) + LINK_LIFETIME
    assert how.text == t._(
        "Here is a personal link for {name}. Forward the next message to them. It works "
        "once, for them only, until {time}.",
        name="Chen Guilan",
        time="2026-12-07 10:00",
    )
    # No bot username in the console: the line to send instead of a t.me link.
    assert card.text == (
        t._(
            "Huiyin, the community help line: {proxy} registered you as a family member.",
            proxy=f"user{RESIDENT}",
        )
        + "\n"
        + t._(
            "Open the Huiyin bot in Telegram and send it this line: {command}",
            command=f"<code>/start b_{link.code}</code>",
        )
    )
    assert len(link.code) >= 16 and card.buttons == []

    # The mother opens it: a word on who sent it, then the consent question.
    welcome, consent = await harness.say(MOTHER, f"/start b_{link.code}")
    tm = tr(harness, MOTHER)
    assert welcome.text == tm._(
        "👋 {proxy} registered you on Huiyin as a family member and sent you this link. "
        "Once you are linked, you will be asked yourself whether the requests made for "
        "you were solved.",
        proxy=f"user{RESIDENT}",
    )
    assert values(consent) == ["yes", "no"]
    assert (await mother_entry(harness)).account_id is None  # nothing before she agrees
    (linked,) = await choose(harness, MOTHER, "yes")
    assert linked.text.startswith(
        tm._(
            "✅ You are linked. You will hear how the requests made for you go and find them "
            "under “My requests”; when one is done, you will be asked whether it is solved. "
            "You or your family may answer."
        )
    )
    mother = await account(harness, MOTHER)
    assert (await mother_entry(harness)).account_id == mother.id
    assert mother.home_grid_code == "QS-JB-TH-01" and mother.consent_at is not None
    (spent,) = await links(harness)
    assert (spent.used_at, spent.used_by_account_id) == (at(11, 30, 10), mother.id)
    told = containing(harness, RESIDENT, "Chen Guilan")[-1]
    assert told.text == t._(
        "✅ {name} opened your link and is now linked on Huiyin: they hear how your "
        "requests for them go. When one is done, both of you are asked; the first "
        "answer counts.",
        name="Chen Guilan",
    )

    # The link works once.
    await register(harness, OTHER)
    (refused, _menu) = await harness.say(OTHER, f"/start b_{link.code}")
    assert refused.text == tr(harness, OTHER)._(
        "This family link is not valid (it may have been used or expired). Please ask "
        "the family member who sent it for a new one."
    )

    # After the work both are asked; the mother answers first, her son is told once.
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)
    assert len(await asked(harness, RESIDENT)) == 1
    assert len(await asked(harness, MOTHER)) == 1
    assert containing(harness, LI, "📞") == []  # she uses the bot: no call needed
    await harness.press(MOTHER, "rv:s:1:y")
    await harness.press(MOTHER, "rv:f:1:y:s")
    await harness.press(RESIDENT, "rv:s:1:n")
    assert callback(harness) == t._(
        "Thank you, {name} already rated this on {time}.",
        name="user900003",
        time="2026-11-30 11:00",
    )
    request = await request_row(harness)
    assert (request.status, request.verdict_by, request.verdict_account_id) == (
        "closed",
        "beneficiary",
        mother.id,
    )
    answered = t._(
        "Thank you: {name} has already rated <b>{ref}</b>; nothing more is needed from you.",
        name="user900003",
        ref="HY000001",
    )
    assert harness.texts(RESIDENT).count(answered) == 1
    assert containing(harness, MOTHER, "nothing more is") == []


async def test_a_t_me_link_when_the_bot_username_is_known(harness: Harness) -> None:
    await setup(harness)
    await add_mother_without_the_bot(harness)
    harness.dispatcher.bot_username = "huiyin_test_bot"
    code = await make_link(harness)
    card = harness.sender.messages(RESIDENT)[-1]
    url = f"https://t.me/huiyin_test_bot?start=b_{code}"
    assert f"Open this link to be linked: {url}" in card.text
    assert [(b.text, b.url) for b in card.buttons] == [("Open Huiyin", url)]
    # Opened by someone who already uses the bot: no second consent, linked at once, and
    # their own home stays where they said they live.
    await register(harness, MOTHER, grid="QS-JB-TH-02")
    shown = await harness.say(MOTHER, f"/start b_{code}")
    assert [m.text.split("\n")[0] for m in shown][1] == (
        "✅ You are linked. You will hear how the requests made for you go and find them "
        "under “My requests”; when one is done, you will be asked whether it is solved. "
        "You or your family may answer."
    )
    mother = await account(harness, MOTHER)
    assert (await mother_entry(harness)).account_id == mother.id
    assert mother.home_grid_code == "QS-JB-TH-02"


async def test_forged_expired_own_and_taken_links_are_refused(harness: Harness) -> None:
    await setup(harness, "zh-hans")
    await add_mother_without_the_bot(harness)
    t = tr(harness, MOTHER)
    invalid = t._(
        "This family link is not valid (it may have been used or expired). Please ask "
        "the family member who sent it for a new one."
    )
    # Forged and garbled codes: the same polite answer, then the usual welcome.
    for payload in ("b_AAAAAAAAAAAAAAAAAAAAAA", "b_../../etc", "b_", "b_" + "x" * 40):
        refused, consent = await harness.say(MOTHER, f"/start {payload}")
        assert refused.text == invalid
        assert values(consent) == ["yes", "no"]
    assert await links(harness) == []

    # The resident who made the link cannot spend it on themselves; it stays valid.
    code = await make_link(harness)
    own, _menu = await harness.say(RESIDENT, f"/start b_{code}")
    assert own.text == tr(harness, RESIDENT)._(
        "This is the link you made for {name}. Please forward it to them: it links their "
        "own Telegram account, not yours.",
        name="Chen Guilan",
    )
    assert (await mother_entry(harness)).account_id is None

    # Declining the consent stores nothing and keeps the link.
    await harness.say(MOTHER, f"/start b_{code}")
    await choose(harness, MOTHER, "no")
    async with harness.db.session() as session:
        nobody = (await session.exec(select(Account).where(Account.telegram_id == MOTHER))).first()
    assert nobody is None
    assert (await mother_entry(harness)).account_id is None
    assert [link.used_at for link in await links(harness)] == [None]

    # Expired after seven days.
    harness.clock.advance(LINK_LIFETIME + timedelta(minutes=1))
    refused, _consent = await harness.say(MOTHER, f"/start b_{code}")
    assert refused.text == invalid

    # Spent by someone else while a newcomer's consent question was open: refused after
    # agreeing, then asked where they live (once), as any newcomer.
    third = await make_link(harness)
    newcomer = 900005
    harness.languages[newcomer] = "zh-hans"
    await harness.say(newcomer, f"/start b_{third}")
    async with harness.db.transaction() as session:
        link = await session.get(BeneficiaryLink, third)
        assert link is not None
        link.used_at = harness.clock.now()
        session.add(link)
    shown = await choose(harness, newcomer, "yes")
    assert [m.text for m in shown[:2]] == [invalid, t._("First, tell us where you live.")]
    assert len(shown) == 3 and values(shown[2])[:2] == ["QS-FM", "QS-JB"]
    newcomer_account = await account(harness, newcomer)
    assert newcomer_account.consent_at is not None and newcomer_account.home_grid_code is None

    # Two links for the same entry: the first one used wins, the second is refused.
    first, second = await make_link(harness), await make_link(harness)
    assert first != second
    await harness.say(MOTHER, f"/start b_{first}")
    await choose(harness, MOTHER, "yes")
    await register(harness, OTHER)
    (taken, _menu) = await harness.say(OTHER, f"/start b_{second}")
    assert taken.text == tr(harness, OTHER)._(
        "This family entry is already linked to another Telegram account. If that is "
        "wrong, please ask the family member who sent the link."
    )
    mother = await account(harness, MOTHER)
    assert (await mother_entry(harness)).account_id == mother.id
    (again, _menu) = await harness.say(MOTHER, f"/start b_{second}")
    assert again.text == t._("You are already linked; nothing more is needed.")

    # Link buttons for someone else's family member, or one's own entry, are refused.
    member = await mother_entry(harness)
    await report_need(harness, RESIDENT)  # the resident's own entry, for a request of his own
    async with harness.db.session() as session:
        own = (await session.exec(select(Beneficiary).where(col(Beneficiary.is_self)))).one()
    before = len(await links(harness))
    not_yours = tr(harness, OTHER)._("This family member is not in your list.")
    for data in (f"bl:{member.id}", "bl:abc", "bl:999", "bl:", "bl:-1", f"bl:{own.id}"):
        await harness.press(OTHER, data)
        assert callback(harness) == not_yours
    await harness.press(RESIDENT, f"bl:{own.id}")
    assert callback(harness) == tr(harness, RESIDENT)._("This family member is not in your list.")
    await harness.press(RESIDENT, f"bl:{member.id}")
    assert callback(harness) == tr(harness, RESIDENT)._(
        "{name} is already linked.", name="Chen Guilan"
    )
    assert len(await links(harness)) == before


async def test_the_family_chooser_lists_who_is_linked(family: Harness) -> None:
    harness = family
    t = tr(harness, RESIDENT)
    await harness.press(RESIDENT, "m:family")
    (listing,) = await choose(harness, RESIDENT, "link")
    member = await mother_entry(harness)
    assert values(listing) == [f"bl:{member.id}", "m:home"]
    assert listing.buttons[0].text == t._("🔗 A link for {name}'s own Telegram", name="Chen Guilan")
    code = await make_link(harness)
    await harness.say(MOTHER, f"/start b_{code}")
    await choose(harness, MOTHER, "yes")
    await harness.press(RESIDENT, "m:family")
    (listing,) = await choose(harness, RESIDENT, "link")
    assert values(listing) == [f"bu:{member.id}", "m:home"]
    assert listing.buttons[0].text == t._("✂ Remove the link for {name}", name="Chen Guilan")
    assert (
        t._("✅ {name} is linked (Telegram: {account}).", name="Chen Guilan", account="user900003")
        in listing.text
    )


# Voice notes, the staff member's comment, the reopen count --------------------------------


async def answered_by_voice(harness: Harness) -> None:
    """The resident's own request, resolved, asked, rated not solved, with a voice reason."""
    await harness.press(RESIDENT, "m:report")
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "repair")
    await harness.say(RESIDENT, "The kitchen tap leaks")
    await choose(harness, RESIDENT, "submit")
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)
    await harness.press(RESIDENT, "rv:s:1:n")
    await harness.press(RESIDENT, "rv:f:1:n:u")
    await harness.send(RESIDENT, "voice", file_id="voice-reason-1")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_voice_reason_is_kept_and_offered_on_the_timeline(
    harness: Harness, language: str
) -> None:
    await setup(harness, language)
    await answered_by_voice(harness)
    t, tx = tr(harness, RESIDENT), tr(harness, XU)
    comment = [e for e in await events(harness) if e.action == "comment"]
    assert [(e.note, e.media_kind, e.media_file_id) for e in comment] == [
        (None, "voice", "voice-reason-1")
    ]
    # The voice stays a voice: on the timeline entry, not as words in the comment column.
    assert (await request_row(harness)).verdict_comment is None
    # The new holder hears it, and reads the reason in their own language.
    voices = [m for m in harness.sender.messages(XU) if m.message.media_file_id]
    assert [m.message.media_file_id for m in voices] == ["voice-reason-1"]
    assert harness.texts(XU)[-1] == tx._(
        "💬 The resident's reason for reopening <b>{ref}</b>:\n{reason}",
        ref="HY000001",
        reason=tx._("(a voice message)"),
    )

    (timeline,) = await harness.press(RESIDENT, "v:1")
    assert t._("The resident's comment") + " — " + t._("🎤 a voice message") in timeline.text
    play = [b for b in timeline.buttons if b.data.startswith("rv:p:")]
    assert [b.text for b in play] == [
        t._("🎤 Play the voice note of {time}", time="2026-11-30 11:00")
    ]
    (heard,) = await harness.press(RESIDENT, play[0].data)
    assert (heard.message.media_kind, heard.message.media_file_id) == ("voice", "voice-reason-1")
    assert heard.text == "HY000001 · 2026-11-30 11:00"
    # The coordinator now holding it may hear it too; a stranger, or a forged id, may not.
    (heard,) = await harness.press(XU, play[0].data)
    assert heard.message.media_file_id == "voice-reason-1"
    await register(harness, OTHER)
    for user, data in ((OTHER, play[0].data), (RESIDENT, "rv:p:9999"), (RESIDENT, "rv:p:1")):
        assert await harness.press(user, data) == []
        assert callback(harness) == tr(harness, user)._("This voice note is not available.")


async def test_a_voice_reason_when_reopening_from_my_requests(harness: Harness) -> None:
    await setup(harness)
    await harness.press(RESIDENT, "m:report")
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "repair")
    await harness.say(RESIDENT, "The kitchen tap leaks")
    await choose(harness, RESIDENT, "submit")
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, "rv:f:1:y:s")
    (thanks,) = await harness.send(RESIDENT, "voice", file_id="voice-thanks", text="Great")
    assert thanks.text == "Thank you! Your words were passed on."
    await harness.press(RESIDENT, "rv:o:1")
    await harness.send(RESIDENT, "voice", file_id="voice-leaks-again")
    reopen = [e for e in await events(harness) if e.action == "reopen"]
    assert [(e.note, e.media_file_id) for e in reopen] == [("why:reopened", "voice-leaks-again")]
    comment = [e for e in await events(harness) if e.action == "comment"]
    assert [(e.note, e.media_file_id) for e in comment] == [("Great", "voice-thanks")]
    assert [
        m.message.media_file_id for m in harness.sender.messages(XU) if m.message.media_kind
    ] == ["voice-leaks-again"]
    assert (
        "Reopened: the resident says it is not solved or not satisfactory: (a voice message)"
        in new_cards(harness, XU)[-1].text
    )

    # The list line shows the reopen count; the timeline offers both voice notes.
    (listing,) = await harness.press(RESIDENT, "m:mine")
    assert "<b>HY000001</b>" in listing.text
    assert " · 🔁 Reopened 1 time(s)" in listing.text
    (timeline,) = await harness.press(RESIDENT, "v:1")
    assert len([b for b in timeline.buttons if b.data.startswith("rv:p:")]) == 2


async def test_the_reopen_count_on_the_list_line_in_chinese(harness: Harness) -> None:
    await setup(harness, "zh-hans")
    await answered_by_voice(harness)
    (listing,) = await harness.press(RESIDENT, "m:mine")
    line = next(x for x in listing.text.split("\n") if "HY000001" in x)
    assert tr(harness, RESIDENT)._("🔁 Reopened {count} time(s)", count=1) in line
    await register(harness, OTHER)
    await harness.press(OTHER, "m:report")
    (listing,) = await harness.press(OTHER, "m:mine")
    assert "🔁" not in listing.text  # no count while a request was never reopened


@pytest.mark.parametrize("language", LANGUAGES)
async def test_staff_record_a_not_solved_answer_with_a_voice_comment(
    harness: Harness, language: str
) -> None:
    await setup(harness, language)
    await add_mother_without_the_bot(harness)
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)
    await harness.press(LI, "fu:s:1:n")
    (prompt,) = await harness.press(LI, "fu:f:1:n:u")
    tl = tr(harness, LI)
    assert prompt.text == tl._(
        "Recorded. {ref} has been reopened. What does the resident say is still not "
        "right? Type it or send a voice message (optional).",
        ref="HY000001",
    )
    assert values(prompt) == ["skip"]
    # A stray sticker is refused politely; the voice note is taken.
    (again,) = await harness.send(LI, "unsupported")
    assert again.text == tl._("Please type a few words or send a voice message.")
    (noted,) = await harness.send(LI, "voice", file_id="voice-from-the-call")
    assert noted.text.startswith(tl._("Noted on the request's timeline. Thank you!"))
    comment = [e for e in await events(harness) if e.action == "comment"]
    assert [(e.note, e.media_file_id, e.actor_account_id) for e in comment] == [
        ("by:staff", "voice-from-the-call", None)
    ]
    assert comment[0].actor_staff_id is not None
    request = await request_row(harness)
    assert (request.status, request.level, request.verdict_by) == ("assigned", "community", "staff")
    # The coordinator who has it now hears the voice note from the call.
    assert "voice-from-the-call" in [m.message.media_file_id for m in harness.sender.messages(XU)]
    (timeline,) = await harness.press(RESIDENT, "v:1")
    tr_ = tr(harness, RESIDENT)
    assert tr_._("recorded by staff after a call") in timeline.text
    assert tr_._("🎤 a voice message") in timeline.text
    (heard,) = await harness.press(LI, next(b.data for b in timeline.buttons if "rv:p:" in b.data))
    assert heard.message.media_file_id == "voice-from-the-call"
