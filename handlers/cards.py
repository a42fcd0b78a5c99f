"""Task cards for staff and notices for residents, shared by the conversations and the sweeps.

A task card is sent once per assignee with `ref = card:<request>:<staff>` and then edited in
place through the outbox whenever the request moves on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.types import Button, Outbound
from bot.domain.lifecycle import Status
from bot.i18n import Translator, translator
from handlers.base import escape
from handlers.common import (
    LEVEL_LABELS,
    STATUS_LABELS,
    category_label,
    format_time,
    kind_label,
    relation_label,
    staff_label,
    unit_label,
)
from storage.models import Account, Beneficiary, Request, Staff, Unit
from storage.outbox import enqueue

TASK_PREFIX = "t"


def card_ref(request_id: int, staff_id: int) -> str:
    return f"card:{request_id}:{staff_id}"


async def account_by_telegram(session: AsyncSession, telegram_id: int | None) -> Account | None:
    if telegram_id is None:
        return None
    return (await session.exec(select(Account).where(Account.telegram_id == telegram_id))).first()


async def staff_translator(session: AsyncSession, staff: Staff) -> Translator:
    account = await account_by_telegram(session, staff.telegram_id)
    return translator(account.language if account else "zh_CN")


async def place_of(session: AsyncSession, t: Translator, grid_code: str) -> str:
    names: list[str] = []
    code: str | None = grid_code
    while code is not None:
        unit = await session.get(Unit, code)
        if unit is None or unit.level == "district":
            break
        names.append(unit_label(t, unit))
        code = unit.parent_code
    return " › ".join(reversed(names))


async def request_summary(
    session: AsyncSession, t: Translator, zone: ZoneInfo, request: Request, *, full_phone: bool
) -> str:
    """The request as staff see it: what, for whom, where, by whom, and where it stands."""
    beneficiary = await session.get(Beneficiary, request.beneficiary_id)
    reporter = await session.get(Account, request.reporter_account_id)
    assignee = (
        await session.get(Staff, request.assignee_staff_id) if request.assignee_staff_id else None
    )
    lines = [
        f"<b>{request.reference}</b> · {escape(category_label(t, request.category))}"
        f" ({escape(kind_label(t, request.kind))})",
        t._(
            "Status: {status} · Level: {level}",
            status=t._(STATUS_LABELS.get(request.status, request.status)),
            level=t._(LEVEL_LABELS.get(request.level, request.level)),
        ),
        "📍 " + escape(await place_of(session, t, request.grid_code)),
    ]
    if beneficiary is not None:
        who = escape(beneficiary.name)
        if not beneficiary.is_self and beneficiary.relation:
            who += f" ({escape(relation_label(t, beneficiary.relation))})"
        if beneficiary.phone:
            phone = beneficiary.phone if full_phone else mask(beneficiary.phone)
            who += f" · ☎ {escape(phone)}"
        lines.append(t._("👤 For: {who}", who=who))
        if not beneficiary.is_self and reporter is not None:
            lines.append(
                t._(
                    "🙋 Reported by: {name} (family member, via Telegram)",
                    name=escape(reporter.display_name or "?"),
                )
            )
    if request.description:
        lines.append("📝 " + escape(request.description))
    if request.media_kind == "voice":
        lines.append(t._("🎤 Voice message attached above"))
    elif request.media_kind == "photo":
        lines.append(t._("🖼 Photo attached above"))
    lines.append(t._("🕒 Submitted: {time}", time=format_time(request.created_at, zone)))
    lines.append(t._("Handled by: {who}", who=escape(staff_label(t, assignee))))
    if request.reopen_count:
        lines.append(t._("🔁 Reopened {count} time(s)", count=request.reopen_count))
    if request.result_note:
        lines.append(t._("✅ Result: {note}", note=escape(request.result_note)))
    return "\n".join(lines)


def mask(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else phone


def task_buttons(t: Translator, request: Request, staff: Staff) -> list[list[Button]]:
    """The actions the assignee may take now; none for anyone else."""
    if request.assignee_staff_id != staff.id or request.id is None:
        return []
    rid = request.id
    rows: list[list[Button]] = []
    if request.status == Status.ASSIGNED:
        rows.append(
            [
                Button(t._("✅ Accept"), data=f"{TASK_PREFIX}:accept:{rid}"),
                Button(t._("↩ Not mine"), data=f"{TASK_PREFIX}:decline:{rid}"),
            ]
        )
    elif request.status == Status.IN_PROGRESS:
        rows.append([Button(t._("✔ Mark resolved"), data=f"{TASK_PREFIX}:resolve:{rid}")])
    return rows


async def task_card(
    session: AsyncSession, t: Translator, zone: ZoneInfo, request: Request, staff: Staff
) -> tuple[str, list[list[Button]]]:
    mine = request.assignee_staff_id == staff.id
    text = await request_summary(session, t, zone, request, full_phone=mine)
    if not mine:
        text = t._("This task has moved on.") + "\n\n" + text
    buttons = task_buttons(t, request, staff)
    beneficiary = await session.get(Beneficiary, request.beneficiary_id)
    if mine and beneficiary is not None and beneficiary.phone and request.id is not None:
        buttons.append([Button(t._("📞 Contact card"), data=f"{TASK_PREFIX}:phone:{request.id}")])
    return text, buttons


async def send_task_card(
    session: AsyncSession,
    zone: ZoneInfo,
    request: Request,
    staff: Staff,
    now: datetime,
    *,
    lead: Callable[[Translator], str] | None = None,
) -> None:
    """Push a new task card (and the resident's photo or voice message) to the assignee.

    `lead` writes the card's first line in the assignee's language (default "New task")."""
    if staff.telegram_id is None or request.id is None:
        return
    t = await staff_translator(session, staff)
    if request.media_kind and request.media_file_id:
        enqueue(
            session,
            Outbound(
                chat_id=staff.telegram_id,
                text=request.reference,
                media_kind=request.media_kind,
                media_file_id=request.media_file_id,
            ),
            now,
        )
    text, buttons = await task_card(session, t, zone, request, staff)
    heading = lead(t) if lead else t._("🆕 New task")
    enqueue(
        session,
        Outbound(
            chat_id=staff.telegram_id,
            text=f"<b>{heading}</b>\n{text}",
            buttons=tuple(tuple(r) for r in buttons),
            ref=card_ref(request.id, staff.id or 0),
        ),
        now,
    )


async def refresh_task_card(
    session: AsyncSession, zone: ZoneInfo, request: Request, staff: Staff, now: datetime
) -> None:
    """Edit the assignee's card in place to show the request's new state."""
    if staff.telegram_id is None or request.id is None:
        return
    t = await staff_translator(session, staff)
    text, buttons = await task_card(session, t, zone, request, staff)
    enqueue(
        session,
        Outbound(
            chat_id=staff.telegram_id,
            text=text,
            buttons=tuple(tuple(r) for r in buttons),
            edit_ref=card_ref(request.id, staff.id or 0),
        ),
        now,
    )


async def notify_reporter(
    session: AsyncSession, request: Request, now: datetime, build: Callable[[Translator], str]
) -> None:
    """Tell the reporter about their request in their own language (`build` writes the text)."""
    reporter = await session.get(Account, request.reporter_account_id)
    if reporter is None:
        return
    t = translator(reporter.language)
    text = build(t)
    enqueue(
        session,
        Outbound(
            chat_id=reporter.chat_id,
            text=text,
            buttons=((Button(t._("See the timeline"), data=f"v:{request.id}"),),),
        ),
        now,
    )
