"""My requests: a resident's requests, newest first, each with its timeline on tap.

    menu ─► list (8 a page, "more" pages on) ─► tap one ─► summary + timeline

A family member who opened their personal link sees the requests filed for them too, marked
with who filed them. Also the `v:<id>` button used in notices: the reporter (and that linked
family member) sees the timeline; the current assignee
sees the task card. Anyone else (a forged or stale button) gets a polite refusal.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from domain.i18n import Translator
from domain.labels import (
    EVENT_LABELS,
    LEVEL_LABELS,
    NOTE_LABELS,
    STAFF_ONLY_EVENTS,
    STATUS_LABELS,
    category_label,
    format_time,
    staff_label,
)
from domain.messages import Button
from domain.requests import requests_of, timeline
from domain.verdicts import may_reopen_from_list, waiting_for_verdict
from handlers.base import Context, Router, escape, parse_id
from handlers.cards import is_resident_of, request_summary, send_task_card
from handlers.common import MENU_PREFIX, show_menu
from handlers.verdict import RATE_PREFIX, solved_buttons, voice_rows
from storage.models import Account, Request, RequestEvent, Staff
from storage.rows import request_with_people

router = Router()
PAGE = 8
VIEW_PREFIX = "v"


async def show_my_requests(ctx: Context, offset: int = 0) -> None:
    if ctx.account is None or ctx.account.id is None:
        show_menu(ctx)
        return
    page = await requests_of(ctx.session, ctx.account.id, PAGE + 1, offset)
    if not page and offset == 0:
        show_menu(ctx, ctx._("You have no requests yet."))
        return
    lines = [ctx._("<b>Your requests</b> (newest first)")]
    buttons: list[list[Button]] = []
    for request in page[:PAGE]:
        status = ctx._(STATUS_LABELS.get(request.status, request.status))
        line = (
            f"• <b>{request.reference}</b> {escape(category_label(ctx.t, request.category))}"
            f" — {status} ({format_time(request.created_at, ctx.zone)[:10]})"
        )
        if request.reopen_count:
            line += " · " + ctx._("🔁 Reopened {count} time(s)", count=request.reopen_count)
        if request.reporter_account_id != ctx.account.id:
            reporter = await ctx.session.get(Account, request.reporter_account_id)
            line += " · " + ctx._(
                "filed for you by {name}",
                name=escape((reporter.display_name if reporter else "") or "?"),
            )
        lines.append(line)
        buttons.append(
            [
                Button(
                    f"{request.reference} · {category_label(ctx.t, request.category)}",
                    data=f"{VIEW_PREFIX}:{request.id}",
                )
            ]
        )
    if len(page) > PAGE:
        buttons.append([Button(ctx._("More ▶"), data=f"{MENU_PREFIX}:mine:{offset + PAGE}")])
    buttons.append([Button(ctx._("🏠 Menu"), data=f"{MENU_PREFIX}:home")])
    ctx.reply("\n".join(lines), buttons)


async def describe_event(session: AsyncSession, t: Translator, event: RequestEvent) -> str:
    actor = await session.get(Staff, event.actor_staff_id) if event.actor_staff_id else None
    assignee = (
        await session.get(Staff, event.assignee_staff_id) if event.assignee_staff_id else None
    )
    label = t._(
        EVENT_LABELS.get(event.action, event.action),
        actor=escape(actor.name if actor else ""),
        assignee=escape(staff_label(t, assignee)),
    )
    notes: list[str] = []
    for part in (event.note or "").split("\n"):
        if part.startswith("skip:"):
            for skip in part.split(";"):
                _, level, reason = [*skip.split(":"), "", ""][:3]
                level_name = t._(LEVEL_LABELS.get(level, level))
                notes.append(
                    t._("no one reachable at {level} level, passed up", level=level_name)
                    if reason == "unreachable"
                    else t._("no one at {level} level, passed up", level=level_name)
                )
        elif part == "nobody":
            notes.append(t._("no one could be reached at any level"))
        elif part in NOTE_LABELS:
            notes.append(t._(NOTE_LABELS[part]))
        elif part and event.action != "resolve":
            notes.append(escape(part))
    if event.media_kind == "voice" and event.media_file_id:
        notes.append(t._("🎤 a voice message"))
    if notes:
        label += " — " + "; ".join(notes)
    return label


async def show_timeline(ctx: Context, request: Request) -> None:
    assert request.id is not None
    text = await request_summary(ctx.session, ctx.t, ctx.zone, request, full_phone=True)
    lines = [text, "", ctx._("<b>Timeline</b>")]
    events = [
        e for e in await timeline(ctx.session, request.id) if e.action not in STAFF_ONLY_EVENTS
    ]
    for event in events:
        lines.append(
            f"{format_time(event.at, ctx.zone)} · {await describe_event(ctx.session, ctx.t, event)}"
        )
    buttons: list[list[Button]] = voice_rows(ctx.t, ctx.zone, list(events))
    if waiting_for_verdict(request) and request.verdict_asked_at is not None:
        buttons.extend(list(row) for row in solved_buttons(ctx.t, RATE_PREFIX, request.id))
    elif may_reopen_from_list(request, ctx.now):
        buttons.append([Button(ctx._("🔁 Reopen"), data=f"{RATE_PREFIX}:o:{request.id}")])
    buttons.append(
        [
            Button(ctx._("📋 My requests"), data=f"{MENU_PREFIX}:mine"),
            Button(ctx._("🏠 Menu"), data=f"{MENU_PREFIX}:home"),
        ]
    )
    ctx.reply("\n".join(lines), buttons)


@router.button(VIEW_PREFIX)
async def view_request(ctx: Context) -> None:
    _, _, raw_id = ctx.inbound.button_data.partition(":")
    request_id = parse_id(raw_id)
    request = await request_with_people(ctx.session, request_id)
    if request is None:
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    if await is_resident_of(ctx.session, request, ctx.account):
        await show_timeline(ctx, request)
    elif ctx.staff is not None and request.assignee_staff_id == ctx.staff.id:
        await send_task_card(
            ctx.session, ctx.zone, request, ctx.staff, ctx.now, lead=lambda t: t._("Task")
        )
    else:
        ctx.answer(ctx._("This request is not available."), alert=True)
