"""Offers to volunteers and claiming (认领): the holder of a need offers it from the task card,
volunteers get a claim card, the first "🙋 I'll take it" wins; /board lists what is on offer.

    task card ──📣 Offer to volunteers──► note (a line, or Skip) ──► offered: claim cards go to
        the community's approved volunteers of that category (an assigned need is accepted too)
    offered ──the time passes (schedules/offers.py)──► the town's volunteers get cards too
    offered ──🙋 first press (atomic)──► claimed: the claimant's card shows the beneficiary's
        name, place and phone; every other card says "taken"; the holder and the resident told
    offered ──Withdraw offer (holder)──► withdrawn: cards say it is no longer on offer
    claimed ──↩ Take it back (holder)──► taken back: the claimant's card loses the details
    claimed ──↩ Give it back (claimant)──► released: the holder told; offered once more, to the
        others
    any ──the need resolved / cancelled / merged──► closed (domain.claims.close_claim_of)

Categories in HUIYIN_AUTO_OFFER are offered when a need is routed (`auto_offer`), when some
volunteer of the town offers that category. A shared need (共性需求) may be claimed by a unit as
a body: its contact person sees "🏢 Claim for <unit>" too. "✅ Done" on the claimant's card
belongs to the claimed work (`cw:done:<claim>`, handlers/claimed_work.py).

Every button names its claim or request; a stale, forged or second press is answered politely
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claims import (
    HELD_STATES,
    ClaimState,
    OfferRules,
    ancestor_at,
    card_chats,
    claim_ref,
    edit_cards,
    end,
    live_claim,
    matching_volunteers,
    new_offer,
    offerable,
    take,
)
from domain.deadlines import Policy
from domain.i18n import LANGUAGES, N_, Translator, translator
from domain.labels import category_label, staff_label, unit_label
from domain.lifecycle import Action, Status
from domain.messages import Button, Outbound
from domain.outbox import enqueue, enqueue_edit
from domain.privacy import CONTACT_CARD, is_sensitive, record_phone_access
from domain.requests import note_event, transition
from domain.volunteers import VolunteerStatus
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import (
    OFFER_PREFIX,
    claimant_label,
    hold_until,
    notify_reporter,
    organisation_label,
    place_of,
    refresh_task_card,
    short_name,
    tell_staff,
)
from handlers.common import MAX_NOTE
from handlers.tasks import own_task
from storage.models import (
    Account,
    Beneficiary,
    Claim,
    Organisation,
    Request,
    Staff,
    Volunteer,
)
from storage.outbox import rows_named
from storage.roster_cache import unit_of

router = Router()
FLOW = "offer"
OPEN = (Status.ASSIGNED, Status.IN_PROGRESS)
BOARD_PAGE = 5
BOARD_SNIPPET = 80
# The claimed work's button on the claimant's card (handlers/claimed_work.py answers it).
DONE_DATA = "cw:done:{claim}"

TAKEN = N_("🙋 {ref} was taken by someone else. Thank you all the same!")
WITHDRAWN = N_("📣 {ref} is no longer on offer. Thank you all the same.")


# Who and where -------------------------------------------------------------------------------


async def volunteer_of(session: AsyncSession, account: Account | None) -> Volunteer | None:
    if account is None or account.id is None:
        return None
    rows = await session.exec(select(Volunteer).where(Volunteer.account_id == account.id))
    return rows.first()


async def holder_of(session: AsyncSession, request: Request) -> Staff | None:
    if request.assignee_staff_id is None:
        return None
    return await session.get(Staff, request.assignee_staff_id)


async def village(session: AsyncSession, t: Translator, request: Request) -> str:
    """The community (village) of the need: all a volunteer sees of where, before claiming."""
    community = await ancestor_at(session, request.grid_code, "community")
    return unit_label(t, community) if community is not None else "?"


async def in_reach(session: AsyncSession, volunteer: Volunteer, claim: Claim) -> bool:
    """Whether the volunteer serves the offer's reach unit or a unit right inside it."""
    if volunteer.unit_code == claim.reach_unit_code:
        return True
    unit = await unit_of(session, volunteer.unit_code)
    return unit is not None and unit.parent_code == claim.reach_unit_code


async def in_every_language(
    build: Callable[[Translator], Awaitable[str]],
) -> dict[str, str]:
    """A text that needs the database, written ahead in each catalog's language (for the
    notices whose texts are written without it)."""
    return {language: await build(translator(language)) for language in LANGUAGES}


# Claim cards ---------------------------------------------------------------------------------


async def claim_card(
    session: AsyncSession,
    t: Translator,
    request: Request,
    claim: Claim,
    volunteer: Volunteer | None,
) -> tuple[str, tuple[tuple[Button, ...], ...]]:
    """The card an offer goes out as: the category, the village and the description (never
    the beneficiary's name, phone or grid), the holder's note, and the claim buttons."""
    assert claim.id is not None
    where = escape(await village(session, t, request))
    lines = [
        t._("📣 <b>Can you help?</b> {ref}", ref=request.reference),
        f"{escape(category_label(t, request.category))} · {where}",
    ]
    if is_sensitive(request.category):
        # Health and counselling: what it is about only for whoever takes it.
        lines.append(t._("🔒 The details are shown to whoever takes it."))
    elif request.description:
        lines.append("📝 " + escape(request.description))
    if claim.note:
        lines.append(t._("💬 Note: {note}", note=escape(claim.note)))
    if request.shared_at is not None:
        lines.append(t._("🏘 A shared need of the village"))
    rows: list[tuple[Button, ...]] = [
        (Button(t._("🙋 I'll take it"), data=f"{OFFER_PREFIX}:take:{claim.id}"),)
    ]
    if (
        volunteer is not None
        and request.shared_at is not None
        and volunteer.is_contact
        and volunteer.organisation_id is not None
    ):
        body = await session.get(Organisation, volunteer.organisation_id)
        label = t._("🏢 Claim for {unit}", unit=organisation_label(t, body))
        rows.append((Button(label, data=f"{OFFER_PREFIX}:unit:{claim.id}"),))
    return "\n".join(lines), tuple(rows)


async def send_claim_cards(
    session: AsyncSession,
    request: Request,
    claim: Claim,
    now: datetime,
    recipients: list[tuple[Volunteer, Account]],
    *,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> int:
    """A claim card to each recipient, in their language; how many were sent. With `zone`,
    a card for a non-urgent need waits for the end of quiet hours (unless the volunteer is
    talking to the bot just now)."""
    assert claim.id is not None
    for volunteer, account in recipients:
        t = translator(account.language)
        text, rows = await claim_card(session, t, request, claim, volunteer)
        enqueue(
            session,
            Outbound(chat_id=account.chat_id, text=text, buttons=rows, ref=claim_ref(claim.id)),
            now,
            not_before=await hold_until(session, account.chat_id, request, now, zone, policy),
        )
    return len(recipients)


async def full_card(
    session: AsyncSession, t: Translator, request: Request, claim: Claim
) -> tuple[str, tuple[tuple[Button, ...], ...]]:
    """The claimant's card while they hold the need: now with whom and where."""
    assert claim.id is not None
    beneficiary = await session.get(Beneficiary, request.beneficiary_id)
    lines = [
        t._("🙋 <b>{ref} is yours.</b> Thank you!", ref=request.reference),
        escape(category_label(t, request.category)),
        "📍 " + escape(await place_of(session, t, request.grid_code)),
    ]
    if beneficiary is not None:
        who = escape(beneficiary.name)
        if beneficiary.phone:
            who += f" · ☎ {escape(beneficiary.phone)}"
        lines.append(t._("👤 For: {who}", who=who))
    if request.description:
        lines.append("📝 " + escape(request.description))
    if claim.note:
        lines.append(t._("💬 Note: {note}", note=escape(claim.note)))
    if claim.organisation_id is not None:
        body = await session.get(Organisation, claim.organisation_id)
        lines.append(t._("🏢 Claimed for {unit}", unit=escape(organisation_label(t, body))))
    lines.append(
        t._(
            "Please get in touch soon. When it is done, tap ✅ Done; if you cannot do it after "
            "all, give it back so someone else can."
        )
    )
    rows: list[tuple[Button, ...]] = [
        (Button(t._("✅ Done"), data=DONE_DATA.format(claim=claim.id)),),
        (Button(t._("↩ Give it back"), data=f"{OFFER_PREFIX}:give:{claim.id}"),),
    ]
    if beneficiary is not None and beneficiary.phone:
        rows.insert(1, (Button(t._("📞 Contact card"), data=f"{OFFER_PREFIX}:phone:{claim.id}"),))
    return "\n".join(lines), tuple(rows)


async def show_card(
    session: AsyncSession,
    chat_id: int,
    text: str,
    rows: tuple[tuple[Button, ...], ...],
    claim_id: int,
    now: datetime,
) -> None:
    """Edit the chat's card of the claim in place, or send it when the chat has none (a claim
    from /board by someone who was not sent the card)."""
    ref = claim_ref(claim_id)
    if await rows_named(session, chat_id, ref):
        await enqueue_edit(
            session, Outbound(chat_id=chat_id, text=text, buttons=rows, edit_ref=ref), now
        )
    else:
        enqueue(session, Outbound(chat_id=chat_id, text=text, buttons=rows, ref=ref), now)


async def plain_card(
    session: AsyncSession, chat_id: int, claim_id: int, text: str, now: datetime
) -> None:
    """The chat's card of the claim becomes a plain line (no buttons, no details)."""
    ref = claim_ref(claim_id)
    if await rows_named(session, chat_id, ref):
        await enqueue_edit(session, Outbound(chat_id=chat_id, text=text, edit_ref=ref), now)


# Offering ------------------------------------------------------------------------------------


async def offer_need(
    session: AsyncSession,
    request: Request,
    now: datetime,
    rules: OfferRules,
    *,
    staff: Staff | None,
    note: str | None,
    reach_unit_code: str | None = None,
    exclude_volunteer_ids: tuple[int, ...] = (),
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> tuple[Claim, int]:
    """Offer the need to volunteers: the community's first (or `reach_unit_code`), the town's
    after `rules.widen_after`. Writes the claim, the timeline entry and the claim cards;
    returns the claim and how many cards went out."""
    if reach_unit_code is None:
        community = await ancestor_at(session, request.grid_code, "community")
        reach_unit_code = community.code if community is not None else request.grid_code
    town = await ancestor_at(session, reach_unit_code, "town")
    widen_at = (
        now + rules.widen_after if town is not None and town.code != reach_unit_code else None
    )
    claim = await new_offer(
        session,
        request,
        now,
        reach_unit_code=reach_unit_code,
        widen_at=widen_at,
        staff_id=staff.id if staff is not None else None,
        note=note,
    )
    note_event(
        session, request, Action.OFFER, now, actor_staff_id=staff.id if staff is not None else None
    )
    recipients = await matching_volunteers(
        session, request.category, reach_unit_code, exclude_volunteer_ids=exclude_volunteer_ids
    )
    sent = await send_claim_cards(
        session, request, claim, now, recipients, zone=zone, policy=policy
    )
    return claim, sent


async def auto_offer(ctx: Context, request: Request) -> None:
    """A need just routed, of a category offered automatically (HUIYIN_AUTO_OFFER), goes to
    volunteers at once, when some volunteer of its town offers that category (an offer nobody
    could ever see would only sit there). The holder still accepts it as usual."""
    if (
        request.category not in ctx.offer_rules.auto_offer
        or not offerable(request.category)
        or request.status not in OPEN
        or request.claim_id is not None
    ):
        return
    town = await ancestor_at(ctx.session, request.grid_code, "town")
    if town is None or not await matching_volunteers(ctx.session, request.category, town.code):
        return
    await offer_need(
        ctx.session,
        request,
        ctx.now,
        ctx.offer_rules,
        staff=None,
        note=None,
        zone=ctx.zone,
        policy=ctx.policy,
    )


@router.button(OFFER_PREFIX)
async def on_offer_button(ctx: Context) -> None:
    parts = ctx.inbound.button_data.split(":")
    target = parse_id(parts[2]) if len(parts) == 3 else None
    if target is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    action = parts[1]
    if action == "offer":
        await ask_note(ctx, target)
    elif action == "withdraw":
        await withdraw(ctx, target)
    elif action == "back":
        await take_back(ctx, target)
    elif action == "take":
        await claim_it(ctx, target, as_unit=False)
    elif action == "unit":
        await claim_it(ctx, target, as_unit=True)
    elif action == "give":
        await give_back(ctx, target)
    elif action == "phone":
        await contact(ctx, target)
    elif action == "board":
        await show_board(ctx, target)
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def offerable_task(ctx: Context, request_id: int) -> Request | None:
    """The presser's open need, if it may be offered now; else answer why not."""
    request = await own_task(ctx, request_id, OPEN)
    if request is None:
        return None
    if not offerable(request.category):
        ctx.answer(
            ctx._(
                "{category} needs are staff's own work; they are never offered to volunteers.",
                category=category_label(ctx.t, request.category),
            ),
            alert=True,
        )
        return None
    if await live_claim(ctx.session, request) is not None:
        ctx.answer(ctx._("It is already offered to volunteers."), alert=True)
        return None
    return request


async def ask_note(ctx: Context, request_id: int) -> None:
    if await offerable_task(ctx, request_id) is None:
        return
    ctx.go(FLOW, "note", request_id=request_id)
    await render_note(ctx)


async def render_note(ctx: Context) -> None:
    ref = Request(id=ctx.data["request_id"]).reference  # type: ignore[call-arg]
    ctx.reply(
        ctx._(
            "📣 {ref}: a note for the volunteers (when to go, what to bring)? Type it, or tap "
            "Skip. They see the category, the village and the description, not the resident's "
            "name or phone, until one of them takes it.",
            ref=ref,
        ),
        [[ctx.choice(ctx._("Skip"), "skip")], [ctx.choice(ctx._("✖ Cancel"), "cancel")]],
        ref=ctx.step_ref,
    )


async def on_note_choice(ctx: Context, value: str) -> None:
    if value != "skip":
        ctx.answer(ctx._("This button is no longer active."))
        return
    await ctx.retire_pressed(ctx.step_ref, ctx._("Skip"))
    await finish_offer(ctx, None)


async def on_note_input(ctx: Context) -> None:
    text = ctx.inbound.text.strip()
    if ctx.inbound.kind != "text" or not text:
        ctx.reply(ctx._("Please type a short note, or tap Skip."))
        return
    if len(text) > MAX_NOTE:
        ctx.reply(
            ctx._(
                "Please keep the note under {limit} characters (it is {length}).",
                limit=MAX_NOTE,
                length=len(text),
            )
        )
        return
    skip = text.lower() in {"skip", ctx._("skip").lower()}
    await finish_offer(ctx, None if skip else text)


async def finish_offer(ctx: Context, note: str | None) -> None:
    request_id = ctx.data["request_id"]
    await ctx.end_flow()
    request = await offerable_task(ctx, request_id)
    if request is None or ctx.staff is None:
        ctx.reply(ctx._("This task has already moved on; nothing was changed."))
        return
    if request.status == Status.ASSIGNED:
        # Offering it is the holder's response: the need is accepted.
        await transition(ctx.session, request, Action.ACCEPT, ctx.now, actor_staff_id=ctx.staff.id)
        staff = ctx.staff
        await notify_reporter(
            ctx.session,
            request,
            ctx.now,
            lambda t: t._(
                "👍 Your request <b>{ref}</b> has been accepted by {who}. They will be in touch.",
                ref=request.reference,
                who=escape(staff_label(t, staff)),
            ),
            zone=ctx.zone,
            policy=ctx.policy,
        )
    claim, sent = await offer_need(
        ctx.session,
        request,
        ctx.now,
        ctx.offer_rules,
        staff=ctx.staff,
        note=note,
        zone=ctx.zone,
        policy=ctx.policy,
    )
    area = escape(unit_label(ctx.t, await unit_of(ctx.session, claim.reach_unit_code)))
    if sent:
        text = ctx.t.ngettext(
            "📣 {ref} is offered to {n} volunteer of {area}. You stay responsible for it; you "
            "will hear who takes it.",
            "📣 {ref} is offered to {n} volunteers of {area}. You stay responsible for it; you "
            "will hear who takes it.",
            sent,
            ref=request.reference,
            area=area,
        )
    else:
        text = ctx._(
            "📣 {ref} is on offer, but no volunteer of {area} offers this yet.",
            ref=request.reference,
            area=area,
        )
    if claim.widen_at is not None:
        text += "\n" + ctx._(
            "If nobody takes it within {hours} hours, the town's volunteers get it too.",
            hours=format(ctx.offer_rules.widen_after.total_seconds() / 3600, "g"),
        )
    ctx.reply(text)
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)


router.step(
    FLOW, "note", Step(render=render_note, on_choice=on_note_choice, on_input=on_note_input)
)


# The holder: withdraw, take back ----------------------------------------------------------------


async def withdraw(ctx: Context, request_id: int) -> None:
    request = await own_task(ctx, request_id, OPEN)
    if request is None or ctx.staff is None:
        return
    claim = await live_claim(ctx.session, request)
    if claim is None or claim.id is None or claim.state != ClaimState.OFFERED:
        ctx.answer(ctx._("It is not on offer now."), alert=True)
        await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
        return
    end(claim, request, ClaimState.WITHDRAWN, ctx.now)
    ctx.session.add(claim)
    note_event(ctx.session, request, Action.WITHDRAW, ctx.now, actor_staff_id=ctx.staff.id)
    reference = request.reference
    await edit_cards(ctx.session, claim.id, ctx.now, lambda t: t._(WITHDRAWN, ref=reference))
    ctx.answer(ctx._("The offer is withdrawn."))
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)


async def claimant_chat(session: AsyncSession, claim: Claim) -> Account | None:
    volunteer = await session.get(Volunteer, claim.volunteer_id) if claim.volunteer_id else None
    if volunteer is None or volunteer.account_id is None:
        return None
    return await session.get(Account, volunteer.account_id)


async def take_back(ctx: Context, request_id: int) -> None:
    request = await own_task(ctx, request_id, OPEN)
    if request is None or ctx.staff is None:
        return
    claim = await live_claim(ctx.session, request)
    if claim is None or claim.id is None or ClaimState(claim.state) not in HELD_STATES:
        ctx.answer(ctx._("Nobody holds it now."), alert=True)
        await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
        return
    end(claim, request, ClaimState.TAKEN_BACK, ctx.now)
    ctx.session.add(claim)
    note_event(ctx.session, request, Action.TAKE_BACK, ctx.now, actor_staff_id=ctx.staff.id)
    account = await claimant_chat(ctx.session, claim)
    if account is not None:
        t = translator(account.language)
        text = t._(
            "↩ {ref} was taken back by the staff member who holds it. Thank you for your help.",
            ref=request.reference,
        )
        await plain_card(ctx.session, account.chat_id, claim.id, text, ctx.now)
        if account.blocked_at is None:
            enqueue(ctx.session, Outbound(chat_id=account.chat_id, text=text), ctx.now)
    ctx.answer(ctx._("Taken back: it is yours alone again."))
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)


# The volunteer: claim, give back, contact ---------------------------------------------------------


async def claim_it(ctx: Context, claim_id: int, *, as_unit: bool) -> None:
    volunteer = await volunteer_of(ctx.session, ctx.account)
    if volunteer is None or volunteer.id is None or volunteer.status != VolunteerStatus.APPROVED:
        ctx.answer(ctx._("Only approved volunteers can take offers. See /volunteer."), alert=True)
        return
    claim = await ctx.session.get(Claim, claim_id)
    request = await ctx.session.get(Request, claim.request_id) if claim is not None else None
    if claim is None or request is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    if claim.state != ClaimState.OFFERED:
        ctx.answer(
            ctx._("Someone else was quicker, or it is no longer on offer. Thank you all the same!")
        )
        return
    if request.category not in volunteer.category_list or not await in_reach(
        ctx.session, volunteer, claim
    ):
        ctx.answer(
            ctx._("This offer is for volunteers of another area or kind of help."), alert=True
        )
        return
    organisation_id = None
    if as_unit:
        if (
            request.shared_at is None
            or not volunteer.is_contact
            or volunteer.organisation_id is None
        ):
            ctx.answer(
                ctx._("Only a unit's contact person can claim a shared need for the unit."),
                alert=True,
            )
            return
        organisation_id = volunteer.organisation_id
    if not await take(
        ctx.session, claim_id, ctx.now, volunteer_id=volunteer.id, organisation_id=organisation_id
    ):
        ctx.answer(
            ctx._("Someone else was quicker, or it is no longer on offer. Thank you all the same!")
        )
        return
    await ctx.session.refresh(claim)
    body = await ctx.session.get(Organisation, organisation_id) if organisation_id else None
    note_event(
        ctx.session,
        request,
        Action.CLAIM,
        ctx.now,
        actor_account_id=ctx.account.id if ctx.account else None,
        note=body.name if body is not None else short_name(volunteer),
    )
    text, rows = await full_card(ctx.session, ctx.t, request, claim)
    await show_card(ctx.session, ctx.chat_id, text, rows, claim_id, ctx.now)
    reference = request.reference
    await edit_cards(
        ctx.session, claim_id, ctx.now, lambda t: t._(TAKEN, ref=reference), except_chat=ctx.chat_id
    )
    ctx.answer(ctx._("🙋 It is yours. Thank you!"))
    holder = await holder_of(ctx.session, request)
    if holder is not None:
        who_for = await in_every_language(
            lambda t: claimant_label(ctx.session, t, claim, for_staff=True)
        )

        def tell(t: Translator) -> str:
            return t._(
                "🙋 {ref} was claimed by {who}. You stay responsible: you can take it back from "
                "the task card.",
                ref=reference,
                who=who_for[t.language],
            )

        await tell_staff(ctx.session, holder, ctx.now, tell, request=request)
        await refresh_task_card(ctx.session, ctx.zone, request, holder, ctx.now)
    public = await in_every_language(
        lambda t: claimant_label(ctx.session, t, claim, for_staff=False)
    )
    await notify_reporter(
        ctx.session,
        request,
        ctx.now,
        lambda t: t._(
            "🙋 Your request <b>{ref}</b> was taken on by {who}, who will be in touch with you.",
            ref=reference,
            who=public[t.language],
        ),
        zone=ctx.zone,
        policy=ctx.policy,
    )


async def held_claim(ctx: Context, claim_id: int) -> tuple[Claim, Request, Volunteer] | None:
    """The presser's own held claim, or None after answering why not."""
    volunteer = await volunteer_of(ctx.session, ctx.account)
    claim = await ctx.session.get(Claim, claim_id)
    if (
        volunteer is None
        or claim is None
        or claim.volunteer_id != volunteer.id
        or ClaimState(claim.state) not in HELD_STATES
    ):
        ctx.answer(ctx._("You do not hold this one now."), alert=True)
        return None
    request = await ctx.session.get(Request, claim.request_id)
    if request is None:
        ctx.answer(ctx._("This button is no longer active."))
        return None
    return claim, request, volunteer


async def give_back(ctx: Context, claim_id: int) -> None:
    held = await held_claim(ctx, claim_id)
    if held is None:
        return
    claim, request, volunteer = held
    end(claim, request, ClaimState.RELEASED, ctx.now)
    ctx.session.add(claim)
    note_event(
        ctx.session,
        request,
        Action.RELEASE,
        ctx.now,
        actor_account_id=ctx.account.id if ctx.account else None,
    )
    await plain_card(
        ctx.session,
        ctx.chat_id,
        claim_id,
        ctx._("↩ You gave {ref} back. Thank you for telling us.", ref=request.reference),
        ctx.now,
    )
    ctx.answer(ctx._("Given back. Thank you for telling us."))
    holder = await holder_of(ctx.session, request)
    name = volunteer.name
    reference = request.reference
    # Offered once more, to the others, unless it was given back before.
    released = (
        await ctx.session.exec(
            select(Claim.volunteer_id)
            .where(Claim.request_id == request.id)
            .where(Claim.state == ClaimState.RELEASED.value)
        )
    ).all()
    again = len(released) <= 1 and request.status in OPEN
    if again:
        await offer_need(
            ctx.session,
            request,
            ctx.now,
            ctx.offer_rules,
            staff=None,
            note=claim.note,
            reach_unit_code=claim.reach_unit_code,
            exclude_volunteer_ids=tuple(v for v in released if v is not None),
            zone=ctx.zone,
            policy=ctx.policy,
        )
    if holder is not None:

        def tell(t: Translator) -> str:
            text = t._("↩ {name} gave {ref} back.", name=escape(name), ref=reference)
            if again:
                text += " " + t._("It is offered to the other volunteers once more.")
            else:
                text += " " + t._("It is yours alone again; you can offer it again.")
            return text

        await tell_staff(ctx.session, holder, ctx.now, tell, request=request)
        await refresh_task_card(ctx.session, ctx.zone, request, holder, ctx.now)


async def contact(ctx: Context, claim_id: int) -> None:
    held = await held_claim(ctx, claim_id)
    if held is None:
        return
    _, request, volunteer = held
    beneficiary = await ctx.session.get(Beneficiary, request.beneficiary_id)
    if beneficiary is None or not beneficiary.phone:
        ctx.answer(ctx._("No phone number was given."), alert=True)
        return
    record_phone_access(
        ctx.session,
        ctx.now,
        CONTACT_CARD,
        staff_id=None,
        request_id=request.id,
        detail=f"volunteer:{volunteer.id}",
    )
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=beneficiary.name,
            contact_phone=beneficiary.phone,
            contact_name=beneficiary.name,
        )
    )


# /board ---------------------------------------------------------------------------------------


@router.command("board")
async def board_command(ctx: Context) -> None:
    await show_board(ctx, 0)


async def show_board(ctx: Context, offset: int) -> None:
    """The offers (unclaimed) of the volunteer's area in their categories, newest first, five
    a page, each claimable from here (公示)."""
    volunteer = await volunteer_of(ctx.session, ctx.account)
    if volunteer is None or volunteer.status != VolunteerStatus.APPROVED:
        ctx.reply(
            ctx._(
                "/board lists the needs on offer to volunteers. To serve as a volunteer, send "
                "/volunteer."
            )
        )
        return
    categories = volunteer.category_list
    unit = await unit_of(ctx.session, volunteer.unit_code)
    reach = [volunteer.unit_code] + ([unit.parent_code] if unit and unit.parent_code else [])
    query = (
        select(Claim, Request)
        .join(Request, col(Request.id) == col(Claim.request_id))
        .where(Claim.state == ClaimState.OFFERED.value)
        .where(col(Claim.reach_unit_code).in_(reach))
        .where(col(Request.category).in_(categories or [""]))
    )
    rows = (
        await ctx.session.exec(
            query.order_by(col(Claim.offered_at).desc(), col(Claim.id).desc())
            .offset(offset)
            .limit(BOARD_PAGE + 1)
        )
    ).all()
    if not rows and offset == 0:
        ctx.reply(ctx._("📋 Nothing is on offer in your area just now. Thank you for being ready!"))
        return
    more = len(rows) > BOARD_PAGE
    lines = [ctx._("📋 <b>On offer in your area</b>, newest first:")]
    buttons: list[list[Button]] = []
    for index, (claim, request) in enumerate(rows[:BOARD_PAGE], start=offset + 1):
        snippet = "" if is_sensitive(request.category) else request.description[:BOARD_SNIPPET]
        if snippet and len(request.description) > BOARD_SNIPPET:
            snippet += "…"
        what = escape(category_label(ctx.t, request.category))
        lines.append(
            f"{index}. <b>{request.reference}</b> · {what}"
            f" · {escape(await village(ctx.session, ctx.t, request))}"
            + (f"\n   📝 {escape(snippet)}" if snippet else "")
        )
        buttons.append(
            [
                Button(
                    ctx._("🙋 {ref}", ref=request.reference),
                    data=f"{OFFER_PREFIX}:take:{claim.id}",
                )
            ]
        )
    paging: list[Button] = []
    if offset > 0:
        previous = max(0, offset - BOARD_PAGE)
        paging.append(Button("◀", data=f"{OFFER_PREFIX}:board:{previous}"))
    if more:
        paging.append(Button("▶", data=f"{OFFER_PREFIX}:board:{offset + BOARD_PAGE}"))
    if paging:
        buttons.append(paging)
    if not rows:
        lines.append(ctx._("No more offers."))
    ctx.reply("\n".join(lines), buttons)


# For the sweep (schedules/offers.py) ------------------------------------------------------------


async def widen(
    session: AsyncSession,
    claim: Claim,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy | None = None,
) -> int:
    """The offer's time with the community passed: the town's volunteers get it too (those not
    sent a card yet). When nobody at all got a card, the holder is told. Returns cards sent."""
    assert claim.id is not None
    request = await session.get(Request, claim.request_id)
    claim.widen_at = None
    claim.next_due_at = None
    session.add(claim)
    if request is None:
        return 0
    town = await ancestor_at(session, claim.reach_unit_code, "town")
    sent = 0
    if town is not None and town.code != claim.reach_unit_code:
        claim.reach_unit_code = town.code
        note_event(session, request, Action.WIDEN, now)
        recipients = await matching_volunteers(
            session, request.category, town.code, not_sent=claim.id
        )
        sent = await send_claim_cards(
            session, request, claim, now, recipients, zone=zone, policy=policy
        )
    if not await card_chats(session, claim.id):
        holder = await holder_of(session, request)
        reference = request.reference
        await tell_staff(
            session,
            holder,
            now,
            lambda t: t._(
                "📣 {ref}: no volunteer offers this kind of help in the town yet. It stays on "
                "offer (new volunteers see it on /board); you may withdraw the offer and "
                "handle it yourself.",
                ref=reference,
            ),
            request=request,
        )
    if holder_staff := await holder_of(session, request):
        await refresh_task_card(session, zone, request, holder_staff, now)
    return sent
