"""The place picker: town → community/village → grid, with buttons, reused by several flows.

    ┌──────────┐ tap town ┌───────────────┐ tap community ┌──────────┐ tap grid
    │  towns   ├─────────►│  communities  ├──────────────►│  grids   ├─────────► flow's `done`
    └──────────┘◄─ back ──┴───────────────┘◄──── back ────┴──────────┘

A flow registers the picker as its step "pick" with `picker_step(done)`; `done(ctx, grid_code)`
is called with a grid that really is a child of the unit shown, so a forged code gets nowhere.
"""

from __future__ import annotations

from sqlmodel import col, select

from domain.labels import unit_label
from domain.messages import Button
from handlers.base import ChoiceHandler, Context, Step, escape
from storage.models import Unit

PICKABLE_LEVELS = ("town", "community", "grid")
PICK_STEP = "pick"


async def children(ctx: Context, parent_code: str | None) -> list[Unit]:
    if parent_code is None:
        root = (
            await ctx.session.exec(select(Unit).where(Unit.level == "district").order_by(Unit.code))
        ).first()
        if root is None:
            return []
        parent_code = root.code
    rows = await ctx.session.exec(
        select(Unit)
        .where(Unit.parent_code == parent_code)
        .where(col(Unit.level).in_(PICKABLE_LEVELS))
        .order_by(Unit.code)
    )
    return list(rows.all())


async def show_picker(ctx: Context, flow: str, parent_code: str | None = None) -> None:
    ctx.go(flow, PICK_STEP, pick_parent=parent_code)
    await render_picker(ctx)


async def render_picker(ctx: Context) -> None:
    parent_code = ctx.data.get("pick_parent")
    units = await children(ctx, parent_code)
    if not units:
        ctx.reply(ctx._("No places have been set up yet. Please ask your community office."))
        return
    parent = await ctx.session.get(Unit, parent_code) if parent_code else None
    if parent is None:
        prompt = ctx._("Choose the street or town:")
    elif parent.level == "town":
        prompt = ctx._(
            "{place}: choose your community or village:", place=escape(unit_label(ctx.t, parent))
        )
    else:
        prompt = ctx._("{place}: choose your grid:", place=escape(unit_label(ctx.t, parent)))
    labels = [ctx.choice(unit_label(ctx.t, u), u.code) for u in units]
    rows: list[list[Button]] = [labels[i : i + 2] for i in range(0, len(labels), 2)]
    navigation = [ctx.choice(ctx._("✖ Cancel"), "cancel")]
    if parent is not None:
        navigation.insert(0, ctx.choice(ctx._("◀ Back"), "back"))
    rows.append(navigation)
    ctx.reply(prompt, rows)


def picker_step(done: ChoiceHandler) -> Step:
    async def on_choice(ctx: Context, value: str) -> None:
        assert ctx.flow is not None
        parent_code = ctx.data.get("pick_parent")
        if value == "back":
            parent = await ctx.session.get(Unit, parent_code) if parent_code else None
            grandparent = parent.parent_code if parent and parent.level != "town" else None
            await show_picker(ctx, ctx.flow, grandparent)
            return
        chosen = next((u for u in await children(ctx, parent_code) if u.code == value), None)
        if chosen is None:
            ctx.answer(ctx._("That choice is no longer available. Please choose again."))
            await render_picker(ctx)
            return
        if chosen.level == "grid":
            await done(ctx, chosen.code)
        else:
            await show_picker(ctx, ctx.flow, chosen.code)

    async def on_input(ctx: Context) -> None:
        ctx.reply(ctx._("Please tap one of the buttons to choose."))
        await render_picker(ctx)

    return Step(render=render_picker, on_choice=on_choice, on_input=on_input)


async def place_path(ctx: Context, grid_code: str) -> str:
    """ "Jiangbei Street › Tianhe Community › Tianhe Grid 1" for a grid."""
    names: list[str] = []
    code: str | None = grid_code
    while code is not None:
        unit = await ctx.session.get(Unit, code)
        if unit is None or unit.level == "district":
            break
        names.append(unit_label(ctx.t, unit))
        code = unit.parent_code
    return " › ".join(reversed(names))
