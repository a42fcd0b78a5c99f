"""/export: the viewer's area's ledger (需求台账) for a period, as an .xlsx file in the chat.

    /export                    this month so far
    /export today|week|month   today, this week so far, this month so far (今天/本周/本月 too)
    /export 2026-10            a calendar month

Who sees what: a community coordinator their community, a town officer their town, a district
department the district within its remit's categories, the district admin the district
(`bot.domain.areas`). The file's first sheet is the ledger, one row per request (columns in
docs/ledger.md), phone numbers masked except on the requests the viewer holds; the second
sheet the period's figures. A file over Telegram's upload limit is not sent: the viewer is
asked for a shorter period, or to have the district office run `huiyin export`.
"""

from __future__ import annotations

import io
import re

from bot.channels.types import Outbound
from bot.domain.areas import area_of
from bot.domain.ledger import Viewer, write_ledger
from bot.domain.reports import parse_period
from handlers.base import Context, Router, escape
from handlers.common import unit_name

router = Router()

# The Bot API takes files of up to 50 MB from a bot (sendDocument, multipart upload).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def file_name(unit_code: str, label: str) -> str:
    """ "huiyin-ledger-QS-JB-TH-2026-11.xlsx" (a week's label has a dash and spaces in it)."""
    safe = re.sub(r"[^0-9A-Za-z-]+", "_", label.replace(" – ", "_to_")).strip("_")
    return f"huiyin-ledger-{unit_code}-{safe}.xlsx"


@router.command("export")
async def export_command(ctx: Context) -> None:
    staff = ctx.staff
    area = await area_of(ctx.session, staff)
    if staff is None or area is None:
        ctx.reply(
            ctx._(
                "/export is for community coordinators, town officers, district departments "
                "and the district admin."
            )
        )
        return
    period = parse_period(ctx.inbound.args, ctx.now, ctx.zone)
    if period is None:
        ctx.reply(
            ctx._(
                "Usage: /export [today|week|month|YYYY-MM]. For example: /export 2026-10 "
                "(a month that has begun), or /export week."
            )
        )
        return
    place = await unit_name(ctx.session, ctx.t, area.unit_code)
    buffer = io.BytesIO()
    count = await write_ledger(
        ctx.session,
        area,
        period,
        buffer,
        t=ctx.t,
        zone=ctx.zone,
        viewer=Viewer(staff_id=staff.id),
        now=ctx.now,
    )
    if count == 0:
        ctx.reply(
            ctx._(
                "No requests were received in {area} in {period}: there is no ledger to send.",
                area=escape(place),
                period=escape(period.label),
            )
        )
        return
    data = buffer.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        ctx.reply(
            ctx._(
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
        return
    caption = ctx.t.ngettext(
        "📒 Ledger of {area}, {period}: {n} request. The second sheet has the figures.",
        "📒 Ledger of {area}, {period}: {n} requests. The second sheet has the figures.",
        count,
        area=escape(place),
        period=escape(period.label),
    )
    if area.categories is not None:
        caption += "\n" + ctx._("Only the categories in your remit are counted.")
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=caption,
            upload_kind="document",
            upload_name=file_name(area.unit_code, period.label),
            upload_bytes=data,
        )
    )
