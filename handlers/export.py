"""/export: the viewer's area's ledger for a period, as an .xlsx file in the chat.

    /export                    this month so far
    /export today|week|month   today, this week so far, this month so far (or the same in Chinese)
    /export 2026-10            a calendar month

Who sees what: a community coordinator their community, a town officer their town, a district
department the district within its remit's categories, the district admin the district
(`domain.areas`). The file's first sheet is the ledger, one row per request (columns in
docs/ledger.md), phone numbers masked except on the requests the viewer holds; the second
sheet the period's figures. A file over Telegram's upload limit is not sent: the viewer is
asked for a shorter period, or to have the district office run `huiyin export`.

    /export ──► area and period checked, requests counted ──► "⏳ preparing" + an export job
    worker (schedules/exports.py) ──► workbook built ──► the document, through the outbox

A district's month takes seconds to write, so the workbook is not built while the update is
handled (every other chat would wait): the command leaves a row in `export_jobs`, and the
worker builds and sends it, once, even across a restart.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import area_of
from domain.i18n import Translator, translator
from domain.labels import unit_name
from domain.ledger import Viewer, ledger_size, write_ledger
from domain.messages import Outbound
from domain.privacy import EXPORT, full_numbers
from domain.reports import parse_period
from handlers.base import Context, Router, escape
from storage.models import ExportJob, PhoneAccess, Staff

router = Router()

# The Bot API takes files of up to 50 MB from a bot (sendDocument, multipart upload).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PERIOD_TEXT = 50  # ExportJob.period


def file_name(unit_code: str, label: str) -> str:
    """ "huiyin-ledger-QS-JB-TH-2026-11.xlsx" (a week's label has a dash and spaces in it)."""
    safe = re.sub(r"[^0-9A-Za-z-]+", "_", label.replace(" – ", "_to_")).strip("_")
    return f"huiyin-ledger-{unit_code}-{safe}.xlsx"


@router.command("export")
async def export_command(ctx: Context) -> None:
    staff = ctx.staff
    area = await area_of(ctx.session, staff)
    if staff is None or staff.id is None or area is None:
        ctx.reply(refusal(ctx.t))
        return
    period_text = ctx.inbound.args.strip()
    period = parse_period(period_text, ctx.now, ctx.zone)
    if period is None or len(period_text) > MAX_PERIOD_TEXT:
        ctx.reply(
            ctx._(
                "Usage: /export [today|week|month|YYYY-MM]. For example: /export 2026-10 "
                "(a month that has begun), or /export week."
            )
        )
        return
    place = await unit_name(ctx.session, ctx.t, area.unit_code)
    count = await ledger_size(ctx.session, area, period.start, period.end)
    if count == 0:
        ctx.reply(nothing_to_send(ctx.t, place, period.label))
        return
    waiting = await ctx.session.exec(
        select(ExportJob.id).where(
            ExportJob.staff_id == staff.id,
            ExportJob.period == period_text,
            col(ExportJob.finished_at).is_(None),
        )
    )
    if waiting.first() is not None:
        ctx.reply(ctx._("That ledger is already being prepared; it will arrive here shortly."))
        return
    ctx.session.add(
        ExportJob(
            chat_id=ctx.chat_id,
            staff_id=staff.id,
            language=ctx.t.language,
            period=period_text,
            requested_at=ctx.now,
        )
    )
    ctx.reply(
        ctx.t.ngettext(
            "⏳ Preparing the ledger of {area}, {period} ({n} request); it will arrive here "
            "shortly.",
            "⏳ Preparing the ledger of {area}, {period} ({n} requests); it will arrive here "
            "shortly.",
            count,
            area=escape(place),
            period=escape(period.label),
        )
    )


def refusal(t: Translator) -> str:
    return t._(
        "/export is for community coordinators, town officers, district departments and the "
        "district admin."
    )


def nothing_to_send(t: Translator, place: str, label: str) -> str:
    return t._(
        "No requests were received in {area} in {period}: there is no ledger to send.",
        area=escape(place),
        period=escape(label),
    )


async def ledger_message(
    session: AsyncSession,
    job: ExportJob,
    zone: ZoneInfo,
    now: datetime,
    seen: list[PhoneAccess] | None = None,
) -> Outbound:
    """What answers an export job: the workbook as a document, or why there is none. The area
    is read again now, so someone who lost their post since asking gets nothing. When the
    workbook shows full phone numbers, a record of it is added to `seen` (the caller stores it
    with the answer)."""
    t = translator(job.language)

    def text(message: str) -> Outbound:
        return Outbound(chat_id=job.chat_id, text=message)

    staff = await session.get(Staff, job.staff_id)
    area = await area_of(session, staff)
    period = parse_period(job.period, job.requested_at, zone)
    if staff is None or area is None or period is None:
        return text(refusal(t))
    place = await unit_name(session, t, area.unit_code)
    buffer = io.BytesIO()
    count = await write_ledger(
        session,
        area,
        period,
        buffer,
        t=t,
        zone=zone,
        viewer=Viewer(staff_id=staff.id),
        now=now,
    )
    if count == 0:
        return text(nothing_to_send(t, place, period.label))
    data = buffer.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        return text(
            t._(
                "The ledger of {area} for {period} ({count} requests) is {size} MB, more than "
                "the {limit} MB Telegram lets a bot send. Please ask for a shorter period, for "
                "example /export week, or ask the district office for the whole file "
                "(huiyin export).",
                area=escape(place),
                period=escape(period.label),
                count=count,
                size=round(len(data) / 1024 / 1024, 1),
                limit=MAX_UPLOAD_BYTES // 1024 // 1024,
            )
        )
    caption = t.ngettext(
        "📒 Ledger of {area}, {period}: {n} request. The second sheet has the figures.",
        "📒 Ledger of {area}, {period}: {n} requests. The second sheet has the figures.",
        count,
        area=escape(place),
        period=escape(period.label),
    )
    if area.categories is not None:
        caption += "\n" + t._("Only the categories in your remit are counted.")
    numbers = await full_numbers(session, area, period.start, period.end, staff.id)
    if numbers and seen is not None:
        seen.append(
            PhoneAccess(
                at=now,
                staff_id=staff.id,
                channel=EXPORT,
                numbers=numbers,
                detail=f"{area.unit_code} {period.label}"[:200],
            )
        )
    return Outbound(
        chat_id=job.chat_id,
        text=caption,
        upload_kind="document",
        upload_name=file_name(area.unit_code, period.label),
        upload_bytes=data,
    )
