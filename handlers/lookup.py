"""Coordinator look-ups: /status, /overdue and /find, each within the viewer's area.

    /status HY000123   the request card, its timeline, and the actions the viewer may take
    /overdue           the area's open requests that missed a deadline, longest overdue first
    /find TEXT         the area's requests by reference, resident or beneficiary name, phone
                       (4 digits or more) or words of the description, newest first
    📄 (s:<id>)        the status card of a request, from any list
    ⬆ (su:<id>) ──► reason ──► the level above the request's has it at once

Who may: community coordinators, town officers, district departments and the district admin
(`domain.areas.area_of`); anyone else is told politely. Every query is filtered by
`Area.clause()` in SQL, and every button is checked again with `Area.covers` when pressed, so a
request outside the area answers exactly like one that does not exist, and a forged or stale
button shows and changes nothing.

Phone numbers are masked in lists; a status card shows the full number only when the viewer may
act on the request (`handlers.coordinator.may_reassign`, or they hold it). Lists have 10 a page;
/overdue pages carry their offset (`ov:<offset>`); /find keeps its text in the conversation
state and pages with step buttons, so the text never travels in button data.

Overdue is the one definition of docs/metrics.md (`domain.metrics.overdue_since`), so
/overdue lists exactly what /stats and the morning digest count: an open request whose round of
work missed a deadline (kept through escalations, since the resident is still waiting), a request
never accepted past its first accept deadline, or a holder's running deadline just passed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import Area, area_of
from domain.i18n import Translator
from domain.labels import (
    EVENT_LABELS,
    LEVEL_LABELS,
    NOTE_LABELS,
    STATUS_LABELS,
    category_label,
    format_time,
    mask_phone,
    staff_label,
    unit_name,
)
from domain.lifecycle import HELD_STATUSES, OPEN_STATUSES, Status, level_above
from domain.messages import Button
from domain.metrics import overdue_since
from domain.requests import timeline
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import request_summary
from handlers.common import typed_note
from handlers.coordinator import PREFIX as REASSIGN_PREFIX
from handlers.coordinator import holder, may_reassign
from handlers.my_requests import VIEW_PREFIX, describe_event
from handlers.shared import SHARE_PREFIX, may_share
from handlers.tasks import pass_up
from storage.models import Account, Beneficiary, Request, RequestEvent, Staff, parse_reference
from storage.rows import request_with_people

router = Router()
STATUS_PREFIX = "s"
PASS_UP_PREFIX = "su"
OVERDUE_PREFIX = "ov"
FIND_FLOW = "find"
PASS_UP_FLOW = "lookup_pass_up"
PAGE = 10
TIMELINE_SHOWN = 20
MIN_FIND, MAX_FIND = 2, 50
MIN_PHONE_DIGITS = 4
PHONE_NOISE = re.compile(r"[\s\-+()]")


# Who may, and what ---------------------------------------------------------------------------


async def viewer_area(ctx: Context) -> Area | None:
    return await area_of(ctx.session, ctx.staff)


def refuse(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "/status, /overdue and /find are for community coordinators, town officers, "
            "district departments and the district office."
        )
    )


async def may_act(session: AsyncSession, staff: Staff, request: Request) -> bool:
    """Whether `staff` may move the request (and so may see the full phone number)."""
    return request.assignee_staff_id == staff.id or await may_reassign(session, staff, request)


def passable(request: Request) -> bool:
    return request.status in HELD_STATUSES and level_above(request.level) is not None


async def in_area(ctx: Context, request_id: int | None, *, lock: bool = False) -> Request | None:
    """The request if it exists and lies in the viewer's area; None for anything else."""
    area = await viewer_area(ctx)
    if area is None or request_id is None:
        return None
    request = await request_with_people(ctx.session, request_id, lock=lock)
    if request is None or not area.covers(request):
        return None
    return request


# /status -------------------------------------------------------------------------------------


@router.command("status")
async def status_command(ctx: Context) -> None:
    if await viewer_area(ctx) is None:
        refuse(ctx)
        return
    reference = ctx.inbound.args.strip()
    if not reference:
        ctx.reply(ctx._("Send /status and a reference, for example /status HY000123."))
        return
    request = await in_area(ctx, parse_reference(reference))
    if request is None:
        ctx.reply(ctx._("There is no request {ref} in your area.", ref=escape(reference[:20])))
        return
    await show_status(ctx, request)


@router.button(STATUS_PREFIX)
async def on_status_button(ctx: Context) -> None:
    _, _, raw_id = ctx.inbound.button_data.partition(":")
    request = await in_area(ctx, parse_id(raw_id))
    if request is None:
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    await show_status(ctx, request)


def verdict_lines(t: Translator, request: Request) -> list[str]:
    """The resident's latest verdict (or that none came), as NOTE_LABELS words it."""
    if request.solved is not None and request.satisfaction is not None:
        parts = [
            t._(NOTE_LABELS[f"solved:{'y' if request.solved else 'n'}"]),
            t._(NOTE_LABELS.get(f"satisfaction:{request.satisfaction}", request.satisfaction)),
        ]
        if request.verdict_by:
            parts.append(t._(NOTE_LABELS.get(f"by:{request.verdict_by}", request.verdict_by)))
        lines = [t._("⭐ Verdict: {verdict}", verdict=" · ".join(parts))]
        if request.verdict_comment:
            lines.append(t._("💬 Comment: {text}", text=escape(request.verdict_comment)))
        return lines
    if request.status == Status.CLOSED and request.resolved_at is not None:
        return [t._("⭐ Verdict: {verdict}", verdict=t._(NOTE_LABELS["verdict:not_rated"]))]
    return []


async def event_line(ctx: Context, event: RequestEvent) -> str:
    """One timeline entry: when, what, and who (staff who acted are named even where the
    resident's wording of the entry leaves them out, e.g. an escalation by hand)."""
    line = await describe_event(ctx.session, ctx.t, event)
    if event.actor_staff_id and "{actor}" not in EVENT_LABELS.get(event.action, "{actor}"):
        actor = await ctx.session.get(Staff, event.actor_staff_id)
        if actor is not None:
            line += " " + ctx._("(by {name})", name=escape(actor.name))
    return f"{format_time(event.at, ctx.zone)} · {line}"


async def show_status(ctx: Context, request: Request) -> None:
    staff = ctx.staff
    assert staff is not None and request.id is not None
    actionable = await may_act(ctx.session, staff, request)
    lines = [
        await request_summary(ctx.session, ctx.t, ctx.zone, request, full_phone=actionable),
        *verdict_lines(ctx.t, request),
        "",
        ctx._("<b>Timeline</b>"),
    ]
    events = await timeline(ctx.session, request.id)
    if len(events) > TIMELINE_SHOWN:
        lines.append(
            ctx.t.ngettext(
                "({n} earlier entry not shown)",
                "({n} earlier entries not shown)",
                len(events) - TIMELINE_SHOWN,
            )
        )
    for event in events[-TIMELINE_SHOWN:]:
        lines.append(await event_line(ctx, event))
    ctx.reply("\n".join(lines), await status_buttons(ctx, staff, request))


async def status_buttons(ctx: Context, staff: Staff, request: Request) -> list[list[Button]]:
    rid = request.id
    row: list[Button] = []
    if request.status in OPEN_STATUSES and await may_reassign(ctx.session, staff, request):
        row.append(Button(ctx._("🔄 Reassign"), data=f"{REASSIGN_PREFIX}:{rid}"))
    if passable(request) and await may_act(ctx.session, staff, request):
        row.append(Button(ctx._("⬆ Pass up"), data=f"{PASS_UP_PREFIX}:{rid}"))
    rows = [row] if row else []
    if await may_share(ctx, request):
        rows.append([Button(ctx._("🤝 Mark as a shared need"), data=f"{SHARE_PREFIX}:{rid}")])
    if request.assignee_staff_id == staff.id and request.status in HELD_STATUSES:
        rows.append([Button(ctx._("Open the task"), data=f"{VIEW_PREFIX}:{rid}")])
    return rows


# Lists ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Page:
    requests: list[Request]
    total: int
    offset: int
    since: dict[int, datetime]  # /overdue: since when each request is overdue


def page_offset(raw: str) -> int | None:
    """A page offset from button data: a multiple of PAGE, or None (a forged button)."""
    offset = parse_id(raw)
    return offset if offset is not None and offset % PAGE == 0 else None


def clamp(offset: int, total: int) -> int:
    """A page that no longer exists (the list got shorter) shows the last one."""
    return min(offset, max(0, (total - 1) // PAGE * PAGE))


def span(t: Translator, delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return t._("{days} d {hours} h", days=days, hours=hours)
    if hours:
        return t._("{hours} h {minutes} min", hours=hours, minutes=minutes)
    return t._("{minutes} min", minutes=minutes)


async def list_line(ctx: Context, request: Request) -> str:
    """One request in a list: what, where it stands, for whom (phone masked), where, who has it."""
    beneficiary = await ctx.session.get(Beneficiary, request.beneficiary_id)
    owner = await holder(ctx.session, request)
    who = escape(beneficiary.name) if beneficiary else "?"
    if beneficiary is not None and beneficiary.phone:
        who += f" ☎ {escape(mask_phone(beneficiary.phone))}"
    status = ctx._(STATUS_LABELS.get(request.status, request.status))
    place = escape(await unit_name(ctx.session, ctx.t, request.grid_code))
    return (
        f"• <b>{request.reference}</b> {escape(category_label(ctx.t, request.category))}"
        f" — {status}\n"
        f"   👤 {who} · 📍 {place} · {escape(staff_label(ctx.t, owner))}"
    )


def heading(ctx: Context, title: str, page: Page) -> str:
    pages = (page.total + PAGE - 1) // PAGE
    if pages <= 1:
        return title
    return (
        title + " · " + ctx._("page {page} of {pages}", page=page.offset // PAGE + 1, pages=pages)
    )


def pager(ctx: Context, page: Page, data: Callable[[str, int], Button]) -> list[list[Button]]:
    """The ◀ / ▶ row of a list; `data(label, offset)` makes each button."""
    row: list[Button] = []
    if page.offset > 0:
        row.append(data(ctx._("◀ Previous"), page.offset - PAGE))
    if page.offset + PAGE < page.total:
        row.append(data(ctx._("Next ▶"), page.offset + PAGE))
    return [row] if row else []


# /overdue ------------------------------------------------------------------------------------


async def overdue_page(session: AsyncSession, area: Area, now: datetime, offset: int) -> Page:
    """The area's overdue requests, PAGE from `offset`, longest overdue first."""
    since = overdue_since(now)
    overdue = and_(area.clause(), since.is_not(None))
    total = (await session.exec(select(func.count()).where(overdue))).one()
    offset = clamp(offset, total)
    found = await session.exec(
        select(Request, since.label("since"))
        .where(overdue)
        .order_by(since, col(Request.id))
        .offset(offset)
        .limit(PAGE)
    )
    page = Page([], total, offset, {})
    for request, moment in found.all():
        page.requests.append(request)
        page.since[request.id or 0] = moment
    return page


@router.command("overdue")
async def overdue_command(ctx: Context) -> None:
    area = await viewer_area(ctx)
    if area is None:
        refuse(ctx)
        return
    await show_overdue(ctx, area, 0)


@router.button(OVERDUE_PREFIX)
async def on_overdue_page(ctx: Context) -> None:
    _, _, raw = ctx.inbound.button_data.partition(":")
    area = await viewer_area(ctx)
    offset = page_offset(raw)
    if area is None or offset is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    await show_overdue(ctx, area, offset)


async def show_overdue(ctx: Context, area: Area, offset: int) -> None:
    staff = ctx.staff
    assert staff is not None
    page = await overdue_page(ctx.session, area, ctx.now, offset)
    if page.total == 0:
        ctx.reply(ctx._("✅ Nothing is overdue in your area."))
        return
    title = ctx.t.ngettext(
        "<b>{n} overdue request in your area</b>, longest overdue first",
        "<b>{n} overdue requests in your area</b>, longest overdue first",
        page.total,
    )
    lines = [heading(ctx, title, page)]
    buttons: list[list[Button]] = []
    for request in page.requests:
        since = page.since[request.id or 0]
        lines.append(
            await list_line(ctx, request)
            + "\n   ⏰ "
            + ctx._(
                "overdue {span} (since {time})",
                span=span(ctx.t, ctx.now - since),
                time=format_time(since, ctx.zone),
            )
        )
        row = [Button(f"📄 {request.reference}", data=f"{STATUS_PREFIX}:{request.id}")]
        if await may_reassign(ctx.session, staff, request):
            row.append(Button(ctx._("🔄 Reassign"), data=f"{REASSIGN_PREFIX}:{request.id}"))
        if passable(request) and await may_act(ctx.session, staff, request):
            row.append(Button(ctx._("⬆ Pass up"), data=f"{PASS_UP_PREFIX}:{request.id}"))
        buttons.append(row)
    buttons.extend(pager(ctx, page, lambda label, at: Button(label, data=f"{OVERDUE_PREFIX}:{at}")))
    ctx.reply("\n".join(lines), buttons)


# /find ---------------------------------------------------------------------------------------


def like(text: str) -> str:
    """A LIKE pattern finding `text` anywhere, its own % and _ taken literally."""
    quoted = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{quoted}%"


def find_clause(text: str) -> ColumnElement[bool]:
    """Requests whose reference, resident or beneficiary name, phone or description match."""
    conditions: list[ColumnElement[bool]] = []
    plain = unicodedata.normalize("NFKC", text)  # full-width digits, as Chinese keyboards type
    reference = parse_reference(plain)
    if reference is not None:
        conditions.append(col(Request.id) == reference)
    if len(text) >= MIN_FIND:
        pattern = like(text)
        conditions.append(col(Beneficiary.name).ilike(pattern, escape="\\"))
        conditions.append(col(Account.display_name).ilike(pattern, escape="\\"))
        conditions.append(
            and_(
                *(col(Request.description).ilike(like(word), escape="\\") for word in text.split())
            )
        )
    digits = PHONE_NOISE.sub("", plain)
    if digits.isascii() and digits.isdigit() and len(digits) >= MIN_PHONE_DIGITS:
        conditions.append(col(Beneficiary.phone).like(like(digits), escape="\\"))
    return or_(false(), *conditions)


async def find_page(session: AsyncSession, area: Area, text: str, offset: int) -> Page:
    """The area's requests matching `text`, PAGE from `offset`, newest first."""
    matching = (
        select(Request)
        .join(Beneficiary, col(Beneficiary.id) == col(Request.beneficiary_id))
        .join(Account, col(Account.id) == col(Request.reporter_account_id))
        .where(area.clause(), find_clause(text))
    )
    total = (await session.exec(select(func.count()).select_from(matching.subquery()))).one()
    offset = clamp(offset, total)
    found = await session.exec(
        matching.order_by(col(Request.created_at).desc(), col(Request.id).desc())
        .offset(offset)
        .limit(PAGE)
    )
    return Page(list(found.all()), total, offset, {})


def query_problem(ctx: Context, text: str) -> str | None:
    """Why `text` cannot be searched for, or None."""
    if len(text) > MAX_FIND:
        return ctx._("Please search with at most {limit} characters.", limit=MAX_FIND)
    if len(text) < MIN_FIND and parse_reference(unicodedata.normalize("NFKC", text)) is None:
        return ctx._(
            "Please search with at least {limit} characters, or a reference.", limit=MIN_FIND
        )
    return None


@router.command("find")
async def find_command(ctx: Context) -> None:
    if await viewer_area(ctx) is None:
        refuse(ctx)
        return
    text = ctx.inbound.args.strip()
    if not text:
        ctx.reply(
            ctx._(
                "Send /find and what to look for: a reference, a name, a phone number (4 "
                "digits or more) or words from the description. For example: /find 王秀兰"
            )
        )
        return
    await search(ctx, text)


async def search(ctx: Context, text: str) -> None:
    problem = query_problem(ctx, text)
    if problem is not None:
        ctx.reply(problem)
        return
    ctx.go(FIND_FLOW, "results", query=text, offset=0)
    await render_results(ctx)


async def render_results(ctx: Context) -> None:
    area = await viewer_area(ctx)
    if area is None:
        await ctx.end_flow()
        refuse(ctx)
        return
    text = str(ctx.data.get("query", ""))
    page = await find_page(ctx.session, area, text, int(ctx.data.get("offset", 0)))
    again = ctx._("Type other words to search again, or send /cancel.")
    if page.total == 0:
        ctx.reply(
            ctx._("Nothing in your area matches “{query}”.", query=escape(text)) + "\n" + again
        )
        return
    title = ctx.t.ngettext(
        "<b>{n} request</b> in your area matches “{query}”",
        "<b>{n} requests</b> in your area match “{query}”",
        page.total,
        query=escape(text),
    )
    lines = [heading(ctx, title, page)]
    buttons: list[list[Button]] = []
    for request in page.requests:
        lines.append(await list_line(ctx, request))
        buttons.append(
            [
                Button(
                    f"📄 {request.reference} · {category_label(ctx.t, request.category)}",
                    data=f"{STATUS_PREFIX}:{request.id}",
                )
            ]
        )
    lines.append(again)
    buttons.extend(pager(ctx, page, lambda label, at: ctx.choice(label, f"p:{at}")))
    ctx.reply("\n".join(lines), buttons)


async def on_results_choice(ctx: Context, value: str) -> None:
    kind, _, raw = value.partition(":")
    offset = page_offset(raw) if kind == "p" else None
    if offset is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    ctx.go(FIND_FLOW, "results", offset=offset)
    await render_results(ctx)


async def on_results_input(ctx: Context) -> None:
    """Words typed under the results are a new search (the list stays until /cancel)."""
    if ctx.inbound.kind != "text" or not ctx.inbound.text.strip():
        ctx.reply(ctx._("Type other words to search again, or send /cancel."))
        return
    await search(ctx, ctx.inbound.text.strip())


# Pass up -------------------------------------------------------------------------------------


async def pass_up_refusal(ctx: Context, request: Request) -> str | None:
    """Why the viewer cannot pass this request up now, or None."""
    assert ctx.staff is not None
    if request.status == Status.NEW:
        return ctx._(
            "Nobody holds {ref} yet; give it to someone with /reassign {ref}.",
            ref=request.reference,
        )
    if request.status not in HELD_STATUSES:
        return ctx._("{ref} is no longer open.", ref=request.reference)
    if not await may_act(ctx.session, ctx.staff, request):
        return ctx._(
            "{ref} is at a level above yours: you can follow it, but not move it.",
            ref=request.reference,
        )
    if level_above(request.level) is None:
        return ctx._(
            "There is nobody above to pass this to; please handle it or call the district office."
        )
    return None


@router.button(PASS_UP_PREFIX)
async def on_pass_up_button(ctx: Context) -> None:
    _, _, raw = ctx.inbound.button_data.partition(":")
    request = await in_area(ctx, parse_id(raw), lock=True)
    if request is None:
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    problem = await pass_up_refusal(ctx, request)
    if problem is not None:
        ctx.answer(problem, alert=True)
        return
    ctx.go(PASS_UP_FLOW, "reason", request_id=request.id)
    await render_pass_up(ctx)


async def render_pass_up(ctx: Context) -> None:
    request = await ctx.session.get(Request, ctx.data.get("request_id"))
    above = level_above(request.level) if request is not None else None
    if request is None or above is None:
        await ctx.end_flow()
        ctx.reply(ctx._("This request is not available."))
        return
    ctx.reply(
        ctx._(
            "{ref}: why should it go up to the {level} level? It moves there at once, and "
            "the resident is told.",
            ref=request.reference,
            level=ctx._(LEVEL_LABELS[above.value]),
        ),
        [[ctx.choice(ctx._("✖ Cancel"), "cancel")]],
    )


async def on_pass_up_reason(ctx: Context) -> None:
    reason = typed_note(ctx, ("text",), ctx._("Please type a short note."))
    if reason is None:
        return
    request = await in_area(ctx, parse_id(str(ctx.data.get("request_id"))), lock=True)
    await ctx.end_flow()
    if request is None:
        ctx.reply(ctx._("This request is not available."))
        return
    # Checked again: it may have been accepted, moved or closed while the reason was typed.
    problem = await pass_up_refusal(ctx, request)
    if problem is not None:
        ctx.reply(problem + "\n" + ctx._("Nothing was changed."))
        return
    await pass_up(ctx, request, reason)


router.step(
    FIND_FLOW,
    "results",
    Step(render=render_results, on_choice=on_results_choice, on_input=on_results_input),
)
router.step(PASS_UP_FLOW, "reason", Step(render=render_pass_up, on_input=on_pass_up_reason))
