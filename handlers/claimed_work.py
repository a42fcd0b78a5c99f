"""Claimed work (认领之后): a volunteer who holds a need reports it done, the holder confirms it
(or it counts as done after HUIYIN_CLAIM_CONFIRM_HOURS, schedules/claim_confirm.py), and the
need is resolved with the volunteer's line as its result, so the usual verdict round starts.

    claimed ──"✅ Done" (cw:done)──► the line (text or voice) ──► hours (1/2/4/skip) ──► done
    done ──holder "✅ Confirm done" (cw:ok), or the time passes──► confirmed; the need resolved
    done ──holder "↩ Not done yet" (cw:no) ──► a reason (optional) ──► claimed again (told why)

Every button names the claim; a press by someone who does not hold it, on a claim that has
moved on, or a second tap is answered politely and changes nothing. `/mine` shows a volunteer
what they hold (with its Done button), what they did (paged) and their totals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claim_figures import Record, claims_done_by, record_of
from domain.claims import (
    HELD_STATES,
    ClaimState,
    check_move,
    end,
    held_by,
    plain_claimant_card,
)
from domain.deadlines import Policy
from domain.i18n import N_, Translator, translator
from domain.labels import category_label, format_time, staff_label
from domain.lifecycle import Action, Status
from domain.messages import Button, Outbound
from domain.outbox import enqueue
from domain.reach import account_reachable, reachable_chat
from domain.requests import note_event, transition
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import hold_until, staff_translator
from handlers.common import show_menu, typed_note
from handlers.tasks import resolve_request
from storage.models import Account, Claim, Organisation, Request, Staff, Volunteer

router = Router()
PREFIX = "cw"
FLOW = "claimwork"
VOICE = "voice"
HOURS = ("1", "2", "4")
OPEN = (Status.ASSIGNED.value, Status.IN_PROGRESS.value)
# /mine shows this many past claims a page.
PAGE = 5
HISTORY = 20
# /mine lists at most this many held needs, each with its Done button.
MAX_HELD = 10
# The note on a reminder sent to the claimant rather than the holder (domain.labels).
TO_CLAIMANT = "to:claimant"

SATISFACTION_SAID: dict[str, str] = {
    "satisfied": N_("the resident was satisfied"),
    "fairly": N_("the resident was fairly satisfied"),
    "not_satisfied": N_("the resident was not satisfied"),
}


def done_button(t: Translator, claim_id: int) -> Button:
    return Button(t._("✅ Done"), data=f"{PREFIX}:done:{claim_id}")


def holder_ref(claim_id: int) -> str:
    """The holder's card about reported work, whose buttons go once one is pressed."""
    return f"claimdone:{claim_id}"


async def volunteer_of(session: AsyncSession, account: Account | None) -> Volunteer | None:
    if account is None or account.id is None:
        return None
    return (await session.exec(select(Volunteer).where(Volunteer.account_id == account.id))).first()


async def claimant_name(session: AsyncSession, t: Translator, claim: Claim) -> str:
    """Who claimed it, as the holder sees it: the volunteer, and the unit they claimed for."""
    volunteer = await session.get(Volunteer, claim.volunteer_id) if claim.volunteer_id else None
    name = volunteer.name if volunteer else "?"
    if claim.organisation_id is not None:
        unit = await session.get(Organisation, claim.organisation_id)
        if unit is not None:
            unit_name = unit.name_en if t.language == "en" and unit.name_en else unit.name
            name = f"{unit_name} ({name})"
    return name


async def tell_volunteer(
    session: AsyncSession,
    claim: Claim,
    now: datetime,
    build: Callable[[Translator], str],
    *,
    buttons: Callable[[Translator], list[list[Button]]] | None = None,
) -> bool:
    """A message to the claimant in their language; False when they have no account or
    Telegram refuses our messages to them."""
    volunteer = await session.get(Volunteer, claim.volunteer_id) if claim.volunteer_id else None
    account = (
        await session.get(Account, volunteer.account_id)
        if volunteer is not None and volunteer.account_id is not None
        else None
    )
    if account is None or not account_reachable(account):
        return False
    t = translator(account.language)
    rows = tuple(tuple(row) for row in buttons(t)) if buttons else ()
    enqueue(session, Outbound(chat_id=account.chat_id, text=build(t), buttons=rows), now)
    return True


async def remind_claimant(
    session: AsyncSession, request: Request, now: datetime, zone: ZoneInfo, policy: Policy
) -> bool:
    """The deadline sweep's reminder to resolve goes to the volunteer who holds the need
    (claimed, or reported done), in their language: "please do it, or give it back". False
    when there is no such volunteer with an account Telegram lets us write to (the holder is
    reminded instead). One query, and none for a need that was never claimed."""
    if request.claim_id is None:
        return False
    row = (
        await session.exec(
            select(Account, Claim)
            .join(Volunteer, col(Volunteer.account_id) == col(Account.id))
            .join(Claim, col(Claim.volunteer_id) == col(Volunteer.id))
            .where(
                col(Claim.id) == request.claim_id,
                col(Claim.state).in_([s.value for s in HELD_STATES]),
            )
        )
    ).first()
    if row is None or not account_reachable(row[0]):
        return False
    account, claim = row
    assert claim.id is not None
    t = translator(account.language)
    values = {
        "ref": request.reference,
        "category": escape(category_label(t, request.category)),
        "time": format_time(request.resolve_due_at, zone),
    }
    if claim.state == ClaimState.CLAIMED.value:
        text = t._(
            "⏰ Reminder: <b>{ref}</b> ({category}), which you claimed, is due to be done by "
            "{time}. Please do it and tap Done, or give it back if you cannot.",
            **values,
        )
    else:  # reported done: it waits for the holder, who is told when the deadline passes
        text = t._(
            "⏰ <b>{ref}</b> ({category}) is due by {time}; you reported it done and the holder "
            "has not confirmed it yet. Nothing more is needed from you.",
            **values,
        )
    buttons = ((done_button(t, claim.id),),) if claim.state == ClaimState.CLAIMED.value else ()
    enqueue(
        session,
        Outbound(chat_id=account.chat_id, text=text, buttons=buttons),
        now,
        not_before=await hold_until(session, account.chat_id, request, now, zone, policy),
    )
    note_event(session, request, Action.REMIND, now, note=f"clock:resolve\n{TO_CLAIMANT}")
    return True


# The volunteer: reporting done ----------------------------------------------------------------


async def own_claim(ctx: Context, claim_id: int, expected: ClaimState) -> Claim | None:
    """The claim if the presser's volunteer profile holds it in state `expected`, locked; else
    answer why not."""
    claim = await ctx.session.get(Claim, claim_id, with_for_update=True)
    volunteer = await volunteer_of(ctx.session, ctx.account)
    if claim is None or volunteer is None or claim.volunteer_id != volunteer.id:
        ctx.answer(ctx._("This is not a need you hold."), alert=True)
        return None
    if claim.state != expected.value:
        if claim.state == ClaimState.DONE.value:
            ctx.answer(
                ctx._("You have already reported it done; the holder is asked to confirm."),
                alert=True,
            )
        else:
            ctx.answer(ctx._("This need is no longer yours to report; thank you."), alert=True)
        return None
    return claim


@router.button(PREFIX)
async def on_button(ctx: Context) -> None:
    parts = ctx.inbound.button_data.split(":")
    claim_id = parse_id(parts[2]) if len(parts) == 3 else None
    if claim_id is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    action = parts[1]
    if action == "page" and claim_id > HISTORY:
        ctx.answer(ctx._("This button is no longer active."))
        return
    if action == "done":
        await start_done(ctx, claim_id)
    elif action == "ok":
        await confirm_by_holder(ctx, claim_id)
    elif action == "no":
        await start_not_done(ctx, claim_id)
    elif action == "page":
        await show_mine(ctx, claim_id)  # here the number is the page's offset
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def start_done(ctx: Context, claim_id: int) -> None:
    claim = await own_claim(ctx, claim_id, ClaimState.CLAIMED)
    if claim is None:
        return
    ctx.go(FLOW, "note", claim_id=claim_id, request_id=claim.request_id)
    await render(ctx)


async def render(ctx: Context) -> None:
    ref = Request(id=ctx.data["request_id"]).reference  # type: ignore[call-arg]
    if ctx.step == "note":
        ctx.reply(
            ctx._(
                "{ref}: in a line, what did you do? Type it or send a voice message; the holder "
                "confirms it and the resident sees it.",
                ref=ref,
            ),
            [[ctx.choice(ctx._("✖ Cancel"), "cancel")]],
        )
    elif ctx.step == "hours":
        ctx.reply(
            ctx._("{ref}: how many hours did it take?", ref=ref),
            [
                [ctx.choice(ctx._("{n} h", n=n), n) for n in HOURS],
                [ctx.choice(ctx._("Skip"), "skip")],
            ],
        )
    else:  # "reason": the holder's
        ctx.reply(
            ctx._(
                "{ref}: what is still to be done? The volunteer sees your words. Or tap Skip.",
                ref=ref,
            ),
            [[ctx.choice(ctx._("Skip"), "skip"), ctx.choice(ctx._("✖ Cancel"), "cancel")]],
        )


async def on_note(ctx: Context) -> None:
    text = typed_note(ctx, ("text", VOICE), ctx._("Please type a line or send a voice message."))
    if text is None:
        return
    inbound = ctx.inbound
    voice = inbound.file_id if inbound.kind == VOICE and inbound.file_id else None
    ctx.go(FLOW, "hours", note=text, voice=voice)
    await render(ctx)


async def on_hours(ctx: Context, value: str) -> None:
    if value not in (*HOURS, "skip"):
        ctx.answer(ctx._("This button is no longer active."))
        return
    await ctx.retire_pressed(ctx.step_ref, ctx._("{n} h", n=value) if value != "skip" else "")
    data = ctx.data
    await ctx.end_flow()
    claim = await own_claim(ctx, data["claim_id"], ClaimState.CLAIMED)
    if claim is None:
        show_menu(ctx, ctx._("This need has moved on; nothing was changed."))
        return
    await report_done(
        ctx, claim, data.get("note") or "", data.get("voice"), None if value == "skip" else value
    )


async def report_done(
    ctx: Context, claim: Claim, note: str, voice: str | None, hours: str | None
) -> None:
    assert claim.id is not None
    check_move(claim, ClaimState.DONE)
    claim.state = ClaimState.DONE.value
    claim.done_at = ctx.now
    claim.done_note = note or None
    claim.done_media_kind = VOICE if voice else None
    claim.done_media_file_id = voice
    claim.hours = float(hours) if hours else None
    claim.confirm_due_at = ctx.now + ctx.claim_confirm_after
    claim.next_due_at = claim.confirm_due_at
    ctx.session.add(claim)
    request = await ctx.session.get(Request, claim.request_id)
    assert request is not None
    event = note_event(
        ctx.session,
        request,
        Action.CLAIM_DONE,
        ctx.now,
        actor_account_id=ctx.account.id if ctx.account else None,
        note=note or None,
    )
    if voice:
        event.media_kind = VOICE
        event.media_file_id = voice
        ctx.session.add(event)
    await send_holder_card(ctx.session, ctx.zone, claim, request, ctx.now)
    show_menu(
        ctx,
        ctx._(
            "✅ Thank you! {ref} is reported done. The holder is asked to confirm; without an "
            "answer it counts as done by {time}.",
            ref=request.reference,
            time=format_time(claim.confirm_due_at, ctx.zone),
        ),
    )


async def send_holder_card(
    session: AsyncSession, zone: ZoneInfo, claim: Claim, request: Request, now: datetime
) -> None:
    """The holder hears of the reported work, with the volunteer's voice note if there is one,
    and the buttons to confirm it or send it back."""
    assert claim.id is not None
    holder = (
        await session.get(Staff, request.assignee_staff_id) if request.assignee_staff_id else None
    )
    chat_id = reachable_chat(holder)
    if holder is None or chat_id is None:
        return  # it counts as done when the time passes (schedules/claim_confirm.py)
    t = await staff_translator(session, holder)
    if claim.done_media_file_id:
        enqueue(
            session,
            Outbound(
                chat_id=chat_id,
                text=request.reference,
                media_kind=VOICE,
                media_file_id=claim.done_media_file_id,
            ),
            now,
        )
    text = t._(
        "🙋 {who} reports <b>{ref}</b> ({category}) done: {note}",
        who=escape(await claimant_name(session, t, claim)),
        ref=request.reference,
        category=escape(category_label(t, request.category)),
        note=escape(claim.done_note or t._("(a voice message, above)")),
    )
    if claim.hours is not None:
        text += "\n" + t._("Time given: {hours} h", hours=f"{claim.hours:g}")
    assert claim.confirm_due_at is not None
    text += "\n" + t._(
        "Without an answer it counts as done by {time}.",
        time=format_time(claim.confirm_due_at, zone),
    )
    enqueue(
        session,
        Outbound(
            chat_id=chat_id,
            text=text,
            buttons=(
                (Button(t._("✅ Confirm done"), data=f"{PREFIX}:ok:{claim.id}"),),
                (Button(t._("↩ Not done yet"), data=f"{PREFIX}:no:{claim.id}"),),
            ),
            ref=holder_ref(claim.id),
        ),
        now,
    )


# The holder: confirm, or not done yet --------------------------------------------------------


async def holders_claim(ctx: Context, claim_id: int) -> tuple[Claim, Request] | None:
    """The reported claim on a need the presser holds, locked; else answer why not."""
    claim = await ctx.session.get(Claim, claim_id, with_for_update=True)
    request = await ctx.session.get(Request, claim.request_id) if claim is not None else None
    if (
        claim is None
        or request is None
        or ctx.staff is None
        or request.assignee_staff_id != ctx.staff.id
    ):
        ctx.answer(ctx._("This task is not assigned to you."), alert=True)
        return None
    if claim.state != ClaimState.DONE.value or request.status not in OPEN:
        ctx.answer(
            ctx._("This has already been settled: {state}.", state=claim_state_label(ctx.t, claim)),
            alert=True,
        )
        await ctx.retire_pressed(holder_ref(claim_id))
        return None
    return claim, request


CLAIM_STATE_LABELS: dict[str, str] = {
    "offered": N_("on offer"),
    "claimed": N_("being done by the volunteer"),
    "done": N_("reported done"),
    "confirmed": N_("confirmed"),
    "withdrawn": N_("offer withdrawn"),
    "taken_back": N_("taken back"),
    "released": N_("given back"),
    "closed": N_("closed"),
}


def claim_state_label(t: Translator, claim: Claim) -> str:
    return t._(CLAIM_STATE_LABELS.get(claim.state, claim.state))


async def confirm_by_holder(ctx: Context, claim_id: int) -> None:
    found = await holders_claim(ctx, claim_id)
    if found is None or ctx.staff is None:
        return
    claim, request = found
    await ctx.retire_pressed(holder_ref(claim_id), ctx._("✅ Confirm done"))
    told = await confirm(
        ctx.session, ctx.zone, ctx.policy, claim, request, ctx.staff, ctx.now, auto=False
    )
    ctx.answer(ctx._("Confirmed"))
    ctx.reply(
        ctx._(
            "✅ {ref} is resolved with the volunteer's work. The resident has been told.",
            ref=request.reference,
        )
        if told
        else ctx._(
            "✅ {ref} is resolved with the volunteer's work. The resident could not be told: "
            "Telegram refuses our messages to them. Please call them.",
            ref=request.reference,
        )
    )


async def confirm(
    session: AsyncSession,
    zone: ZoneInfo,
    policy: Policy,
    claim: Claim,
    request: Request,
    holder: Staff,
    now: datetime,
    *,
    auto: bool,
) -> bool:
    """The reported work is confirmed (by the holder, or by the time passing): the claim ends
    as confirmed and the need is resolved by its holder with the volunteer's line, which starts
    the verdict round (handlers.tasks.resolve_request). The volunteer is told. False when the
    resident could not be told."""
    if request.status == Status.ASSIGNED.value:
        await transition(session, request, Action.ACCEPT, now, actor_staff_id=holder.id)
    end(claim, request, ClaimState.CONFIRMED, now)
    session.add(claim)
    t = await staff_translator(session, holder)
    note = claim.done_note or t._("(a voice message from the volunteer)")
    told = await resolve_request(session, zone, policy, request, holder, now, note)

    def text_for(vt: Translator) -> str:
        if auto:
            return vt._(
                "✅ {ref} counts as done: thank you! The resident is asked for their verdict.",
                ref=request.reference,
            )
        return vt._(
            "✅ {who} confirmed your work on {ref}: thank you! The resident is asked for their "
            "verdict.",
            who=escape(staff_label(vt, holder)),
            ref=request.reference,
        )

    # The claim has ended for the volunteer: their card loses the beneficiary's details.
    await plain_claimant_card(session, claim, now, text_for)
    await tell_volunteer(session, claim, now, text_for)
    return told


async def start_not_done(ctx: Context, claim_id: int) -> None:
    found = await holders_claim(ctx, claim_id)
    if found is None:
        return
    _, request = found
    ctx.go(FLOW, "reason", claim_id=claim_id, request_id=request.id)
    await render(ctx)


async def on_reason(ctx: Context) -> None:
    text = typed_note(ctx, ("text",), ctx._("Please type a short note, or tap Skip."))
    if text is None:
        return
    await send_back(ctx, text)


async def on_reason_choice(ctx: Context, value: str) -> None:
    if value != "skip":
        ctx.answer(ctx._("This button is no longer active."))
        return
    await ctx.retire_pressed(ctx.step_ref, ctx._("Skip"))
    await send_back(ctx, "")


async def send_back(ctx: Context, reason: str) -> None:
    """Not done yet: the claim is the volunteer's to finish again, and they are told why."""
    claim_id = ctx.data["claim_id"]
    await ctx.end_flow()
    found = await holders_claim(ctx, claim_id)
    if found is None:
        ctx.reply(ctx._("This has already been settled; nothing was changed."))
        return
    claim, request = found
    await ctx.retire_pressed(holder_ref(claim_id), ctx._("↩ Not done yet"))
    check_move(claim, ClaimState.CLAIMED)
    claim.state = ClaimState.CLAIMED.value
    claim.done_at = None
    claim.confirm_due_at = None
    claim.next_due_at = None
    ctx.session.add(claim)

    def text_for(t: Translator) -> str:
        text = t._("↩ {ref} is not done yet, says the holder.", ref=request.reference)
        if reason:
            text += "\n" + t._("Their words: {reason}", reason=escape(reason))
        return (
            text + "\n" + t._("Please finish it and tap Done again, or give it back if you cannot.")
        )

    told = await tell_volunteer(
        ctx.session, claim, ctx.now, text_for, buttons=lambda t: [[done_button(t, claim_id)]]
    )
    ctx.reply(
        ctx._("↩ {ref} went back to the volunteer.", ref=request.reference)
        if told
        else ctx._(
            "↩ {ref} went back to the volunteer, who cannot be told here: please call them.",
            ref=request.reference,
        )
    )


# /mine: the volunteer's record ---------------------------------------------------------------


def record_lines(t: Translator, record: Record) -> list[str]:
    lines = [
        t._(
            "Claims: {claims} · done: {done} · hours: {hours}",
            claims=record.claims,
            done=record.done,
            hours=f"{record.hours:g}",
        )
    ]
    if record.rated:
        lines.append(
            t._(
                "Residents satisfied: {satisfied} of {rated} rated ({rate})",
                satisfied=record.satisfied,
                rated=record.rated,
                rate=f"{record.satisfaction_rate:.0%}",
            )
        )
    return lines


@router.command("mine")
async def mine(ctx: Context) -> None:
    await show_mine(ctx, 0)


async def show_mine(ctx: Context, offset: int) -> None:
    volunteer = await volunteer_of(ctx.session, ctx.account)
    if volunteer is None or volunteer.id is None:
        show_menu(ctx, ctx._("/mine is for volunteers: send /volunteer to offer your help."))
        return
    lines = [ctx._("🙋 <b>Your service record</b>")]
    buttons: list[list[Button]] = []
    held = await held_by(ctx.session, volunteer.id)
    if offset == 0:
        if held:
            lines.append(ctx._("<b>You hold now</b>"))
        for claim in held[:MAX_HELD]:
            request = await ctx.session.get(Request, claim.request_id)
            if request is None or claim.id is None:
                continue
            lines.append(
                f"• <b>{request.reference}</b> "
                f"{escape(category_label(ctx.t, request.category))} — "
                f"{claim_state_label(ctx.t, claim)}"
            )
            if claim.state == ClaimState.CLAIMED.value:
                buttons.append(
                    [
                        Button(
                            ctx._("✅ Done: {ref}", ref=request.reference),
                            data=f"{PREFIX}:done:{claim.id}",
                        )
                    ]
                )
        if len(held) > MAX_HELD:
            lines.append(ctx._("… and {count} more.", count=len(held) - MAX_HELD))
        lines.extend(record_lines(ctx.t, await record_of(ctx.session, volunteer.id)))
    past = await claims_done_by(ctx.session, volunteer.id, limit=HISTORY)
    page = past[offset : offset + PAGE]
    if page:
        lines.append(ctx._("<b>What you did</b>"))
    for claim, request in page:
        said = (
            ctx._(SATISFACTION_SAID[claim.satisfaction])
            if claim.satisfaction in SATISFACTION_SAID
            else ctx._("no verdict yet")
        )
        when = format_time(claim.confirmed_at or claim.done_at or claim.claimed_at, ctx.zone)
        lines.append(
            f"• <b>{request.reference}</b> "
            f"{escape(category_label(ctx.t, request.category))} — {when} — {said}"
        )
    if not held and not past:
        lines.append(ctx._("Nothing yet: /board shows the needs on offer near you."))
    nav: list[Button] = []
    if offset > 0:
        nav.append(Button(ctx._("◀ Back"), data=f"{PREFIX}:page:{max(0, offset - PAGE)}"))
    if offset + PAGE < len(past):
        nav.append(Button(ctx._("More ▶"), data=f"{PREFIX}:page:{offset + PAGE}"))
    if nav:
        buttons.append(nav)
    ctx.reply("\n".join(lines), buttons)


router.step(FLOW, "note", Step(render=render, on_input=on_note))
router.step(FLOW, "hours", Step(render=render, on_choice=on_hours))
router.step(FLOW, "reason", Step(render=render, on_input=on_reason, on_choice=on_reason_choice))
