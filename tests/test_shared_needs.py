"""Shared needs (共性需求): "Is it one of these? ➕ Me too" in the report flow (for oneself and
for a parent), "mine is different", a double tap, none from another village or one's own;
supporters told of every step and asked for their own verdict; the count on the task card,
/status, the ledger and /stats; staff marking a need shared and merging a duplicate into it;
/mydata and /forget. On SQLite and PostgreSQL (the `db` fixture)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from domain.areas import area_of_unit
from domain.i18n import translator
from domain.ledger import COLUMNS, Viewer, ledger_rows, row_values
from domain.messages import Inbound
from domain.privacy import anonymise_request, erase_account
from domain.shared import similar_open
from storage.models import (
    Account,
    Beneficiary,
    ConversationState,
    Request,
    RequestEvent,
    Supporter,
)
from tests.harness import ZONE, Harness
from tests.test_conversation_escalation import at, tick
from tests.test_conversation_family import add_mother
from tests.test_conversation_onboarding import choose, register, tr, values
from tests.test_conversation_report import report_need

FIRST = 900001  # lives in Tianhe Grid 1 (QS-JB-TH-01)
NEIGHBOUR = 900004  # lives in Tianhe Grid 2, the same village (QS-JB-TH)
FAR = 900005  # lives in Mingjia, another village (QS-FM-MJ-01)
WANG = 700000001  # grid member, Tianhe Grid 1 (repair)
ZHANG = 700000003  # grid member, Tianhe Grid 2
XU = 700000011  # coordinator, Tianhe community
STAFF = (WANG, ZHANG, XU)
LEAK = "The water pipe by the village square has been leaking for three days and the lane floods"


@pytest.fixture
async def first_need(harness: Harness) -> Harness:
    """Staff have opened the bot; FIRST reported a repair (HY000001), held by Wang."""
    for user in (*STAFF, FIRST, NEIGHBOUR, FAR):
        harness.languages[user] = "en"
    for user in STAFF:
        await harness.say(user, "/start")
    await register(harness, FIRST, "QS-JB-TH-01")
    await register(harness, NEIGHBOUR, "QS-JB-TH-02")
    await report_need(harness, FIRST, text=LEAK)
    return harness


async def rows(harness: Harness, model: type, *where: object) -> list:  # type: ignore[type-arg]
    async with harness.db.session() as session:
        found = await session.exec(select(model).where(*where).order_by(col(model.id)))  # type: ignore[attr-defined]
        return list(found.all())


async def request_row(harness: Harness, request_id: int) -> Request:
    async with harness.db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        return request


async def account_id(harness: Harness, user: int) -> int:
    async with harness.db.session() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == user))).one()
        assert account.id is not None
        return account.id


async def self_beneficiary(harness: Harness, user: int) -> int:
    owner = await account_id(harness, user)
    (me,) = await rows(
        harness, Beneficiary, Beneficiary.owner_account_id == owner, col(Beneficiary.is_self)
    )
    return me.id


async def actions(harness: Harness, request_id: int) -> list[str]:
    return [
        e.action for e in await rows(harness, RequestEvent, RequestEvent.request_id == request_id)
    ]


async def start_repair(harness: Harness, user: int) -> list:  # type: ignore[type-arg]
    await harness.press(user, "m:report")
    await choose(harness, user, "living")
    return await choose(harness, user, "repair")


async def me_too(harness: Harness, user: int) -> None:
    """Report a repair, and say "me too" to HY000001."""
    (offer,) = await start_repair(harness, user)
    (button,) = [b.data for b in offer.buttons if b.data.startswith("mt:1:")]
    await harness.press(user, button, offer.message_id)


async def test_me_too_is_offered_and_taken(first_need: Harness) -> None:
    harness = first_need
    t = tr(harness, NEIGHBOUR)
    (offer,) = await start_repair(harness, NEIGHBOUR)
    assert offer.text.startswith(t._("<b>Is it one of these?</b>")[:20])
    assert "1. <b>Home repairs (water, power)</b> · " + LEAK[:60] + "…" in offer.text
    assert t._("since {time}", time="2026-11-30 10:00") in offer.text
    # What it is, never who reported it.
    assert "user900001" not in offer.text
    mine = await self_beneficiary(harness, NEIGHBOUR)
    assert values(offer) == [f"mt:1:{mine}", "different", "back", "cancel"]
    assert offer.buttons[0].text == t._("➕ Me too ({number})", number=1)

    (done,) = await harness.press(NEIGHBOUR, f"mt:1:{mine}", offer.message_id)
    assert harness.last_answer == t._("Added")
    assert (
        t._(
            "✅ You said “me too” to <b>{ref}</b>: no new request is needed. You will be told "
            "of every step, and asked whether it was solved.",
            ref="HY000001",
        )
        in done.text
    )
    assert offer.buttons == []  # the offer's buttons went
    assert len(await rows(harness, Request)) == 1  # no new need
    (supporter,) = await rows(harness, Supporter)
    assert (supporter.request_id, supporter.account_id, supporter.beneficiary_id) == (
        1,
        await account_id(harness, NEIGHBOUR),
        mine,
    )
    assert (await request_row(harness, 1)).supporter_count == 1
    assert (await actions(harness, 1))[-1] == "support"
    async with harness.db.session() as session:
        assert await session.get(ConversationState, NEIGHBOUR) is None
    # Wang's card says one more resident has it, and not who.
    card = harness.sender.messages(WANG)[-1]
    assert "👥 1 more resident" in card.text and "user900004" not in card.text

    # A second tap is answered politely and adds nothing.
    await harness.press(NEIGHBOUR, f"mt:1:{mine}")
    assert harness.last_answer == t._(
        "You have already said “me too” to {ref}; you will be told of every step.",
        ref="HY000001",
    )
    assert len(await rows(harness, Supporter)) == 1
    assert (await request_row(harness, 1)).supporter_count == 1
    # Next time it is not offered again: straight to the description.
    (describe,) = await start_repair(harness, NEIGHBOUR)
    assert values(describe) == ["back", "cancel"]


async def test_two_taps_at_once_add_one_supporter(first_need: Harness) -> None:
    """Two deliveries of the same tap in the same instant: one supporter, one count; the
    other is told politely (PostgreSQL: the row lock; SQLite: one writer at a time)."""
    harness = first_need
    (offer,) = await start_repair(harness, NEIGHBOUR)
    data = values(offer)[0]

    def tap() -> Inbound:
        return Inbound(
            kind="button",
            user_id=NEIGHBOUR,
            chat_id=NEIGHBOUR,
            button_data=data,
            message_id=offer.message_id,
            language="en",
        )

    results = await asyncio.gather(
        harness.dispatcher.handle(tap()), harness.dispatcher.handle(tap())
    )
    t = tr(harness, NEIGHBOUR)
    assert sorted(r.callback_answer or "" for r in results) == sorted(
        [
            t._("Added"),
            t._(
                "You have already said “me too” to {ref}; you will be told of every step.",
                ref="HY000001",
            ),
        ]
    )
    assert len(await rows(harness, Supporter)) == 1
    assert (await request_row(harness, 1)).supporter_count == 1


async def test_the_offer_in_chinese(first_need: Harness) -> None:
    harness = first_need
    harness.languages[FAR] = "zh_CN"
    await register(harness, FAR, "QS-JB-TH-02")
    (offer,) = await start_repair(harness, FAR)
    assert offer.text.startswith("<b>是下面这些需求之一吗？</b>")
    assert "房屋水电维修" in offer.text
    assert [b.text for b in offer.buttons][:2] == ["➕ 我也要（第 1 条）", "不是，我的需求不一样"]
    (done,) = await harness.press(FAR, offer.buttons[0].data, offer.message_id)
    assert done.text.startswith("✅ 您已附议 <b>HY000001</b>")


async def test_mine_is_different_or_typed_words(first_need: Harness) -> None:
    harness = first_need
    (offer,) = await start_repair(harness, NEIGHBOUR)
    (describe,) = await choose(harness, NEIGHBOUR, "different")
    assert values(describe) == ["back", "cancel"]
    await harness.say(NEIGHBOUR, "My own boiler is broken")
    await choose(harness, NEIGHBOUR, "submit")
    assert [r.description for r in await rows(harness, Request)][-1] == "My own boiler is broken"
    # Words typed at the offer are the description: nothing is lost.
    await register(harness, FAR, "QS-JB-TH-02")
    (offer,) = await start_repair(harness, FAR)
    assert "mt:2:" in " ".join(values(offer))  # the newest first
    assert values(offer)[0].startswith("mt:2:")
    (confirm,) = await harness.say(FAR, "The street lamp is out")
    assert values(confirm) == ["submit", "edit", "cancel"]
    await choose(harness, FAR, "submit")
    assert len(await rows(harness, Request)) == 3
    assert await rows(harness, Supporter) == []


async def test_none_from_another_village_nor_ones_own(first_need: Harness) -> None:
    harness = first_need
    await register(harness, FAR, "QS-FM-MJ-01")
    (describe,) = await start_repair(harness, FAR)
    assert values(describe) == ["back", "cancel"]
    await harness.say(FAR, "/cancel")
    # The reporter's own need is not offered back to them; another category is not either.
    (describe,) = await start_repair(harness, FIRST)
    assert values(describe) == ["back", "cancel"]
    await harness.say(FIRST, "/cancel")
    await harness.press(NEIGHBOUR, "m:report")
    await choose(harness, NEIGHBOUR, "living")
    (describe,) = await choose(harness, NEIGHBOUR, "errand")
    assert values(describe) == ["back", "cancel"]
    # A forged "me too" (someone else's beneficiary, or a need of another village).
    await harness.say(NEIGHBOUR, "/cancel")
    far_self = await self_beneficiary(harness, FAR)
    await harness.press(NEIGHBOUR, f"mt:1:{far_self}")
    assert harness.last_answer == tr(harness, NEIGHBOUR)._("This request is not available.")
    await harness.press(FAR, f"mt:1:{far_self}")
    assert harness.last_answer == tr(harness, FAR)._("This request is not available.")
    await harness.press(FAR, "mt:99999999999999:1")
    assert await rows(harness, Supporter) == []


async def test_a_health_need_is_never_shown_to_neighbours(first_need: Harness) -> None:
    harness = first_need
    await harness.press(FIRST, "m:report")
    await choose(harness, FIRST, "living")
    await choose(harness, FIRST, "health")
    await harness.say(FIRST, "My blood pressure medicine has run out")
    await choose(harness, FIRST, "submit")
    await choose(harness, FIRST, "send")
    assert len(await rows(harness, Request)) == 2
    await harness.press(NEIGHBOUR, "m:report")
    await choose(harness, NEIGHBOUR, "living")
    (describe,) = await choose(harness, NEIGHBOUR, "health")
    assert values(describe) == ["back", "cancel"]
    assert "blood pressure" not in describe.text


async def test_a_family_member_says_me_too_for_a_parent(first_need: Harness) -> None:
    harness = first_need
    await register(harness, FAR, "QS-FM-MJ-01")  # lives elsewhere; the mother in Tianhe
    await add_mother(harness, FAR)
    await choose(harness, FAR, "living")
    (offer,) = await choose(harness, FAR, "repair")
    (mother,) = await rows(harness, Beneficiary, col(Beneficiary.is_self).is_(False))
    assert values(offer)[0] == f"mt:1:{mother.id}"
    (done,) = await harness.press(FAR, f"mt:1:{mother.id}", offer.message_id)
    assert done.text.startswith("For Chen Guilan. ✅")
    (supporter,) = await rows(harness, Supporter)
    assert supporter.beneficiary_id == mother.id
    assert supporter.account_id == await account_id(harness, FAR)


async def test_supporters_hear_every_step_and_give_their_own_verdict(
    first_need: Harness,
) -> None:
    harness = first_need
    await me_too(harness, NEIGHBOUR)
    t = tr(harness, NEIGHBOUR)
    await harness.press(WANG, "t:accept:1")
    accepted = harness.sender.messages(NEIGHBOUR)[-1]
    assert accepted.text.startswith(t._("👥 About a need you support:") + "\n👍")
    assert "HY000001" in accepted.text
    assert accepted.buttons == []  # the timeline and any answer are the reporter's
    # A question to the reporter is theirs alone.
    before = len(harness.sender.messages(NEIGHBOUR))
    await harness.press(WANG, "t:ask:1")
    await harness.say(WANG, "Which house number?")
    assert len(harness.sender.messages(NEIGHBOUR)) == before
    await harness.press(WANG, "t:resume:1")
    await harness.press(WANG, "t:resolve:1")
    await harness.say(WANG, "Replaced the pipe")
    resolved = harness.sender.messages(NEIGHBOUR)[-1]
    assert "HY000001" in resolved.text and "Replaced the pipe" in resolved.text

    harness.clock.set(at(11, 30, 11, 30))
    await tick(harness)
    ask = harness.sender.messages(NEIGHBOUR)[-1]
    (supporter,) = await rows(harness, Supporter)
    assert [b.data for b in ask.buttons] == [f"sv:s:{supporter.id}:y", f"sv:s:{supporter.id}:n"]
    assert (
        t._("🙏 Your request <b>{ref}</b> was marked resolved. Is it solved?", ref="HY000001")
        in ask.text
    )
    # The reporter is asked too, with their own buttons.
    assert [b.data for b in harness.sender.messages(FIRST)[-1].buttons] == [
        "rv:s:1:y",
        "rv:s:1:n",
    ]
    # Someone else cannot answer for the supporter.
    await harness.press(FIRST, f"sv:s:{supporter.id}:y")
    assert harness.last_answer == tr(harness, FIRST)._("This request is not available.")

    (how,) = await harness.press(NEIGHBOUR, f"sv:s:{supporter.id}:n", ask.message_id)
    assert values(how) == [f"sv:f:{supporter.id}:n:{k}" for k in "sfu"]
    (comment,) = await harness.press(NEIGHBOUR, f"sv:f:{supporter.id}:n:u", how.message_id)
    assert comment.text == t._(
        "Thank you! Would you like to add a comment on {ref}? Type it in a few words.",
        ref="HY000001",
    )
    assert values(comment) == ["skip"]
    (thanks,) = await harness.say(NEIGHBOUR, "The lane still floods")
    assert thanks.text == t._("Thank you! Your words were passed on.")
    (supporter,) = await rows(harness, Supporter)
    assert (supporter.solved, supporter.satisfaction) == (False, "not_satisfied")
    assert supporter.comment == "The lane still floods"
    assert supporter.rated_at is not None
    # The need's own verdict stays the reporter's: nothing reopened.
    request = await request_row(harness, 1)
    assert (request.status, request.solved, request.rated_at) == ("resolved", None, None)
    await harness.press(NEIGHBOUR, f"sv:f:{supporter.id}:y:s")
    assert harness.last_answer == t._(
        "Thank you, you already rated this on {time}.", time="2026-11-30 11:30"
    )


async def test_a_blocked_or_erased_supporter_is_not_written_to(first_need: Harness) -> None:
    harness = first_need
    await me_too(harness, NEIGHBOUR)
    async with harness.db.session() as session:
        account = (
            await session.exec(select(Account).where(Account.telegram_id == NEIGHBOUR))
        ).one()
        account.blocked_at = datetime(2026, 11, 30, tzinfo=UTC)
        session.add(account)
        await session.commit()
    before = len(harness.sender.messages(NEIGHBOUR))
    await harness.press(WANG, "t:accept:1")
    assert len(harness.sender.messages(NEIGHBOUR)) == before
    async with harness.db.session() as session:
        account = (
            await session.exec(select(Account).where(Account.telegram_id == NEIGHBOUR))
        ).one()
        supporter = (await session.exec(select(Supporter))).one()
        supporter.comment = "It floods my yard"
        session.add(supporter)
        await erase_account(session, account, harness.clock.now())
        await session.commit()
    (supporter,) = await rows(harness, Supporter)
    assert supporter.comment is None
    assert (await request_row(harness, 1)).supporter_count == 1  # the count stays


async def test_retention_removes_supporters_words_with_the_need(first_need: Harness) -> None:
    harness = first_need
    await me_too(harness, NEIGHBOUR)
    async with harness.db.session() as session:
        supporter = (await session.exec(select(Supporter))).one()
        supporter.comment = "It floods my yard"
        supporter.satisfaction = "satisfied"
        session.add(supporter)
        request = await session.get(Request, 1)
        assert request is not None
        await anonymise_request(session, request, harness.clock.now())
        await session.commit()
    (supporter,) = await rows(harness, Supporter)
    assert (supporter.comment, supporter.satisfaction) == (None, "satisfied")


async def test_staff_mark_it_shared_and_see_the_count(first_need: Harness) -> None:
    harness = first_need
    await me_too(harness, NEIGHBOUR)
    t = tr(harness, XU)
    (status,) = await harness.say(XU, "/status HY000001")
    assert "👥 1 more resident" in status.text
    assert "user900004" not in status.text
    assert ["sh:1"] in [[b.data for b in row] for row in status.message.buttons]
    await harness.press(XU, "sh:1")
    assert harness.last_answer == t._("Marked shared")
    request = await request_row(harness, 1)
    assert request.shared_at == harness.clock.now()
    assert (await actions(harness, 1))[-1] == "share"
    assert "🤝" in harness.sender.messages(WANG)[-1].text  # the holder's card shows it
    (again,) = await harness.say(XU, "/shared HY000001")
    assert again.text == t._("{ref} is already marked as a shared need.", ref="HY000001")
    (status,) = await harness.say(XU, "/status HY000001")
    assert t._("🤝 Shared need of the village") in status.text
    assert "sh:1" not in [b.data for b in status.buttons]
    assert t._("Marked as a shared need by {actor}", actor="徐国庆") in status.text
    # A grid member may not; a forged button shows nothing.
    (refused,) = await harness.say(WANG, "/shared HY000001")
    assert refused.text == tr(harness, WANG)._(
        "/shared and /merge are for coordinators and the levels above them."
    )
    await harness.press(WANG, "sh:1")
    assert harness.last_answer == tr(harness, WANG)._("This request is not available.")
    (unknown,) = await harness.say(XU, "/shared HY999999")
    assert unknown.text == t._("There is no request {ref} in your area.", ref="HY999999")

    # /stats counts it; the ledger has its column.
    (stats, _chart) = await harness.say(XU, "/stats")
    assert t._("🤝 Shared needs {needs} · supporters {supporters}", needs=1, supporters=1) in (
        stats.text
    )
    async with harness.db.session() as session:
        area = await area_of_unit(session, "QS-JB-TH")
        assert area is not None
        now = harness.clock.now()
        start, end = now - timedelta(days=1), now + timedelta(days=1)
        found = [row async for row in ledger_rows(session, area, start, end)]
    cells = row_values(found[0], translator("en"), ZONE, Viewer(), harness.clock.now())
    assert COLUMNS[-1].header == "Supporters" and cells[-1] == 1


async def test_merge_a_later_duplicate(first_need: Harness) -> None:
    harness = first_need
    await start_repair(harness, NEIGHBOUR)
    await choose(harness, NEIGHBOUR, "different")
    await harness.say(NEIGHBOUR, "Water everywhere in the lane")
    await choose(harness, NEIGHBOUR, "submit")
    t = tr(harness, XU)
    (usage,) = await harness.say(XU, "/merge HY000002")
    assert usage.text.startswith(t._("Send /merge")[:10])
    (same,) = await harness.say(XU, "/merge HY000001 HY000001")
    assert same.text == t._("A request cannot be merged into itself.")
    replies = await harness.say(XU, "/merge HY000002 HY000001")
    assert replies[0].text == t._(
        "🔗 {duplicate} is merged into {target}: its reporter now supports {target} and "
        "was told. Both timelines are kept.",
        duplicate="HY000002",
        target="HY000001",
    )
    duplicate, target = await request_row(harness, 2), await request_row(harness, 1)
    assert (duplicate.status, duplicate.merged_into_id) == ("merged", 1)
    assert target.supporter_count == 1
    (supporter,) = await rows(harness, Supporter)
    assert (supporter.request_id, supporter.beneficiary_id) == (
        1,
        await self_beneficiary(harness, NEIGHBOUR),
    )
    assert (await actions(harness, 1))[-1] == "merged_in"
    second = [e.action for e in await rows(harness, RequestEvent, RequestEvent.request_id == 2)]
    assert second[0] == "create" and second[-1] == "merge"  # its own timeline is kept
    told = [m.text for m in harness.sender.messages(NEIGHBOUR) if "HY000002" in m.text][-1]
    assert "HY000001" in told and "🔗" in told
    # Its holder (Zhang, Tianhe Grid 2) is told, and the card lost its buttons.
    assert any("HY000002" in m.text and "🔗" in m.text for m in harness.sender.messages(ZHANG))
    # Merged already: refused; and now HY000001 steps reach the merged reporter.
    (again,) = await harness.say(XU, "/merge HY000002 HY000001")
    assert again.text == t._(
        "{duplicate} is no longer open; only an open request can be merged.",
        duplicate="HY000002",
    )
    await harness.press(WANG, "t:accept:1")
    assert harness.sender.messages(NEIGHBOUR)[-1].text.startswith("👥")


async def test_mydata_lists_the_needs_one_supports(first_need: Harness) -> None:
    harness = first_need
    await me_too(harness, NEIGHBOUR)
    replies = await harness.say(NEIGHBOUR, "/mydata")
    text = replies[0].text
    assert "<b>1 need you support (“me too”)</b>" in text
    assert "HY000001 · Home repairs (water, power)" in text
    sent = [m for m in replies if m.message.upload_bytes]
    assert b'"supporting"' in sent[0].message.upload_bytes


async def test_similar_needs_are_one_query_of_the_village(first_need: Harness) -> None:
    """Merged and closed needs are not offered; the newest three, newest first."""
    harness = first_need
    await start_repair(harness, NEIGHBOUR)  # their own entry is made on their first report
    await harness.say(NEIGHBOUR, "/cancel")
    async with harness.db.session() as session:
        (me,) = (
            await session.exec(
                select(Beneficiary).where(
                    Beneficiary.owner_account_id == await account_id(harness, NEIGHBOUR)
                )
            )
        ).all()
        base = await session.get(Request, 1)
        assert base is not None
        for n in range(5):
            session.add(
                Request(
                    kind=base.kind,
                    category="repair",
                    description=f"need {n}",
                    reporter_account_id=base.reporter_account_id,
                    beneficiary_id=base.beneficiary_id,
                    grid_code="QS-JB-TH-01",
                    status={4: "closed", 3: "merged"}.get(n, "assigned"),
                    merged_into_id=1 if n == 3 else None,
                    created_at=base.created_at + timedelta(minutes=n + 1),
                    updated_at=base.created_at,
                )
            )
        await session.commit()
        found = await similar_open(session, me, "repair")
    assert [r.description for r in found] == ["need 2", "need 1", "need 0"]
