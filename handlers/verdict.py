"""After the work: the resident's verdict, the follow-up call, and reopening.

    sweep: resolved + 1 h (out of quiet hours) ──► "Is it solved?" to the reporter and to the
           beneficiary (when they use the bot); a follow-up call to a grid member when the
           beneficiary does not
    Solved / Not solved ──► Satisfied / Fairly satisfied / Not satisfied (one tap each)
        ├─ solved and (fairly) satisfied ──► closed; an optional comment (text or voice)
        └─ not solved, or not satisfied  ──► reopened one level up; the reason (text or voice)
    sweep: 24 h without an answer ──► one reminder, and the follow-up call to a grid member
    sweep: 72 h without an answer ──► closed as "not rated"
    supporters of a shared need ("me too") are asked the same with `sv` buttons, for their own
    verdict (and an optional comment) on their `supporters` row; the request's verdict, and any
    reopening, stays the reporter's
    My requests: "Reopen" on a request closed less than 7 days ago ──► a reason ──► reopened
    follow-up recorded by staff ──► closed or reopened; an optional comment from the call

A voice comment or reason is kept by its file_id on its timeline entry; the timeline offers
it again with a `rv:p:<event id>` button (for the resident, and for staff of the request).

Rating buttons are not step buttons (a resident may tap them days later): `rv:s:<id>:<y|n>`
(solved?), `rv:f:<id>:<y|n>:<s|f|u>` (how satisfied; the verdict is stored with this tap, whole),
`rv:o:<id>` (reopen from My requests), `rv:p:<event id>` (play a voice note). Follow-up
buttons for staff: `fu:s:<id>:<y|n>` and `fu:f:<id>:<y|n>:<s|f|u>`. Each tap is checked
against the presser (the reporter or the beneficiary; for `fu`, the staff member given the
call), the request's state, and whether this round's verdict was already given: the first
answer counts, the others are told so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, bindparam, case, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from domain.areas import area_of
from domain.deadlines import Policy
from domain.i18n import N_, Translator, translator
from domain.labels import format_time, staff_label
from domain.lifecycle import Action, Status
from domain.messages import Button, Outbound
from domain.outbox import enqueue
from domain.privacy import FOLLOW_UP_CALL, record_phone_access
from domain.reach import account_reachable, reachable_chat
from domain.requests import note_event
from domain.verdicts import (
    ASK,
    BY_BENEFICIARY,
    BY_REPORTER,
    BY_STAFF,
    EXPIRE,
    FAIRLY,
    NOT_RATED,
    NOT_SATISFIED,
    REMIND,
    SATISFIED,
    choose_follow_up,
    close_request,
    handled_by,
    may_reopen_from_list,
    needs_reopening,
    record_verdict,
    reopen,
    verdict_asked,
    verdict_reminded,
    waiting_for_verdict,
)
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import announce_new_owner, refresh_task_card, staff_translator, tell_staff
from handlers.common import show_menu, typed_note
from storage.models import Account, Beneficiary, Request, RequestEvent, Staff, Supporter
from storage.rows import request_with_people

RATE_PREFIX = "rv"
# A supporter's own verdict (a "me too" of a shared need): `sv:s:<supporter>:<y|n>`,
# `sv:f:<supporter>:<y|n>:<s|f|u>`; stored on the `supporters` row, not the request.
SUPPORTER_PREFIX = "sv"
FOLLOW_UP_PREFIX = "fu"
FLOW = "verdict"
VOICE = "voice"
# After a follow-up call, the staff member's own note steps (the resident's are the others).
STAFF_STEPS = ("staff_comment", "staff_reason")
MAX_VOICE_BUTTONS = 3

router = Router()

SATISFACTION_CODES: dict[str, str] = {"s": SATISFIED, "f": FAIRLY, "u": NOT_SATISFIED}
SATISFACTION_LABELS: dict[str, str] = {
    SATISFIED: N_("😊 Satisfied"),
    FAIRLY: N_("🙂 Fairly satisfied"),
    NOT_SATISFIED: N_("😞 Not satisfied"),
}


# Buttons ------------------------------------------------------------------------------------


def verdict_ref(request_id: int) -> str:
    """The name of the verdict questions to a resident ("Is it solved?", "How satisfied?"), so
    that their buttons can go once one is pressed."""
    return f"verdict:{request_id}"


def supporter_verdict_ref(supporter_id: int) -> str:
    return f"supverdict:{supporter_id}"


def follow_up_ref(request_id: int) -> str:
    return f"followup:{request_id}"


SOLVED_LABELS: dict[str, str] = {"y": N_("✅ Solved"), "n": N_("❌ Not solved")}


def solved_buttons(t: Translator, prefix: str, request_id: int) -> tuple[tuple[Button, ...], ...]:
    return (
        (Button(t._("✅ Solved"), data=f"{prefix}:s:{request_id}:y"),),
        (Button(t._("❌ Not solved"), data=f"{prefix}:s:{request_id}:n"),),
    )


def satisfaction_buttons(
    t: Translator, prefix: str, request_id: int, solved: str
) -> list[list[Button]]:
    return [
        [Button(t._(SATISFACTION_LABELS[code]), data=f"{prefix}:f:{request_id}:{solved}:{key}")]
        for key, code in SATISFACTION_CODES.items()
    ]


# The sweep's steps --------------------------------------------------------------------------


async def parties(session: AsyncSession, request: Request) -> list[Account]:
    """Who may give the verdict on the bot: the reporter, and the beneficiary if they use it;
    neither once Telegram has refused our messages to them (they blocked the bot)."""
    people: list[Account] = []
    reporter = await session.get(Account, request.reporter_account_id)
    if reporter is not None and account_reachable(reporter):
        people.append(reporter)
    beneficiary = await session.get(Beneficiary, request.beneficiary_id)
    if beneficiary is not None and beneficiary.account_id not in (
        None,
        request.reporter_account_id,
    ):
        account = await session.get(Account, beneficiary.account_id)
        if account is not None and account_reachable(account):
            people.append(account)
    return people


async def beneficiary_uses_bot(session: AsyncSession, request: Request) -> bool:
    beneficiary = await session.get(Beneficiary, request.beneficiary_id)
    return beneficiary is None or beneficiary.is_self or beneficiary.account_id is not None


async def verdict_step(
    session: AsyncSession, request: Request, now: datetime, zone: ZoneInfo, policy: Policy
) -> str | None:
    """Run the verdict step that is due (called by the deadline sweep); what was done."""
    stage = request.verdict_stage
    if stage == ASK:
        asked = await ask(session, request, now, zone, policy, reminder=False)
        # Nobody to ask on the bot (a family member without Telegram, or a resident who
        # blocked the bot): a grid member calls instead (回访).
        if not asked or not await beneficiary_uses_bot(session, request):
            await give_follow_up(session, request, now, zone, policy)
        verdict_asked(request, now, zone, policy)
        return "verdict:ask"
    if stage == REMIND:
        await ask(session, request, now, zone, policy, reminder=True)
        await give_follow_up(session, request, now, zone, policy)
        verdict_reminded(request, now, policy)
        return "verdict:remind"
    if stage == EXPIRE:
        await close_request(session, request, now, note=NOT_RATED)
        await tell_parties(
            session,
            request,
            now,
            lambda t: t._(
                "Your request <b>{ref}</b> is closed without a rating. If it is not solved, "
                "you can reopen it from “My requests” within 7 days.",
                ref=request.reference,
            ),
            not_before=policy.quiet_hours.release(now, zone),
        )
        return "verdict:not_rated"
    return None


async def ask(
    session: AsyncSession,
    request: Request,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    *,
    reminder: bool,
) -> int:
    """Ask whoever may give the verdict on the bot; how many were asked."""
    assert request.id is not None
    request_id = request.id

    def text_for(t: Translator) -> str:
        lead = t._("⏰ A reminder, if you have a moment.") + "\n" if reminder else ""
        text = lead + t._(
            "🙏 Your request <b>{ref}</b> was marked resolved. Is it solved?",
            ref=request.reference,
        )
        if request.result_note:
            text += "\n" + t._("What was done: {note}", note=escape(request.result_note))
        return text

    people = await parties(session, request)
    for account in people:
        t = translator(account.language)
        enqueue(
            session,
            Outbound(
                chat_id=account.chat_id,
                text=text_for(t),
                buttons=solved_buttons(t, RATE_PREFIX, request_id),
                ref=verdict_ref(request_id),
            ),
            now,
            not_before=policy.quiet_hours.release(now, zone),
        )
    if people:
        note_event(
            session,
            request,
            Action.ASK_VERDICT,
            now,
            note="verdict:remind" if reminder else "verdict:ask",
        )
    # Those who said "me too" are asked the same, for their own verdict (domain/shared.py).
    for supporter, account in await supporters_to_ask(session, request):
        assert supporter.id is not None
        t = translator(account.language)
        enqueue(
            session,
            Outbound(
                chat_id=account.chat_id,
                text=t._("👥 About a need you support:") + "\n" + text_for(t),
                buttons=solved_buttons(t, SUPPORTER_PREFIX, supporter.id),
                ref=supporter_verdict_ref(supporter.id),
            ),
            now,
            not_before=policy.quiet_hours.release(now, zone),
        )
        supporter.verdict_asked_at = supporter.verdict_asked_at or now
        session.add(supporter)
    return len(people)


async def supporters_to_ask(
    session: AsyncSession, request: Request
) -> list[tuple[Supporter, Account]]:
    """The supporters of a resolved need who have not given their verdict yet, and whom the
    bot can still write to."""
    if request.id is None or not request.supporter_count:
        return []
    rows = await session.exec(
        select(Supporter, Account)
        .join(Account, col(Account.id) == col(Supporter.account_id))
        .where(Supporter.request_id == request.id, col(Supporter.rated_at).is_(None))
        .where(col(Account.erased_at).is_(None))
        .order_by(col(Supporter.id))
    )
    return [(s, a) for s, a in rows.all() if account_reachable(a)]


async def give_follow_up(
    session: AsyncSession, request: Request, now: datetime, zone: ZoneInfo, policy: Policy
) -> None:
    """A grid member who did not handle the request is asked to call the resident and
    record the answer with the buttons; once per round."""
    if request.followup_staff_id is not None:
        return
    staff = await choose_follow_up(session, request)
    if staff is None or staff.id is None or staff.telegram_id is None or request.id is None:
        return
    request.followup_staff_id = staff.id
    beneficiary = await session.get(Beneficiary, request.beneficiary_id)
    t = await staff_translator(session, staff)
    who = escape(beneficiary.name) if beneficiary else "?"
    if beneficiary is not None and beneficiary.phone:
        who += f" · ☎ {escape(beneficiary.phone)}"
        # A grid member who does not hold the request is given the number: recorded.
        record_phone_access(session, now, FOLLOW_UP_CALL, staff_id=staff.id, request_id=request.id)
    text = t._(
        "📞 Follow-up call for <b>{ref}</b>: please call {who} and ask whether it is solved "
        "and how satisfied they are, then record the answer here.",
        ref=request.reference,
        who=who,
    )
    if request.result_note:
        text += "\n" + t._("What was done: {note}", note=escape(request.result_note))
    enqueue(
        session,
        Outbound(
            chat_id=staff.telegram_id,
            text=text,
            buttons=solved_buttons(t, FOLLOW_UP_PREFIX, request.id),
            ref=follow_up_ref(request.id),
        ),
        now,
        not_before=policy.quiet_hours.release(now, zone),
    )
    note_event(
        session,
        request,
        Action.FOLLOW_UP,
        now,
        actor_staff_id=staff.id,
    )


async def tell_parties(
    session: AsyncSession,
    request: Request,
    now: datetime,
    build: Callable[[Translator], str],
    *,
    except_account: int | None = None,
    not_before: datetime | None = None,
) -> None:
    for account in await parties(session, request):
        if account.id == except_account:
            continue
        enqueue(
            session,
            Outbound(chat_id=account.chat_id, text=build(translator(account.language))),
            now,
            not_before=not_before,
        )


# The resident's taps ------------------------------------------------------------------------


def parse(data: str) -> tuple[str, int | None, list[str]]:
    parts = data.split(":")
    if len(parts) < 3:
        return "", None, []
    return parts[1], parse_id(parts[2]), parts[3:]


async def role_of(ctx: Context, request: Request) -> str | None:
    """The presser's part in the request: "reporter", "beneficiary", or None."""
    if ctx.account is None:
        return None
    if request.reporter_account_id == ctx.account.id:
        return BY_REPORTER
    beneficiary = await ctx.session.get(Beneficiary, request.beneficiary_id)
    if beneficiary is not None and beneficiary.account_id == ctx.account.id:
        return BY_BENEFICIARY
    return None


async def rater_name(session: AsyncSession, t: Translator, request: Request) -> str:
    """Who gave this round's verdict on the bot, by their Telegram name."""
    account = (
        await session.get(Account, request.verdict_account_id)
        if request.verdict_account_id is not None
        else None
    )
    return (account.display_name if account else "") or t._("your family member")


async def already_answered(ctx: Context, request: Request) -> None:
    """Who rated it, and when, in words that fit the one asking."""
    when = format_time(request.rated_at, ctx.zone) if request.rated_at else ""
    if request.verdict_by == BY_STAFF:
        text = ctx._(
            "Thank you, this was already rated on {time}: a staff member took down the "
            "answer on a call.",
            time=when,
        )
    elif ctx.account is not None and request.verdict_account_id == ctx.account.id:
        text = ctx._("Thank you, you already rated this on {time}.", time=when)
    else:
        text = ctx._(
            "Thank you, {name} already rated this on {time}.",
            name=await rater_name(ctx.session, ctx.t, request),
            time=when,
        )
    ctx.answer(text, alert=True)


@router.button(RATE_PREFIX)
async def on_rate_button(ctx: Context) -> None:
    action, request_id, rest = parse(ctx.inbound.button_data)
    if action == "p" and not rest:
        await play_voice(ctx, request_id)
        return
    request = await request_with_people(ctx.session, request_id, lock=True)
    role = await role_of(ctx, request) if request is not None else None
    if request is None or role is None:
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    if ctx.staff is not None and ctx.staff.id in await handled_by(ctx.session, request):
        ctx.answer(ctx._("Staff cannot rate their own work."), alert=True)
        return
    if action == "o" and not rest:
        await start_reopen(ctx, request)
        return
    ref = verdict_ref(request.id or 0)
    if not await still_open_for_verdict(ctx, request, ref):
        return
    if action == "s" and rest in (["y"], ["n"]):
        await ctx.retire_pressed(ref, ctx._(SOLVED_LABELS[rest[0]]))
        ctx.reply(
            ctx._(
                "How satisfied are you with how <b>{ref}</b> was handled?", ref=request.reference
            ),
            satisfaction_buttons(ctx.t, RATE_PREFIX, request.id or 0, rest[0]),
            ref=ref,
        )
    elif action == "f" and len(rest) == 2 and rest[0] in "yn" and rest[1] in SATISFACTION_CODES:
        await ctx.retire_pressed(ref, ctx._(SATISFACTION_LABELS[SATISFACTION_CODES[rest[1]]]))
        await give_verdict(
            ctx, request, rest[0] == "y", SATISFACTION_CODES[rest[1]], by=role, staff=None
        )
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def still_open_for_verdict(ctx: Context, request: Request, ref: str) -> bool:
    """True while an answer can still be given; otherwise the presser is told why not, and
    the buttons they pressed go (nothing there can be answered any more)."""
    if request.rated_at is not None:
        await already_answered(ctx, request)
    elif not waiting_for_verdict(request):
        ctx.answer(ctx._("This request is no longer waiting for an answer."), alert=True)
    else:
        return True
    await ctx.retire_pressed(ref)
    return False


@router.button(SUPPORTER_PREFIX)
async def on_supporter_button(ctx: Context) -> None:
    """A supporter's own verdict: the same two taps as the reporter's, kept on their
    `supporters` row; the need's own verdict (and any reopening) stays the reporter's."""
    action, supporter_id, rest = parse(ctx.inbound.button_data)
    supporter = (
        await ctx.session.get(Supporter, supporter_id, with_for_update=True)
        if supporter_id is not None
        else None
    )
    if (
        supporter is None
        or supporter.id is None
        or ctx.account is None
        or supporter.account_id != ctx.account.id
        or supporter.verdict_asked_at is None
    ):
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    request = await ctx.session.get(Request, supporter.request_id)
    ref = supporter_verdict_ref(supporter.id)
    if supporter.rated_at is not None:
        ctx.answer(
            ctx._(
                "Thank you, you already rated this on {time}.",
                time=format_time(supporter.rated_at, ctx.zone),
            ),
            alert=True,
        )
        await ctx.retire_pressed(ref)
        return
    if request is None or request.status not in (Status.RESOLVED, Status.CLOSED):
        ctx.answer(ctx._("This request is no longer waiting for an answer."), alert=True)
        await ctx.retire_pressed(ref)
        return
    if action == "s" and rest in (["y"], ["n"]):
        await ctx.retire_pressed(ref, ctx._(SOLVED_LABELS[rest[0]]))
        ctx.reply(
            ctx._(
                "How satisfied are you with how <b>{ref}</b> was handled?", ref=request.reference
            ),
            satisfaction_buttons(ctx.t, SUPPORTER_PREFIX, supporter.id, rest[0]),
            ref=ref,
        )
    elif action == "f" and len(rest) == 2 and rest[0] in "yn" and rest[1] in SATISFACTION_CODES:
        await ctx.retire_pressed(ref, ctx._(SATISFACTION_LABELS[SATISFACTION_CODES[rest[1]]]))
        supporter.solved = rest[0] == "y"
        supporter.satisfaction = SATISFACTION_CODES[rest[1]]
        supporter.rated_at = ctx.now
        ctx.session.add(supporter)
        ctx.answer(ctx._("Thank you!"))
        ctx.go(FLOW, SUPPORTER_COMMENT, supporter_id=supporter.id, ref=request.reference)
        await render_supporter_comment(ctx)
    else:
        ctx.answer(ctx._("This button is no longer active."))


SUPPORTER_COMMENT = "supporter_comment"


async def render_supporter_comment(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "Thank you! Would you like to add a comment on {ref}? Type it in a few words.",
            ref=ctx.data.get("ref", ""),
        ),
        [[ctx.choice(ctx._("No comment, thanks"), "skip")]],
    )


async def on_supporter_comment_choice(ctx: Context, value: str) -> None:
    await ctx.end_flow()
    show_menu(ctx, ctx._("Thank you!"))


async def on_supporter_comment(ctx: Context) -> None:
    """A supporter's words after their verdict, kept on their `supporters` row (text only)."""
    text = typed_note(ctx, ("text",), ctx._("Please type a short note."))
    if not text:
        return
    supporter = await ctx.session.get(Supporter, ctx.data.get("supporter_id"))
    await ctx.end_flow()
    if supporter is None or ctx.account is None or supporter.account_id != ctx.account.id:
        show_menu(ctx)
        return
    kept = f"{supporter.comment}\n{text}" if supporter.comment else text
    supporter.comment = kept[:1000]
    ctx.session.add(supporter)
    show_menu(ctx, ctx._("Thank you! Your words were passed on."))


router.step(
    FLOW,
    SUPPORTER_COMMENT,
    Step(
        render=render_supporter_comment,
        on_choice=on_supporter_comment_choice,
        on_input=on_supporter_comment,
    ),
)


@router.button(FOLLOW_UP_PREFIX)
async def on_follow_up_button(ctx: Context) -> None:
    action, request_id, rest = parse(ctx.inbound.button_data)
    request = (
        await ctx.session.get(Request, request_id, with_for_update=True)
        if request_id is not None
        else None
    )
    staff = ctx.staff
    if request is None or staff is None or request.followup_staff_id != staff.id:
        ctx.answer(ctx._("This follow-up is not yours."), alert=True)
        return
    if staff.id in await handled_by(ctx.session, request):
        ctx.answer(ctx._("Staff cannot rate their own work."), alert=True)
        return
    ref = follow_up_ref(request.id or 0)
    if not await still_open_for_verdict(ctx, request, ref):
        return
    if action == "s" and rest in (["y"], ["n"]):
        await ctx.retire_pressed(ref, ctx._(SOLVED_LABELS[rest[0]]))
        ctx.reply(
            ctx._("<b>{ref}</b>: how satisfied is the resident?", ref=request.reference),
            satisfaction_buttons(ctx.t, FOLLOW_UP_PREFIX, request.id or 0, rest[0]),
            ref=ref,
        )
    elif action == "f" and len(rest) == 2 and rest[0] in "yn" and rest[1] in SATISFACTION_CODES:
        await ctx.retire_pressed(ref, ctx._(SATISFACTION_LABELS[SATISFACTION_CODES[rest[1]]]))
        await give_verdict(
            ctx, request, rest[0] == "y", SATISFACTION_CODES[rest[1]], by=BY_STAFF, staff=staff
        )
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def give_verdict(
    ctx: Context,
    request: Request,
    solved: bool,
    satisfaction: str,
    *,
    by: str,
    staff: Staff | None,
) -> None:
    account_id = ctx.account.id if ctx.account is not None and staff is None else None
    # Words the resident typed before tapping (kept as the comment) are their reason too.
    said_before = request.verdict_comment
    await record_verdict(
        ctx.session,
        request,
        ctx.now,
        solved=solved,
        satisfaction=satisfaction,
        by=by,
        account_id=account_id,
        staff_id=staff.id if staff else None,
    )
    ctx.answer(ctx._("Thank you!"))
    rater = ctx.account.display_name if ctx.account is not None and staff is None else ""

    def answered(t: Translator) -> str:
        if staff is not None:
            return t._(
                "Thank you: a staff member took down the answer on <b>{ref}</b> on a call; "
                "nothing more is needed from you.",
                ref=request.reference,
            )
        return t._(
            "Thank you: {name} has already rated <b>{ref}</b>; nothing more is needed from you.",
            name=escape(rater or t._("your family member")),
            ref=request.reference,
        )

    # The others who were asked are told, once, that the answer is in.
    await tell_parties(
        ctx.session,
        request,
        ctx.now,
        answered,
        except_account=account_id,
        not_before=ctx.policy.quiet_hours.release(ctx.now, ctx.zone),
    )
    if needs_reopening(solved, satisfaction):
        await reopen_and_announce(ctx, request, reason=said_before, by_staff=staff)
        ctx.go(FLOW, "reason" if staff is None else "staff_reason", request_id=request.id)
        await render_note(ctx)
        return
    await close_request(ctx.session, request, ctx.now)
    ctx.go(
        FLOW,
        "comment" if staff is None else "staff_comment",
        request_id=request.id,
        said=bool(said_before),
    )
    await render_note(ctx)


async def reopen_and_announce(
    ctx: Context,
    request: Request,
    *,
    reason: str | None,
    by_staff: Staff | None,
    voice_file_id: str | None = None,
) -> None:
    previous = (
        await ctx.session.get(Staff, request.assignee_staff_id)
        if request.assignee_staff_id
        else None
    )
    route = await reopen(
        ctx.session,
        request,
        ctx.now,
        ctx.zone,
        ctx.policy,
        reason=reason,
        actor_account_id=ctx.account.id if ctx.account and by_staff is None else None,
        voice_file_id=voice_file_id,
    )
    owner = route.staff if route is not None else previous
    if owner is None:
        return

    def lead(t: Translator) -> str:
        text = t._("🔁 Reopened: the resident says it is not solved or not satisfactory")
        said = reason or (t._("(a voice message)") if voice_file_id else "")
        return text + (f": {escape(said)}" if said else "")

    if previous is not None and owner.id == previous.id:
        await refresh_task_card(ctx.session, ctx.zone, request, owner, ctx.now)
        await tell_staff(ctx.session, owner, ctx.now, lead, request=request)
        return
    await announce_new_owner(
        ctx.session,
        ctx.zone,
        request,
        previous,
        owner,
        ctx.now,
        lead=lead,
        tell_previous=lambda t: t._(
            "🔁 {ref} was reopened by the resident; it is now with {who}.",
            ref=request.reference,
            who=escape(staff_label(t, owner)),
        ),
        policy=ctx.policy,
    )


# Voice notes on the timeline ----------------------------------------------------------------


def voice_rows(t: Translator, zone: ZoneInfo, events: list[RequestEvent]) -> list[list[Button]]:
    """A button for each of the latest voice notes on a timeline, to hear it again."""
    voiced = [e for e in events if e.media_kind == VOICE and e.media_file_id and e.id]
    return [
        [
            Button(
                t._("🎤 Play the voice note of {time}", time=format_time(event.at, zone)),
                data=f"{RATE_PREFIX}:p:{event.id}",
            )
        ]
        for event in voiced[-MAX_VOICE_BUTTONS:]
    ]


async def may_hear(ctx: Context, request: Request) -> bool:
    """The reporter and the beneficiary; staff who held the request, acted on it or were given
    its follow-up call; and staff whose area covers it."""
    if await role_of(ctx, request) is not None:
        return True
    staff = ctx.staff
    if staff is None or staff.id is None:
        return False
    if staff.id == request.followup_staff_id or staff.id in await handled_by(ctx.session, request):
        return True
    area = await area_of(ctx.session, staff)
    return area is not None and area.covers(request)


async def play_voice(ctx: Context, event_id: int | None) -> None:
    event = await ctx.session.get(RequestEvent, event_id) if event_id is not None else None
    request = await ctx.session.get(Request, event.request_id) if event is not None else None
    if (
        event is None
        or request is None
        or event.media_kind != VOICE
        or not event.media_file_id
        or not await may_hear(ctx, request)
    ):
        ctx.answer(ctx._("This voice note is not available."), alert=True)
        return
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=f"{request.reference} · {format_time(event.at, ctx.zone)}",
            media_kind=VOICE,
            media_file_id=event.media_file_id,
        )
    )


# The reason or comment after the verdict, and reopening from "My requests" -----------------


async def start_reopen(ctx: Context, request: Request) -> None:
    if not may_reopen_from_list(request, ctx.now):
        ctx.answer(
            ctx._("This request can no longer be reopened here; please report a new need."),
            alert=True,
        )
        return
    ctx.go(FLOW, "reopen", request_id=request.id)
    await render_note(ctx)


async def render_note(ctx: Context) -> None:
    ref = Request(id=ctx.data["request_id"]).reference  # type: ignore[call-arg]
    if ctx.step == "comment" and ctx.data.get("said"):
        text = ctx._(
            "Thank you! {ref} is closed, and your words are kept with it. Anything to add? "
            "Type it or send a voice message.",
            ref=ref,
        )
        buttons = [[ctx.choice(ctx._("No comment, thanks"), "skip")]]
    elif ctx.step == "comment":
        text = ctx._(
            "Thank you! {ref} is closed. Would you like to add a comment? Type it or send a "
            "voice message.",
            ref=ref,
        )
        buttons = [[ctx.choice(ctx._("No comment, thanks"), "skip")]]
    elif ctx.step == "reason":
        text = ctx._(
            "Thank you. {ref} has been reopened and goes to the level above. What is still "
            "not right? Type it or send a voice message.",
            ref=ref,
        )
        buttons = [[ctx.choice(ctx._("Skip"), "skip")]]
    elif ctx.step == "staff_comment":
        text = ctx._(
            "Recorded. {ref} is closed. Did the resident say anything worth keeping? Type it "
            "or send a voice message (optional).",
            ref=ref,
        )
        buttons = [[ctx.choice(ctx._("Skip"), "skip")]]
    elif ctx.step == "staff_reason":
        text = ctx._(
            "Recorded. {ref} has been reopened. What does the resident say is still not "
            "right? Type it or send a voice message (optional).",
            ref=ref,
        )
        buttons = [[ctx.choice(ctx._("Skip"), "skip")]]
    else:
        text = ctx._(
            "Why would you like to reopen {ref}? Type it or send a voice message.", ref=ref
        )
        buttons = [[ctx.choice(ctx._("✖ Cancel"), "cancel")]]
    ctx.reply(text, buttons)


async def on_note_choice(ctx: Context, value: str) -> None:
    if value != "skip" or ctx.step not in ("comment", "reason", *STAFF_STEPS):
        ctx.answer(ctx._("This button is no longer active."))
        return
    await ctx.end_flow()
    show_menu(ctx, ctx._("Thank you!"))


async def on_note(ctx: Context) -> None:
    inbound = ctx.inbound
    text = typed_note(
        ctx, ("text", "voice"), ctx._("Please type a few words or send a voice message.")
    )
    if text is None:
        return
    step = ctx.step or ""
    request = await ctx.session.get(Request, ctx.data["request_id"], with_for_update=True)
    await ctx.end_flow()
    staff = ctx.staff if step in STAFF_STEPS else None
    if request is None or (ctx.account is None and staff is None):
        show_menu(ctx)
        return
    if step in STAFF_STEPS and (
        staff is None or request.followup_staff_id != staff.id or request.verdict_by != BY_STAFF
    ):
        show_menu(ctx, ctx._("This follow-up is not yours."))
        return
    voice = inbound.file_id if inbound.kind == VOICE and inbound.file_id else None
    if step == "reopen":
        if await role_of(ctx, request) is None or not may_reopen_from_list(request, ctx.now):
            show_menu(ctx, ctx._("This request can no longer be reopened here."))
            return
        await reopen_and_announce(
            ctx, request, reason=text or None, by_staff=None, voice_file_id=voice
        )
    else:
        # A bare voice message stays a voice: it is kept on the timeline entry (to play
        # again), and the comment column holds only words actually written.
        if text:
            kept = f"{request.verdict_comment}\n{text}" if request.verdict_comment else text
            request.verdict_comment = kept[:1000]
            ctx.session.add(request)
        # A comment taken down by staff after the call is marked so on the timeline.
        parts = ["by:staff" if staff else "", text]
        event = note_event(
            ctx.session,
            request,
            Action.COMMENT,
            ctx.now,
            actor_account_id=ctx.account.id if ctx.account and not staff else None,
            actor_staff_id=staff.id if staff else None,
            note="\n".join(p for p in parts if p) or None,
        )
        if voice:
            event.media_kind = VOICE
            event.media_file_id = voice
    owner = (
        await ctx.session.get(Staff, request.assignee_staff_id)
        if request.assignee_staff_id
        else None
    )
    passed_on = step in ("reason", "reopen", "staff_reason")
    owner_chat = reachable_chat(owner)
    if passed_on and owner is not None and owner_chat is not None:
        if voice:
            ctx.send(
                Outbound(
                    chat_id=owner_chat,
                    text=request.reference,
                    media_kind=VOICE,
                    media_file_id=voice,
                )
            )
        if step != "reopen":
            await tell_staff(
                ctx.session,
                owner,
                ctx.now,
                lambda t: t._(
                    "💬 The resident's reason for reopening <b>{ref}</b>:\n{reason}",
                    ref=request.reference,
                    reason=escape(text or t._("(a voice message)")),
                ),
                request=request,
            )
    if step == "reopen":
        show_menu(ctx, ctx._("🔁 {ref} has been reopened. Thank you.", ref=request.reference))
    elif staff is not None:
        show_menu(ctx, ctx._("Noted on the request's timeline. Thank you!"))
    else:
        show_menu(ctx, ctx._("Thank you! Your words were passed on."))


# Words typed instead of a tap --------------------------------------------------------------


async def awaited_verdict(ctx: Context) -> Request | None:
    """The request whose "Is it solved?" waits for this person: a resident who may rate it,
    or the staff member given its follow-up call; the latest asked first, and the staff
    member's follow-up calls before their own requests. One statement (a staff member who is
    also a resident took two, one for each role: issue 14)."""
    staff_id = ctx.staff.id if ctx.staff is not None else None
    account_id = ctx.account.id if ctx.account is not None else None
    if staff_id is None and account_id is None:
        return None
    query = _awaited_verdict_query(staff_id is not None, account_id is not None)
    params = {"staff_id": staff_id, "account_id": account_id}
    return (await ctx.session.exec(query, params=params)).first()


@functools.cache
def _awaited_verdict_query(as_staff: bool, as_resident: bool) -> SelectOfScalar[Request]:
    """`awaited_verdict`'s statement for a person in these roles, built once with the ids as
    parameters: it runs for every stray text, and building it afresh each time was a visible
    share of the update's CPU in a profile (issue 14)."""
    staff_id = bindparam("staff_id", type_=Integer)
    account_id = bindparam("account_id", type_=Integer)
    whose = []
    if as_staff:
        whose.append(col(Request.followup_staff_id) == staff_id)
    if as_resident:
        whose.append(
            or_(
                Request.reporter_account_id == account_id,
                col(Request.beneficiary_id).in_(
                    select(Beneficiary.id).where(Beneficiary.account_id == account_id)
                ),
            )
        )
    order = [col(Request.verdict_asked_at).desc(), col(Request.id).desc()]
    if as_staff:
        order.insert(0, case((col(Request.followup_staff_id) == staff_id, 0), else_=1))
    return (
        select(Request)
        .where(
            Request.status == Status.RESOLVED,
            col(Request.rated_at).is_(None),
            col(Request.verdict_asked_at).is_not(None),
            or_(*whose),
        )
        .order_by(*order)
        .limit(1)
    )


@router.when_idle
async def typed_verdict(ctx: Context) -> bool:
    """Words (or a voice message) sent instead of tapping "Solved" / "Not solved" are kept as
    the comment on the timeline, and the one-tap question is asked again: nothing is lost.
    For the staff member on a follow-up call, they are a note from the call."""
    inbound = ctx.inbound
    if inbound.kind not in ("text", VOICE):
        return False
    found = await awaited_verdict(ctx)
    if found is None or found.id is None:
        return False
    text = typed_note(
        ctx, ("text", VOICE), ctx._("Please type a few words or send a voice message.")
    )
    if text is None:
        return True
    request = await ctx.session.get(Request, found.id, with_for_update=True)
    if request is None or not waiting_for_verdict(request):
        return False
    by_staff = ctx.staff is not None and request.followup_staff_id == ctx.staff.id
    voice = inbound.file_id if inbound.kind == VOICE and inbound.file_id else None
    if text and not by_staff:
        kept = f"{request.verdict_comment}\n{text}" if request.verdict_comment else text
        request.verdict_comment = kept[:1000]
        ctx.session.add(request)
    parts = ["by:staff" if by_staff else "", text]
    event = note_event(
        ctx.session,
        request,
        Action.COMMENT,
        ctx.now,
        actor_account_id=ctx.account.id if ctx.account and not by_staff else None,
        actor_staff_id=ctx.staff.id if by_staff and ctx.staff else None,
        note="\n".join(p for p in parts if p) or None,
    )
    if voice:
        event.media_kind = VOICE
        event.media_file_id = voice
    if by_staff:
        ctx.reply(
            ctx._(
                "Noted on the timeline of <b>{ref}</b>. Please record the resident's answer: "
                "is it solved?",
                ref=request.reference,
            ),
            solved_buttons(ctx.t, FOLLOW_UP_PREFIX, request.id or 0),
            ref=follow_up_ref(request.id or 0),
        )
    else:
        ctx.reply(
            ctx._(
                "Thank you, your words on <b>{ref}</b> are kept with the request. One more "
                "tap, please: is it solved?",
                ref=request.reference,
            ),
            solved_buttons(ctx.t, RATE_PREFIX, request.id or 0),
            ref=verdict_ref(request.id or 0),
        )
    return True


for _step in ("comment", "reason", "reopen", *STAFF_STEPS):
    router.step(FLOW, _step, Step(render=render_note, on_choice=on_note_choice, on_input=on_note))
