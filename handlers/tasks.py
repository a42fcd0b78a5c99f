"""Tasks: what a grid member (or anyone on the ladder) does with a request assigned to them.

    task card ──accept──► in progress ──resolve──► note ──► resolved (resident told, with the note)
        └──not mine──► reason ──► passed to the level above (card there; this card updated)

Every button names the request; the press is refused politely, changing nothing, when the
request is not the presser's or has already moved on (a stale card, a second tap, a forged
button). `/tasks` lists the open ones.
"""

from __future__ import annotations

from bot.channels.types import Button, Outbound
from bot.domain.lifecycle import Action, Status, TransitionRefused
from bot.domain.requests import open_tasks_of, reroute_up, transition
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import (
    TASK_PREFIX,
    notify_reporter,
    refresh_task_card,
    send_task_card,
)
from handlers.common import STATUS_LABELS, category_label, format_time, show_menu, staff_label
from storage.models import Beneficiary, Request

router = Router()
FLOW = "task"
MAX_NOTE = 500


async def own_task(ctx: Context, request_id: int, expected: Status) -> Request | None:
    """The request if it is the presser's and in `expected` state; else answer why not."""
    # The row lock makes a double tap served by two replicas act once on PostgreSQL.
    request = await ctx.session.get(Request, request_id, with_for_update=True)
    if ctx.staff is None or request is None or request.assignee_staff_id != ctx.staff.id:
        ctx.answer(ctx._("This task is not assigned to you."), alert=True)
        return None
    if request.status != expected:
        ctx.answer(
            ctx._(
                "This task has already moved on: {status}.",
                status=ctx._(STATUS_LABELS.get(request.status, request.status)),
            ),
            alert=True,
        )
        await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
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
    elif action == "decline":
        await ask_reason(ctx, request_id, "decline_reason", Status.ASSIGNED)
    elif action == "resolve":
        await ask_reason(ctx, request_id, "resolve_note", Status.IN_PROGRESS)
    elif action == "phone":
        await send_contact(ctx, request_id)
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def accept(ctx: Context, request_id: int) -> None:
    request = await own_task(ctx, request_id, Status.ASSIGNED)
    if request is None or ctx.staff is None:
        return
    await transition(ctx.session, request, Action.ACCEPT, ctx.now, actor_staff_id=ctx.staff.id)
    ctx.answer(ctx._("Accepted"))
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
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
    )


async def ask_reason(ctx: Context, request_id: int, step: str, expected: Status) -> None:
    if await own_task(ctx, request_id, expected) is None:
        return
    ctx.go(FLOW, step, request_id=request_id)
    await render_reason(ctx)


async def render_reason(ctx: Context) -> None:
    ref = Request(id=ctx.data["request_id"]).reference  # type: ignore[call-arg]
    if ctx.step == "resolve_note":
        prompt = ctx._(
            "{ref}: in a sentence, what was done? The resident will see this note.", ref=ref
        )
    else:
        prompt = ctx._("{ref}: why is this not yours? It will go to the level above.", ref=ref)
    ctx.reply(prompt, [[ctx.choice(ctx._("✖ Cancel"), "cancel")]])


async def on_reason(ctx: Context) -> None:
    note = ctx.inbound.text.strip()
    if ctx.inbound.kind != "text" or not note:
        ctx.reply(ctx._("Please type a short note."))
        return
    if len(note) > MAX_NOTE:
        ctx.reply(
            ctx._(
                "Please keep the note under {limit} characters (it is {length}).",
                limit=MAX_NOTE,
                length=len(note),
            )
        )
        return
    step = ctx.step
    expected = Status.IN_PROGRESS if step == "resolve_note" else Status.ASSIGNED
    request = await own_task(ctx, ctx.data["request_id"], expected)
    await ctx.end_flow()
    if request is None or ctx.staff is None:
        ctx.reply(ctx._("This task has already moved on; nothing was changed."))
        return
    if step == "resolve_note":
        await resolve(ctx, request, note)
    else:
        await decline(ctx, request, note)


async def resolve(ctx: Context, request: Request, note: str) -> None:
    assert ctx.staff is not None
    await transition(
        ctx.session, request, Action.RESOLVE, ctx.now, actor_staff_id=ctx.staff.id, note=note
    )
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
    ctx.reply(
        ctx._("✅ {ref} is marked resolved. The resident has been told.", ref=request.reference)
    )
    await notify_reporter(
        ctx.session,
        request,
        ctx.now,
        lambda t: t._(
            "✅ Your request <b>{ref}</b> has been resolved.\nResult: {note}",
            ref=request.reference,
            note=escape(note),
        ),
    )


async def decline(ctx: Context, request: Request, reason: str) -> None:
    staff = ctx.staff
    assert staff is not None
    try:
        route = await reroute_up(
            ctx.session, request, Action.DECLINE, ctx.now, actor_staff=staff, reason=reason
        )
    except TransitionRefused:
        route = None
    if route is None:
        ctx.reply(
            ctx._(
                "There is nobody above to pass this to; please handle it or call the "
                "district office."
            )
        )
        return
    await refresh_task_card(ctx.session, ctx.zone, request, staff, ctx.now)
    ctx.reply(
        ctx._(
            "↩ {ref} was passed to {who}.",
            ref=request.reference,
            who=escape(staff_label(ctx.t, route.staff)),
        )
    )
    await send_task_card(
        ctx.session,
        ctx.zone,
        request,
        route.staff,
        ctx.now,
        lead=lambda t: t._(
            "↩ Passed on by {name}: {reason}", name=escape(staff.name), reason=escape(reason)
        ),
    )


async def send_contact(ctx: Context, request_id: int) -> None:
    request = await ctx.session.get(Request, request_id)
    if ctx.staff is None or request is None or request.assignee_staff_id != ctx.staff.id:
        ctx.answer(ctx._("This task is not assigned to you."), alert=True)
        return
    beneficiary = await ctx.session.get(Beneficiary, request.beneficiary_id)
    if beneficiary is None or not beneficiary.phone:
        ctx.answer(ctx._("No phone number was given."), alert=True)
        return
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


router.step(FLOW, "resolve_note", Step(render=render_reason, on_input=on_reason))
router.step(FLOW, "decline_reason", Step(render=render_reason, on_input=on_reason))
