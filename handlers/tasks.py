"""Tasks: what a grid member (or anyone on the ladder) does with a request assigned to them.

    task card ──accept─────────────► in progress ──resolve──► note ──► resolved (resident told)
        │    ──accept as complex──►     │ ──ask the resident──► question ──► waiting (paused)
        │                               │        ◄── the resident answers (or "resume") ──┘
        ├──pass up──► reason ──► the level above has it at once (card there; this card updated)
        └──mark urgent──► urgent deadlines (from now, never later than before)

Every button names the request; the press is refused politely, changing nothing, when the
request is not the presser's or has already moved on (a stale card, a second tap, a forged
button). `/tasks` lists the open ones.

The resident gets a staff question with an "Answer" button (`q:<request>`); what they send
goes to whoever has the request now, and the paused clock runs again.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, bindparam, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from domain.deadlines import (
    COMPLEX,
    URGENT,
    Policy,
    change_priority,
    pause_clocks,
    resume_clocks,
)
from domain.i18n import Translator
from domain.labels import STATUS_LABELS, category_label, format_time, staff_label
from domain.lifecycle import Action, Status
from domain.messages import Button, Outbound
from domain.privacy import CONTACT_CARD, record_phone_access
from domain.reach import reachable_chat
from domain.requests import note_event, open_tasks_of, pass_up_by_hand, transition
from domain.upward import plan_ratings
from domain.verdicts import schedule_verdict
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import (
    ANSWER_PREFIX,
    TASK_PREFIX,
    announce_new_owner,
    card_ref,
    is_resident_of,
    notify_reporter,
    refresh_task_card,
    residents_within_reach,
    send_task_card,
    tell_staff,
)
from handlers.common import show_menu, typed_note
from handlers.coordinator import holder
from handlers.rate_above import ask_rating
from storage.models import Beneficiary, Request, Staff
from storage.outbox import latest_sent_message_id
from storage.rows import request_with_people

router = Router()
FLOW = "task"
ANSWER_FLOW = "answer"
OPEN = (Status.ASSIGNED, Status.IN_PROGRESS)


async def own_task(
    ctx: Context, request_id: int, expected: Status | Collection[Status]
) -> Request | None:
    """The request if it is the presser's and in an `expected` state; else answer why not."""
    wanted = {expected} if isinstance(expected, Status) else set(expected)
    # The row lock makes a double tap served by two replicas act once on PostgreSQL.
    request = await request_with_people(ctx.session, request_id, lock=True)
    if ctx.staff is None or request is None or request.assignee_staff_id != ctx.staff.id:
        ctx.answer(ctx._("This task is not assigned to you."), alert=True)
        return None
    if request.status not in wanted:
        ctx.answer(
            ctx._(
                "This task has already moved on: {status}.",
                status=ctx._(STATUS_LABELS.get(request.status, request.status)),
            ),
            alert=True,
        )
        await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
        # Pressed on an older copy of the card: its buttons go too.
        ref = card_ref(request_id, ctx.staff.id or 0)
        if ctx.inbound.message_id != await latest_sent_message_id(ctx.session, ctx.chat_id, ref):
            await ctx.retire_pressed(ref)
        return None
    return request


@router.button(TASK_PREFIX)
async def on_task_button(ctx: Context) -> None:
    parts = ctx.inbound.button_data.split(":")
    request_id = parse_id(parts[2]) if len(parts) == 3 else None
    if request_id is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    action = parts[1]
    if action == "accept":
        await accept(ctx, request_id)
    elif action == "complex":
        await accept(ctx, request_id, complex_=True)
    elif action == "decline":
        await ask_reason(ctx, request_id, "decline_reason", OPEN)
    elif action == "resolve":
        await ask_reason(ctx, request_id, "resolve_note", Status.IN_PROGRESS)
    elif action == "ask":
        await ask_reason(ctx, request_id, "question", Status.IN_PROGRESS)
    elif action == "resume":
        await resume(ctx, request_id)
    elif action == "urgent":
        await mark_urgent(ctx, request_id)
    elif action == "phone":
        await send_contact(ctx, request_id)
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def accept(ctx: Context, request_id: int, *, complex_: bool = False) -> None:
    request = await own_task(ctx, request_id, Status.ASSIGNED)
    if request is None or ctx.staff is None:
        return
    policy = ctx.policy
    await transition(
        ctx.session,
        request,
        Action.ACCEPT,
        ctx.now,
        actor_staff_id=ctx.staff.id,
        note="priority:complex" if complex_ else None,
    )
    if complex_:
        change_priority(request, COMPLEX, ctx.now, ctx.zone, policy)
    ctx.answer(ctx._("Accepted as complex") if complex_ else ctx._("Accepted"))
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
    staff = ctx.staff

    def notice(t: Translator) -> str:
        text = t._(
            "👍 Your request <b>{ref}</b> has been accepted by {who}. They will be in touch.",
            ref=request.reference,
            who=escape(staff_label(t, staff)),
        )
        if complex_ and request.resolve_due_at is not None:
            text += "\n" + t._(
                "It needs more work than usual; the aim is to finish by {time}.",
                time=format_time(request.resolve_due_at, ctx.zone),
            )
        return text

    await notify_reporter(ctx.session, request, ctx.now, notice, zone=ctx.zone, policy=policy)


async def mark_urgent(ctx: Context, request_id: int) -> None:
    request = await own_task(ctx, request_id, OPEN)
    if request is None or ctx.staff is None:
        return
    if request.priority == URGENT:
        ctx.answer(ctx._("It is already marked urgent."))
        return
    change_priority(request, URGENT, ctx.now, ctx.zone, ctx.policy)
    ctx.session.add(request)
    note_event(
        ctx.session,
        request,
        Action.PRIORITY,
        ctx.now,
        actor_staff_id=ctx.staff.id,
        note="priority:urgent",
    )
    ctx.answer(ctx._("Marked urgent: the urgent deadlines apply."))
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)


async def ask_reason(
    ctx: Context, request_id: int, step: str, expected: Status | Collection[Status]
) -> None:
    request = await own_task(ctx, request_id, expected)
    if request is None:
        return
    if step == "question" and request.paused_at is not None:
        ctx.answer(ctx._("You are already waiting for the resident's answer."), alert=True)
        return
    ctx.go(FLOW, step, request_id=request_id)
    await render_reason(ctx)


async def render_reason(ctx: Context) -> None:
    ref = Request(id=ctx.data["request_id"]).reference  # type: ignore[call-arg]
    if ctx.step == "resolve_note":
        prompt = ctx._(
            "{ref}: in a sentence, what was done? The resident will see this note.", ref=ref
        )
    elif ctx.step == "question":
        prompt = ctx._(
            "{ref}: what would you like to ask the resident? They get your question with a "
            "button to answer, and the clock stops until they do.",
            ref=ref,
        )
    else:
        prompt = ctx._(
            "{ref}: why can this level not meet the need? It goes to the level above at once.",
            ref=ref,
        )
    ctx.reply(prompt, [[ctx.choice(ctx._("✖ Cancel"), "cancel")]])


async def on_reason(ctx: Context) -> None:
    note = typed_note(ctx, ("text",), ctx._("Please type a short note."))
    if note is None:
        return
    step = ctx.step
    expected = OPEN if step == "decline_reason" else (Status.IN_PROGRESS,)
    request = await own_task(ctx, ctx.data["request_id"], expected)
    await ctx.end_flow()
    if request is None or ctx.staff is None:
        ctx.reply(ctx._("This task has already moved on; nothing was changed."))
        return
    if step == "resolve_note":
        await resolve(ctx, request, note)
    elif step == "question":
        await ask_resident(ctx, request, note)
    else:
        await pass_up(ctx, request, note)


async def resolve(ctx: Context, request: Request, note: str) -> None:
    assert ctx.staff is not None
    told = await resolve_request(
        ctx.session, ctx.zone, ctx.policy, request, ctx.staff, ctx.now, note
    )
    if told:
        ctx.reply(
            ctx._("✅ {ref} is marked resolved. The resident has been told.", ref=request.reference)
        )
    else:
        ctx.reply(
            ctx._(
                "✅ {ref} is marked resolved. The resident could not be told: Telegram refuses "
                "our messages to them (they may have blocked Huiyin). Please call them; a "
                "follow-up call will be asked for their verdict.",
                ref=request.reference,
            )
        )


async def resolve_request(
    session: AsyncSession,
    zone: ZoneInfo,
    policy: Policy,
    request: Request,
    staff: Staff,
    now: datetime,
    note: str,
) -> bool:
    """The need is resolved by its holder `staff` with `note` (from the task card, or a
    volunteer's confirmed work, handlers/claimed_work.py): the verdict round is scheduled, the
    units below are asked to rate this level, the card updated and the resident told. False
    when the resident could not be told (Telegram refuses our messages to them)."""
    await transition(session, request, Action.RESOLVE, now, actor_staff_id=staff.id, note=note)
    # The resident is asked for their verdict later, by the sweep (handlers/verdict.py).
    schedule_verdict(request, now, zone, policy)
    # The units it left on its way up rate how this level handled it (domain/upward.py):
    # asked now, or by the worker's tick when quiet hours end.
    for rating in await plan_ratings(session, request, staff, now, zone, policy):
        await ask_rating(session, rating, now)
    await refresh_task_card(session, zone, request, staff, now)
    return await notify_reporter(
        session,
        request,
        now,
        lambda t: t._(
            "✅ Your request <b>{ref}</b> has been resolved.\nResult: {note}",
            ref=request.reference,
            note=escape(note),
        ),
        zone=zone,
        policy=policy,
    )


async def pass_up(ctx: Context, request: Request, reason: str) -> None:
    """Claiming level by level: this level cannot meet the need; the level above has it now.
    Done by the holder (from the task card) or by someone above (from /status)."""
    staff = ctx.staff
    assert staff is not None
    previous = await holder(ctx.session, request)
    own = previous is not None and previous.id == staff.id
    route = await pass_up_by_hand(
        ctx.session, request, staff, reason, ctx.now, zone=ctx.zone, policy=ctx.policy
    )
    if route is None:
        ctx.reply(
            ctx._(
                "There is nobody above to pass this to; please handle it or call the "
                "district office."
            )
        )
        return
    owner = route.staff
    ctx.reply(
        ctx._(
            "↩ {ref} was passed to {who}.",
            ref=request.reference,
            who=escape(staff_label(ctx.t, owner)),
        )
    )
    await announce_new_owner(
        ctx.session,
        ctx.zone,
        request,
        previous,
        owner,
        ctx.now,
        lead=lambda t: t._(
            "↩ Passed on by {name}: {reason}", name=escape(staff.name), reason=escape(reason)
        ),
        tell_previous=None
        if previous is None or own
        else lambda t: t._(
            "⬆ {ref} was passed up to {who} by {name}: {reason}",
            ref=request.reference,
            who=escape(staff_label(t, owner)),
            name=escape(staff.name),
            reason=escape(reason),
        ),
        policy=ctx.policy,
    )


async def ask_resident(ctx: Context, request: Request, question: str) -> None:
    """Send the question to the reporter with an Answer button; the clock waits for them."""
    assert ctx.staff is not None
    staff = ctx.staff
    if not await residents_within_reach(ctx.session, request):
        ctx.reply(
            ctx._(
                "📵 {ref}: the resident cannot be asked here: Telegram refuses our messages to "
                "them (they may have blocked Huiyin). Please call them instead; the clock keeps "
                "running.",
                ref=request.reference,
            )
        )
        return
    pause_clocks(request, ctx.now)
    ctx.session.add(request)
    note_event(
        ctx.session,
        request,
        Action.WAIT,
        ctx.now,
        actor_staff_id=staff.id,
        note=question,
    )
    await refresh_task_card(ctx.session, ctx.zone, request, staff, ctx.now)
    ctx.reply(
        ctx._(
            "❓ Your question on {ref} was sent to the resident. The clock is paused until "
            "they answer.",
            ref=request.reference,
        )
    )
    await notify_reporter(
        ctx.session,
        request,
        ctx.now,
        lambda t: t._(
            "❓ {who} has a question about your request <b>{ref}</b>:\n{question}",
            who=escape(staff_label(t, staff)),
            ref=request.reference,
            question=escape(question),
        ),
        zone=ctx.zone,
        policy=ctx.policy,
        buttons=lambda t: [Button(t._("✍ Answer"), data=f"{ANSWER_PREFIX}:{request.id}")],
        supporters=False,
    )


async def resume(ctx: Context, request_id: int) -> None:
    request = await own_task(ctx, request_id, Status.IN_PROGRESS)
    if request is None or ctx.staff is None:
        return
    if request.paused_at is None:
        ctx.answer(ctx._("The clock is already running."))
        await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
        return
    resume_clocks(request, ctx.now, ctx.zone, ctx.policy)
    ctx.session.add(request)
    note_event(
        ctx.session,
        request,
        Action.RESUME,
        ctx.now,
        actor_staff_id=ctx.staff.id,
    )
    ctx.answer(ctx._("The clock runs again."))
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)


# The resident's answer ----------------------------------------------------------------------


@router.button(ANSWER_PREFIX)
async def on_answer_button(ctx: Context) -> None:
    _, _, raw_id = ctx.inbound.button_data.partition(":")
    request_id = parse_id(raw_id)
    request = await request_with_people(ctx.session, request_id)
    if request is None or not await is_resident_of(ctx.session, request, ctx.account):
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    if request.status not in OPEN:
        ctx.answer(ctx._("This request is no longer open; no answer is needed."), alert=True)
        return
    ctx.go(ANSWER_FLOW, "text", request_id=request.id)
    await render_answer(ctx)


async def render_answer(ctx: Context) -> None:
    ref = Request(id=ctx.data["request_id"]).reference  # type: ignore[call-arg]
    ctx.reply(
        ctx._(
            "Please send your answer about {ref}: type it, or send a voice message or a photo.",
            ref=ref,
        ),
        [[ctx.choice(ctx._("✖ Cancel"), "cancel")]],
    )


ANSWER_KINDS = ("text", "voice", "photo")


async def on_answer(ctx: Context) -> None:
    text = typed_note(
        ctx,
        ANSWER_KINDS,
        ctx._("I can take text, a voice message or a photo here. Please try again."),
    )
    if text is None:
        return
    request = await request_with_people(ctx.session, ctx.data["request_id"], lock=True)
    await ctx.end_flow()
    if request is None or request.status not in OPEN:
        show_menu(ctx, ctx._("This request is no longer open; no answer is needed."))
        return
    await pass_answer(ctx, request, text)


async def awaited_answer(ctx: Context) -> Request | None:
    """The open request whose staff question waits for this resident (the reporter, or the
    linked family member it is for), the latest asked first."""
    account = ctx.account
    if account is None or account.id is None:
        return None
    rows = await ctx.session.exec(_awaited_answer_query(), params={"account_id": account.id})
    return rows.first()


@functools.cache
def _awaited_answer_query() -> SelectOfScalar[Request]:
    """`awaited_answer`'s statement, built once with the account as a parameter: it runs for
    every stray text, and building it afresh each time was a visible share of the update's CPU
    in a profile (issue 14)."""
    account_id = bindparam("account_id", type_=Integer)
    return (
        select(Request)
        .where(col(Request.paused_at).is_not(None), col(Request.status).in_(OPEN))
        .where(
            or_(
                Request.reporter_account_id == account_id,
                col(Request.beneficiary_id).in_(
                    select(Beneficiary.id).where(Beneficiary.account_id == account_id)
                ),
            )
        )
        .order_by(col(Request.paused_at).desc(), col(Request.id).desc())
        .limit(1)
    )


@router.when_idle
async def typed_answer(ctx: Context) -> bool:
    """Typed (or a voice note, or a photo) without tapping "✍ Answer" while a staff question
    waits: it is the answer, not lost."""
    if ctx.inbound.kind not in ANSWER_KINDS:
        return False
    request = await awaited_answer(ctx)
    if request is None or request.id is None:
        return False
    text = typed_note(
        ctx,
        ANSWER_KINDS,
        ctx._("I can take text, a voice message or a photo here. Please try again."),
    )
    if text is None:
        return True
    request = await ctx.session.get(Request, request.id, with_for_update=True)
    if request is None or request.status not in OPEN:
        return False
    await pass_answer(ctx, request, text)
    return True


async def pass_answer(ctx: Context, request: Request, text: str) -> None:
    """The resident's answer goes to whoever holds the request; the paused clock runs again."""
    inbound = ctx.inbound
    staff = (
        await ctx.session.get(Staff, request.assignee_staff_id)
        if request.assignee_staff_id
        else None
    )
    if request.paused_at is not None:
        resume_clocks(request, ctx.now, ctx.zone, ctx.policy)
        ctx.session.add(request)
    note_event(
        ctx.session,
        request,
        Action.ANSWER,
        ctx.now,
        actor_account_id=ctx.account.id if ctx.account else None,
        note=text or None,
    )
    chat_id = reachable_chat(staff)
    if staff is not None and chat_id is not None:
        media = inbound.file_id if inbound.kind in ("voice", "photo") else None
        if media:
            ctx.send(
                Outbound(
                    chat_id=chat_id,
                    text=request.reference,
                    media_kind=inbound.kind,
                    media_file_id=media,
                )
            )
        await tell_staff(
            ctx.session,
            staff,
            ctx.now,
            lambda t: t._(
                "💬 The resident answered about <b>{ref}</b>:\n{answer}",
                ref=request.reference,
                answer=escape(text) or t._("(a voice message or photo, above)"),
            ),
            request=request,
        )
        await refresh_task_card(ctx.session, ctx.zone, request, staff, ctx.now)
    show_menu(
        ctx,
        ctx._(
            "Thank you. Your answer was passed to {who}.",
            who=escape(staff_label(ctx.t, staff)),
        ),
    )


# Other ------------------------------------------------------------------------------------


async def send_contact(ctx: Context, request_id: int) -> None:
    request = await ctx.session.get(Request, request_id)
    if ctx.staff is None or request is None or request.assignee_staff_id != ctx.staff.id:
        ctx.answer(ctx._("This task is not assigned to you."), alert=True)
        return
    beneficiary = await ctx.session.get(Beneficiary, request.beneficiary_id)
    if beneficiary is None or not beneficiary.phone:
        ctx.answer(ctx._("No phone number was given."), alert=True)
        return
    record_phone_access(
        ctx.session, ctx.now, CONTACT_CARD, staff_id=ctx.staff.id, request_id=request.id
    )
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=beneficiary.name,
            contact_phone=beneficiary.phone,
            contact_name=beneficiary.name,
        )
    )


@router.command("tasks")
async def list_tasks(ctx: Context) -> None:
    if ctx.staff is None or ctx.staff.id is None:
        show_menu(
            ctx, ctx._("/tasks is for staff. Staff members can link their roster entry with /join.")
        )
        return
    tasks = await open_tasks_of(ctx.session, ctx.staff.id)
    if not tasks:
        show_menu(ctx, ctx._("🎉 You have no open tasks."))
        return
    lines = [ctx.t.ngettext("<b>{n} open task</b>", "<b>{n} open tasks</b>", len(tasks))]
    buttons: list[list[Button]] = []
    for request in tasks[:30]:
        status = ctx._(STATUS_LABELS.get(request.status, request.status))
        lines.append(
            f"• <b>{request.reference}</b> {escape(category_label(ctx.t, request.category))}"
            f" — {status} ({format_time(request.created_at, ctx.zone)})"
        )
        buttons.append(
            [
                Button(
                    f"{request.reference} · {category_label(ctx.t, request.category)}",
                    data=f"v:{request.id}",
                )
            ]
        )
    ctx.reply("\n".join(lines), buttons)


# Cards shown at once to someone who comes within reach; /tasks lists the rest.
WAITING_CARDS = 5


async def show_waiting(ctx: Context) -> None:
    """Someone the bot could not reach until now (they never opened it, or had blocked it)
    hears what has waited for them, with the cards to act on."""
    if ctx.staff is None or ctx.staff.id is None:
        return
    waiting = await open_tasks_of(ctx.session, ctx.staff.id)
    if not waiting:
        return
    ctx.reply(
        ctx.t.ngettext(
            "📌 {n} task is waiting for you:",
            "📌 {n} tasks are waiting for you:",
            len(waiting),
        )
        + (
            "\n" + ctx._("The first {shown} are below; /tasks lists them all.", shown=WAITING_CARDS)
            if len(waiting) > WAITING_CARDS
            else ""
        )
    )
    for request in waiting[:WAITING_CARDS]:
        await send_task_card(
            ctx.session,
            ctx.zone,
            request,
            ctx.staff,
            ctx.now,
            lead=lambda t: t._("📌 Waiting for you"),
        )


router.step(FLOW, "resolve_note", Step(render=render_reason, on_input=on_reason))
router.step(FLOW, "decline_reason", Step(render=render_reason, on_input=on_reason))
router.step(FLOW, "question", Step(render=render_reason, on_input=on_reason))
router.step(ANSWER_FLOW, "text", Step(render=render_answer, on_input=on_answer))
