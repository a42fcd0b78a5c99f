"""Rating the level above (一定双评): the one-tap question to a lower unit that passed a need up,
once the level above has resolved it (rules in domain/upward.py).

    resolved by a higher level ──► (now, or at the end of quiet hours: the worker's tick)
        "HY000123, which you passed up, was resolved by 凤鸣镇. How did 凤鸣镇 handle it?"
        😊 Satisfied / 🙂 Fairly satisfied / 😞 Not satisfied      (`ra:<rating id>:<s|f|u>`)
    tap ──► stored, on the need's timeline ──► "a line or a voice note?" (optional; Skip)
    no tap in 7 days ──► lapsed (not rated), by the tick

The buttons are not step buttons (the rater may tap them days later); each tap is checked
against the presser (the person asked), and the first answer counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from domain.i18n import Translator
from domain.labels import category_label, unit_name
from domain.lifecycle import Action
from domain.messages import Button, Outbound
from domain.outbox import enqueue
from domain.reach import reachable_chat
from domain.requests import note_event
from domain.upward import ASKED, RATED, mark_asked, mark_unreachable, record_rating
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import staff_translator
from handlers.common import show_menu, typed_note
from handlers.verdict import SATISFACTION_CODES, SATISFACTION_LABELS
from storage.models import Request, Staff, UpwardRating

PREFIX = "ra"
FLOW = "rate_above"
VOICE = "voice"

router = Router()


def rating_buttons(t: Translator, rating_id: int) -> list[list[Button]]:
    return [
        [Button(t._(SATISFACTION_LABELS[code]), data=f"{PREFIX}:{rating_id}:{key}")]
        for key, code in SATISFACTION_CODES.items()
    ]


async def ask_rating(session: AsyncSession, rating: UpwardRating, now: datetime) -> bool:
    """Send the question to the person chosen to answer for the lower unit; False (and the row
    marked unreachable) when they can no longer be reached."""
    request = await session.get(Request, rating.request_id)
    rater = await session.get(Staff, rating.rater_staff_id) if rating.rater_staff_id else None
    chat_id = reachable_chat(rater)
    if request is None or rater is None or chat_id is None or rating.id is None:
        mark_unreachable(session, rating)
        return False
    t = await staff_translator(session, rater)
    unit = escape(await unit_name(session, t, rating.rated_unit_code))
    text = t._(
        "⭐ <b>{ref}</b> ({category}), which your unit passed up, was resolved by {unit}. "
        "How did {unit} handle it?",
        ref=request.reference,
        category=escape(category_label(t, request.category)),
        unit=unit,
    )
    if request.result_note:
        text += "\n" + t._("What was done: {note}", note=escape(request.result_note))
    enqueue(
        session,
        Outbound(
            chat_id=chat_id, text=text, buttons=tuple(map(tuple, rating_buttons(t, rating.id)))
        ),
        now,
    )
    mark_asked(session, rating, request, now)
    return True


@router.button(PREFIX)
async def on_rating_button(ctx: Context) -> None:
    parts = ctx.inbound.button_data.split(":")
    rating_id = parse_id(parts[1]) if len(parts) == 3 else None
    rating = (
        await ctx.session.get(UpwardRating, rating_id, with_for_update=True)
        if rating_id is not None
        else None
    )
    staff = ctx.staff
    if rating is None or staff is None or rating.rater_staff_id != staff.id:
        ctx.answer(ctx._("This question is not for you."), alert=True)
        return
    if rating.state == RATED:
        ctx.answer(ctx._("Thank you, this has already been answered."), alert=True)
        return
    if rating.state != ASKED:
        ctx.answer(ctx._("This question is closed: it was not answered within 7 days."), alert=True)
        return
    if parts[2] not in SATISFACTION_CODES:
        ctx.answer(ctx._("This button is no longer active."))
        return
    request = await ctx.session.get(Request, rating.request_id)
    assert request is not None
    record_rating(ctx.session, rating, request, SATISFACTION_CODES[parts[2]], ctx.now)
    ctx.answer(ctx._("Thank you!"))
    ctx.go(FLOW, "note", rating_id=rating.id, ref=request.reference)
    await render_note(ctx)


async def render_note(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "Noted on {ref}. Would you like to add a line or a voice note about how it was "
            "handled? (optional)",
            ref=ctx.data.get("ref", ""),
        ),
        [[ctx.choice(ctx._("Skip"), "skip")]],
    )


async def on_note_choice(ctx: Context, value: str) -> None:
    if value != "skip":
        ctx.answer(ctx._("This button is no longer active."))
        return
    await ctx.end_flow()
    show_menu(ctx, ctx._("Thank you!"))


async def on_note(ctx: Context) -> None:
    text = typed_note(
        ctx, ("text", "voice"), ctx._("Please type a few words or send a voice message.")
    )
    if text is None:
        return
    rating = await ctx.session.get(UpwardRating, ctx.data.get("rating_id"), with_for_update=True)
    await ctx.end_flow()
    staff = ctx.staff
    request = await ctx.session.get(Request, rating.request_id) if rating is not None else None
    if (
        rating is None
        or request is None
        or staff is None
        or rating.rater_staff_id != staff.id
        or rating.state != RATED
        or rating.comment is not None
    ):
        show_menu(ctx, ctx._("This question is not for you."))
        return
    voice = ctx.inbound.file_id if ctx.inbound.kind == VOICE and ctx.inbound.file_id else None
    rating.comment = (text or ctx._("(a voice message)"))[:1000]
    ctx.session.add(rating)
    event = note_event(
        ctx.session, request, Action.RATE_NOTE, ctx.now, actor_staff_id=staff.id, note=text or None
    )
    if voice:
        event.media_kind = VOICE
        event.media_file_id = voice
    show_menu(ctx, ctx._("Noted on the request's timeline. Thank you!"))


router.step(FLOW, "note", Step(render=render_note, on_choice=on_note_choice, on_input=on_note))
