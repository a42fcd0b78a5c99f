"""Nuisance marks and screening: a coordinator keeps one person's flood away from the grid.

    /nuisance                 the people marked in the viewer's area, each with an "unmark" button
    /nuisance HY000123        mark the reporter of HY000123 (a request in the viewer's area)
    /nuisance HY000123 off    unmark them
    a marked person's new need ──► screen card to the coordinator who marked them
        ├─ ➡ Pass on ──► the normal route (grid member's task card; the resident told who)
        └─ ✖ Close with a note ──► note ──► closed (the resident gets the note)

Who may mark: anyone with an area (coordinators, town officers, departments, the admin), for a
request within it. The marks, and each screening decision, are on the request's timeline (the
resident's own timeline leaves out the marks). Needs already open when someone is marked stay
where they are.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import area_of
from domain.floods import (
    NOTE_NUISANCE_OFF,
    NOTE_NUISANCE_ON,
    is_nuisance,
    mark_nuisance,
    unmark_nuisance,
)
from domain.i18n import Translator
from domain.labels import format_time, staff_label
from domain.lifecycle import Action
from domain.messages import Button, Outbound
from domain.outbox import enqueue
from domain.reach import reachable_chat
from domain.requests import close_screened, held_for_screening, note_event, pass_on_screened
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import (
    card_ref,
    notify_reporter,
    refresh_task_card,
    request_summary,
    send_task_card,
    staff_translator,
)
from handlers.common import typed_note
from storage.models import Account, Request, Staff, parse_reference

router = Router()
SCREEN_PREFIX = "sc"
UNMARK_PREFIX = "nz"
FLOW = "screen"
LISTED = 20


# The screen card ----------------------------------------------------------------------------


async def send_screen_card(
    session: AsyncSession, zone: ZoneInfo, request: Request, staff: Staff, now: datetime
) -> None:
    """The need, for the coordinator to review before anyone else sees it."""
    chat_id = reachable_chat(staff)
    if chat_id is None or request.id is None:
        return
    t = await staff_translator(session, staff)
    reporter = await session.get(Account, request.reporter_account_id)
    marker = (
        await session.get(Staff, reporter.nuisance_by_staff_id)
        if reporter is not None and reporter.nuisance_by_staff_id
        else None
    )
    if request.media_kind and request.media_file_id:
        enqueue(
            session,
            Outbound(
                chat_id=chat_id,
                text=request.reference,
                media_kind=request.media_kind,
                media_file_id=request.media_file_id,
            ),
            now,
        )
    heading = t._(
        "🔍 To review first: {name} was marked as a nuisance by {who} on {time}, so their "
        "needs come to you before anyone else.",
        name=escape(reporter.display_name if reporter else "?"),
        who=escape(staff_label(t, marker)),
        time=format_time(reporter.nuisance_at if reporter else None, zone)[:10],
    )
    summary = await request_summary(session, t, zone, request, full_phone=True)
    enqueue(
        session,
        Outbound(
            chat_id=chat_id,
            text=f"<b>{heading}</b>\n{summary}",
            buttons=screen_buttons(t, request),
            ref=card_ref(request.id, staff.id or 0),
        ),
        now,
    )


def screen_buttons(t: Translator, request: Request) -> tuple[tuple[Button, ...], ...]:
    rid = request.id
    return (
        (
            Button(t._("➡ Pass on"), data=f"{SCREEN_PREFIX}:pass:{rid}"),
            Button(t._("✖ Close with a note"), data=f"{SCREEN_PREFIX}:close:{rid}"),
        ),
    )


async def own_screening(ctx: Context, request_id: int | None) -> Request | None:
    """The request if it waits for the presser to screen it; else answer why not."""
    request = (
        await ctx.session.get(Request, request_id, with_for_update=True)
        if request_id is not None
        else None
    )
    if (
        ctx.staff is None
        or request is None
        or request.assignee_staff_id != ctx.staff.id
        or not held_for_screening(request)
    ):
        ctx.answer(ctx._("This request is not waiting for your review."), alert=True)
        return None
    return request


@router.button(SCREEN_PREFIX)
async def on_screen_button(ctx: Context) -> None:
    parts = ctx.inbound.button_data.split(":")
    request_id = parse_id(parts[2]) if len(parts) == 3 else None
    request = await own_screening(ctx, request_id)
    if request is None or ctx.staff is None:
        return
    if parts[1] == "pass":
        await pass_on(ctx, request, ctx.staff)
    elif parts[1] == "close":
        ctx.go(FLOW, "note", request_id=request.id)
        await render_note(ctx)
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def pass_on(ctx: Context, request: Request, screener: Staff) -> None:
    route = await pass_on_screened(
        ctx.session, request, screener, ctx.now, zone=ctx.zone, policy=ctx.policy
    )
    if route is None:
        ctx.answer(
            ctx._("No one can be reached to take it on; it stays with you for now."), alert=True
        )
        return
    ctx.answer(ctx._("Passed on"))
    await refresh_task_card(ctx.session, ctx.zone, request, screener, ctx.now)
    await send_task_card(
        ctx.session,
        ctx.zone,
        request,
        route.staff,
        ctx.now,
        burst_window=ctx.limits.burst_window,
    )
    owner = route.staff
    ctx.reply(
        ctx._(
            "➡ {ref} is passed on to {who}.",
            ref=request.reference,
            who=escape(staff_label(ctx.t, owner)),
        )
    )

    def notice(t: Translator) -> str:
        return t._(
            "🔄 Your request <b>{ref}</b> is now with {who}.",
            ref=request.reference,
            who=escape(staff_label(t, owner)),
        )

    await notify_reporter(ctx.session, request, ctx.now, notice, zone=ctx.zone, policy=ctx.policy)


async def render_note(ctx: Context) -> None:
    ref = Request(id=ctx.data["request_id"]).reference  # type: ignore[call-arg]
    ctx.reply(
        ctx._(
            "{ref}: why is it closed? The resident will see this note.",
            ref=ref,
        ),
        [[ctx.choice(ctx._("✖ Cancel"), "cancel")]],
    )


async def on_note(ctx: Context) -> None:
    note = typed_note(ctx, ("text",), ctx._("Please type a short note."))
    if note is None:
        return
    request = await own_screening(ctx, ctx.data.get("request_id"))
    await ctx.end_flow()
    if request is None or ctx.staff is None:
        ctx.reply(ctx._("This request is not waiting for your review; nothing was changed."))
        return
    await close_screened(ctx.session, request, ctx.staff, note, ctx.now)
    await refresh_task_card(ctx.session, ctx.zone, request, ctx.staff, ctx.now)
    ctx.reply(ctx._("✖ {ref} is closed with your note.", ref=request.reference))

    def notice(t: Translator) -> str:
        return t._(
            "Your request <b>{ref}</b> was closed after review: {note}",
            ref=request.reference,
            note=escape(note),
        )

    await notify_reporter(ctx.session, request, ctx.now, notice, zone=ctx.zone, policy=ctx.policy)


router.step(FLOW, "note", Step(render=render_note, on_input=on_note))


# /nuisance -----------------------------------------------------------------------------------


@router.command("nuisance")
async def nuisance_command(ctx: Context) -> None:
    area = await area_of(ctx.session, ctx.staff)
    if area is None or ctx.staff is None:
        ctx.reply(
            ctx._(
                "/nuisance is for community coordinators, town officers, district departments "
                "and the district office."
            )
        )
        return
    words = ctx.inbound.args.split()
    if not words:
        await list_marked(ctx)
        return
    off = len(words) > 1 and words[1].lower() in ("off", "取消", "undo")
    if len(words) > 2 or (len(words) == 2 and not off):
        ctx.reply(usage(ctx))
        return
    request_id = parse_reference(words[0])
    request = await ctx.session.get(Request, request_id) if request_id is not None else None
    if request is None or not area.covers(request):
        ctx.reply(ctx._("There is no request {ref} in your area.", ref=escape(words[0][:20])))
        return
    reporter = await ctx.session.get(Account, request.reporter_account_id, with_for_update=True)
    if reporter is None:
        ctx.reply(ctx._("There is no request {ref} in your area.", ref=escape(words[0][:20])))
        return
    await set_mark(ctx, reporter, request, on=not off)


def usage(ctx: Context) -> str:
    return ctx._(
        "Send /nuisance and a reference to mark the person who reported it (their new needs "
        "then come to you to review first), /nuisance HY000123 off to unmark them, or "
        "/nuisance alone to see who is marked."
    )


async def set_mark(ctx: Context, reporter: Account, request: Request, *, on: bool) -> None:
    assert ctx.staff is not None
    name = escape(reporter.display_name or "?")
    if on == is_nuisance(reporter):
        ctx.reply(
            ctx._("{name} is already marked as a nuisance.", name=name)
            if on
            else ctx._("{name} is not marked as a nuisance.", name=name)
        )
        return
    if on:
        mark_nuisance(reporter, ctx.staff, ctx.now)
    else:
        unmark_nuisance(reporter)
    ctx.session.add(reporter)
    note_event(
        ctx.session,
        request,
        Action.FLAG,
        ctx.now,
        actor_staff_id=ctx.staff.id,
        note=NOTE_NUISANCE_ON if on else NOTE_NUISANCE_OFF,
    )
    if on:
        ctx.reply(
            ctx._(
                "🚫 {name}, who reported {ref}, is marked as a nuisance. Their new needs come "
                "to you to review first; those already open stay where they are. To undo: "
                "/nuisance {ref} off",
                name=name,
                ref=request.reference,
            )
        )
    else:
        ctx.reply(
            ctx._(
                "✅ {name} is no longer marked; their new needs take the normal route again.",
                name=name,
            )
        )


async def list_marked(ctx: Context) -> None:
    """The marked people whose needs lie in the viewer's area (or whom they marked)."""
    assert ctx.staff is not None
    area = await area_of(ctx.session, ctx.staff)
    assert area is not None
    rows = await ctx.session.exec(
        select(Account, Request)
        .join(Request, col(Request.reporter_account_id) == col(Account.id))
        .where(col(Account.nuisance_at).is_not(None))
        .where(area.clause())
        .order_by(col(Account.nuisance_at).desc(), col(Request.id).desc())
    )
    latest: dict[int, tuple[Account, Request]] = {}
    for account, request in rows.all():
        if account.id is not None and account.id not in latest:
            latest[account.id] = (account, request)
    if not latest:
        ctx.reply(ctx._("No one in your area is marked as a nuisance.") + "\n" + usage(ctx))
        return
    lines = [ctx._("<b>Marked as a nuisance</b> (their new needs are reviewed first)")]
    buttons: list[list[Button]] = []
    for account, request in list(latest.values())[:LISTED]:
        marker = (
            await ctx.session.get(Staff, account.nuisance_by_staff_id)
            if account.nuisance_by_staff_id
            else None
        )
        lines.append(
            ctx._(
                "• {name} (latest: {ref}), marked by {who} on {time}",
                name=escape(account.display_name or "?"),
                ref=request.reference,
                who=escape(staff_label(ctx.t, marker)),
                time=format_time(account.nuisance_at, ctx.zone)[:10],
            )
        )
        buttons.append(
            [
                Button(
                    ctx._("Unmark {name}", name=account.display_name or "?"),
                    data=f"{UNMARK_PREFIX}:{request.id}",
                )
            ]
        )
    ctx.reply("\n".join(lines), buttons)


@router.button(UNMARK_PREFIX)
async def on_unmark_button(ctx: Context) -> None:
    """Unmark the reporter of the request named (checked again: within the presser's area)."""
    _, _, raw_id = ctx.inbound.button_data.partition(":")
    area = await area_of(ctx.session, ctx.staff)
    request_id = parse_id(raw_id)
    request = await ctx.session.get(Request, request_id) if request_id is not None else None
    if area is None or request is None or not area.covers(request):
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    reporter = await ctx.session.get(Account, request.reporter_account_id, with_for_update=True)
    if reporter is None:
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    await set_mark(ctx, reporter, request, on=False)
