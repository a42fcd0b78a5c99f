"""/poster [CODE]: the notice-board posters of the viewer's area as a PDF in the chat, a page per
grid with its QR code (domain.posters). Coordinators, town officers, departments and admins get
their area (or a unit inside it, by code); a grid member gets their own grid's poster.

    /poster ──► area (or CODE inside it) ──► ≤ MAX_CHAT_POSTERS grids ──► the PDF
                                         └─► more ──► "name a community: /poster CODE"
"""

from __future__ import annotations

import asyncio

from domain.areas import area_of
from domain.labels import unit_name
from domain.messages import Outbound
from domain.posters import grid_posters, posters_pdf
from handlers.base import Context, Router, escape
from storage.models import Unit

router = Router()

# A town's posters (about 200 pages) take a minute to draw: the chat sends a community's or a
# few; the district office prints the rest with `huiyin posters`.
MAX_CHAT_POSTERS = 60
MAX_CODE = 32


async def _is_within(ctx: Context, code: str, top: str) -> bool:
    unit = await ctx.session.get(Unit, code)
    while unit is not None:
        if unit.code == top:
            return True
        unit = await ctx.session.get(Unit, unit.parent_code) if unit.parent_code else None
    return False


@router.command("poster", "posters")
async def poster_command(ctx: Context) -> None:
    staff = ctx.staff
    area = await area_of(ctx.session, staff)
    if staff is None or (area is None and staff.role != "grid_member"):
        ctx.reply(
            ctx._(
                "/poster is for grid members, community coordinators, town officers and the "
                "district office."
            )
        )
        return
    if not ctx.bot_username:
        ctx.reply(ctx._("Posters need the bot's username; please ask the district office."))
        return
    top = area.unit_code if area is not None else staff.unit_code
    code = ctx.inbound.args.strip().upper()[:MAX_CODE] or top
    if not await _is_within(ctx, code, top):
        ctx.reply(
            ctx._(
                "There is no place {code} in your area. Send /poster alone for your whole area.",
                code=escape(code),
            )
        )
        return
    posters = await grid_posters(ctx.session, ctx.t, code, ctx.bot_username)
    place = await unit_name(ctx.session, ctx.t, code)
    if not posters:
        ctx.reply(ctx._("{place} has no grids yet.", place=escape(place)))
        return
    if len(posters) > MAX_CHAT_POSTERS:
        ctx.reply(
            ctx._(
                "{place} has {count} grids: too many posters for one chat message. Send "
                "/poster CODE for one community or village (the codes are in the roster), or "
                "ask the district office to print them with “huiyin posters”.",
                place=escape(place),
                count=len(posters),
            )
        )
        return
    pdf = await asyncio.to_thread(posters_pdf, posters)
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=ctx.t.ngettext(
                "🖨 The poster for {place} ({n} grid): print it on A4 for the notice board.",
                "🖨 The posters for {place} ({n} grids): print them on A4 for the notice boards.",
                len(posters),
                place=escape(place),
            ),
            upload_kind="document",
            upload_name=f"posters-{code}.pdf",
            upload_bytes=pdf,
        )
    )
