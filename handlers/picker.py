"""The place picker: town → community/village → grid, with buttons or by typing a name.

    ┌──────────┐ tap town ┌───────────────┐ tap community ┌──────────┐ tap grid
    │  towns   ├─────────►│  communities  ├──────────────►│  grids   ├─────────► flow's `done`
    └──────────┘◄─ back ──┴───────────────┘◄──── back ────┴──────────┘
      ▲ ◀ ▶ pages of 12        │ typed text: a search over every place below (domain.places);
      └────────────────────────┘ a match found is tapped like any other button

A flow registers the picker as its step "pick" with `picker_step(done)`; `done(ctx, grid_code)`
is called with a grid that really is below the unit shown, so a forged code gets nowhere.
`picker_step(done, upto="community")` stops at a community (the volunteer flow).

The picker is one message (`ref` "picker"): a page turn or "back" changes it in place; a choice
replaces its buttons with what was chosen, so no button is left that does nothing. A list of
places found by typing is a message of its own ("pickfind"), closed the same way. The page, the
unit shown and whose place is being chosen live in the conversation state (a restart keeps them).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from domain.labels import unit_label
from domain.messages import Button
from domain.places import (
    SHOWN,
    descendants,
    find_places,
    has_geometry,
    locate,
    page_count,
    page_of,
    unit_keys,
)
from handlers.base import ChoiceHandler, Context, Step, escape
from storage.models import Unit
from storage.roster_cache import unit_of

PICKABLE_LEVELS = ("town", "community", "grid")
PICK_STEP = "pick"
PICKER_REF = "picker"
FOUND_REF = "pickfind"
MAX_TYPED = 40  # longer than any place name: not a search


async def district_root(ctx: Context) -> str | None:
    root = (
        await ctx.session.exec(select(Unit).where(Unit.level == "district").order_by(Unit.code))
    ).first()
    return root.code if root is not None else None


async def children(ctx: Context, parent_code: str | None) -> list[Unit]:
    if parent_code is None:
        parent_code = await district_root(ctx)
        if parent_code is None:
            return []
    rows = await ctx.session.exec(
        select(Unit)
        .where(Unit.parent_code == parent_code)
        .where(col(Unit.level).in_(PICKABLE_LEVELS))
        .order_by(Unit.code)
    )
    return list(rows.all())


async def places(ctx: Context) -> list[Unit]:
    """Every place a picker can show, in roster order."""
    rows = await ctx.session.exec(
        select(Unit).where(col(Unit.level).in_(PICKABLE_LEVELS)).order_by(Unit.code)
    )
    return list(rows.all())


async def unit_below(ctx: Context, code: str, root: str) -> Unit | None:
    """The pickable unit `code` if it lies below `root` (a search result may be several levels
    down), else None: a forged or stale code gets nowhere."""
    unit = await unit_of(ctx.session, code) if code else None
    if unit is None or unit.level not in PICKABLE_LEVELS:
        return None
    above = unit.parent_code
    for _ in range(len(PICKABLE_LEVELS) + 1):
        if above is None:
            return None
        if above == root:
            return unit
        parent = await unit_of(ctx.session, above)
        above = parent.parent_code if parent is not None else None
    return None


async def show_picker(
    ctx: Context,
    flow: str,
    parent_code: str | None = None,
    *,
    whom: dict[str, str] | None = None,
) -> None:
    """Show the picker at `parent_code` (the towns when None). `whom` ({"relation", "name"})
    says the place is a family member's, so the prompt asks for hers or his."""
    extra: dict[str, Any] = {} if whom is None else {"pick_whom": whom}
    ctx.go(
        flow,
        PICK_STEP,
        pick_parent=parent_code,
        pick_page=0,
        pick_found="",
        pick_shown=False,
        **extra,
    )
    if parent_code is None and await roster_has_geometry(ctx):
        # A reply keyboard cannot share a message with the picker's inline buttons.
        ctx.update_data(pick_locate=True, pick_located="")
        ctx.reply(
            ctx._("📍 Or share your location, and I will find the grid for it."),
            request_location=ctx._("📍 Share my location"),
        )
    await render_picker(ctx)


async def roster_has_geometry(ctx: Context) -> bool:
    """Whether any grid has a point or an outline (else the location button is not shown)."""
    row = await ctx.session.exec(
        select(Unit.code)
        .where(Unit.level == "grid")
        .where(col(Unit.outline).is_not(None) | col(Unit.lat).is_not(None))
        .limit(1)
    )
    return row.first() is not None


async def on_location(ctx: Context) -> None:
    """A shared location at a picker step: the grid whose outline holds it, else the nearest
    grid point within the configured distance, offered for one tap."""
    lat, lon = ctx.inbound.latitude, ctx.inbound.longitude
    if lat is None or lon is None:
        ctx.reply(ctx._("Please type the name of the place, or tap one of the buttons."))
        return
    grids = [
        u
        for u in (await ctx.session.exec(select(Unit).where(Unit.level == "grid"))).all()
        if has_geometry(u)
    ]
    found = locate(sorted(grids, key=lambda u: u.code), lat, lon, ctx.place_radius_m)
    if found is None:
        km = format(ctx.place_radius_m / 1000, "g")
        ctx.reply(
            ctx._(
                "I know of no grid within {km} km of that location. Please choose with the "
                "buttons above, or type the name of your village.",
                km=km,
            )
        )
        return
    previous = ctx.data.get("pick_found")
    if previous:
        ctx.reply(previous, edit_ref=FOUND_REF)
    path = escape(await place_path(ctx, found.unit.code))
    if found.inside:
        question = ctx._("📍 That location is in <b>{place}</b>. Is this right?", place=path)
    else:
        question = ctx._(
            "📍 The nearest grid, about {metres} m away: <b>{place}</b>. Is this right?",
            metres=round(found.distance_m / 10) * 10,
            place=path,
        )
    ctx.update_data(
        pick_located=found.unit.code,
        pick_found=ctx._("Found: <b>{place}</b>", place=path),
    )
    ctx.reply(
        question,
        [[ctx.choice("✔ " + unit_label(ctx.t, found.unit), found.unit.code)]],
        ref=FOUND_REF,
    )


def _prompt(ctx: Context, parent: Unit | None) -> str:
    whom: dict[str, str] = ctx.data.get("pick_whom") or {}
    relation, name = whom.get("relation", ""), escape(whom.get("name", ""))
    place = escape(unit_label(ctx.t, parent)) if parent is not None else ""
    level = "town" if parent is None else ("community" if parent.level == "town" else "grid")
    if not whom:
        texts = {
            "town": lambda: ctx._("Choose the street or town:"),
            "community": lambda: ctx._("{place}: choose your community or village:", place=place),
            "grid": lambda: ctx._("{place}: choose your grid:", place=place),
        }
    elif relation == "mother":
        texts = {
            "town": lambda: ctx._("Choose the street or town where she lives:"),
            "community": lambda: ctx._(
                "{place}: choose the community or village where she lives:", place=place
            ),
            "grid": lambda: ctx._("{place}: choose the grid where she lives:", place=place),
        }
    elif relation == "father":
        texts = {
            "town": lambda: ctx._("Choose the street or town where he lives:"),
            "community": lambda: ctx._(
                "{place}: choose the community or village where he lives:", place=place
            ),
            "grid": lambda: ctx._("{place}: choose the grid where he lives:", place=place),
        }
    else:
        texts = {
            "town": lambda: ctx._("Choose the street or town where {name} lives:", name=name),
            "community": lambda: ctx._(
                "{place}: choose the community or village where {name} lives:",
                place=place,
                name=name,
            ),
            "grid": lambda: ctx._(
                "{place}: choose the grid where {name} lives:", place=place, name=name
            ),
        }
    return texts[level]()


async def picker_view(ctx: Context) -> tuple[str, list[list[Button]]] | None:
    """The picker's text and buttons for the unit and page in the state; None without places."""
    parent_code = ctx.data.get("pick_parent")
    units = await children(ctx, parent_code)
    if not units:
        return None
    parent = await unit_of(ctx.session, parent_code) if parent_code else None
    shown, page = page_of(units, int(ctx.data.get("pick_page") or 0))
    pages = page_count(len(units))
    lines = [_prompt(ctx, parent)]
    if pages > 1:
        lines.append(ctx._("Page {page} of {pages}", page=page + 1, pages=pages))
    example = unit_keys(shown[0])
    lines.append(
        ctx._(
            "💡 Or type a name, in characters or pinyin: e.g. “{name}” or “{initials}”.",
            name=escape(example.bare),
            initials=escape(example.initials[0][: len(example.bare)]),
        )
    )
    labels = [ctx.choice(unit_label(ctx.t, u), u.code) for u in shown]
    rows: list[list[Button]] = [labels[i : i + 2] for i in range(0, len(labels), 2)]
    turns: list[Button] = []
    if page > 0:
        turns.append(ctx.choice(ctx._("◀ Previous"), "prev"))
    if page < pages - 1:
        turns.append(ctx.choice(ctx._("Next ▶"), "next"))
    if turns:
        rows.append(turns)
    navigation = [ctx.choice(ctx._("✖ Cancel"), "cancel")]
    if parent is not None:
        navigation.insert(0, ctx.choice(ctx._("⤴ Back"), "back"))
    rows.append(navigation)
    return "\n".join(lines), rows


async def render_picker(ctx: Context, *, in_place: bool = False) -> None:
    view = await picker_view(ctx)
    if view is None:
        ctx.reply(ctx._("No places have been set up yet. Please ask your community office."))
        return
    text, rows = view
    if in_place:
        ctx.reply(text, rows, edit_ref=PICKER_REF)
        return
    if ctx.data.get("pick_shown"):
        # Shown again (after /start, a restart, a stale choice): the copy above loses its
        # buttons, so only the newest picker can be tapped.
        ctx.reply(text, edit_ref=PICKER_REF)
    ctx.reply(text, rows, ref=PICKER_REF)
    ctx.update_data(pick_shown=True)


async def close_picker(ctx: Context, chosen: Unit | None) -> None:
    """Take the buttons off the picker (and off a list of places found): what was chosen is
    shown in their place."""
    parent_code = ctx.data.get("pick_parent")
    parent = await unit_of(ctx.session, parent_code) if parent_code else None
    text = _prompt(ctx, parent)
    if chosen is not None:
        text += "\n✔ <b>" + escape(await place_path(ctx, chosen.code)) + "</b>"
    ctx.reply(text, edit_ref=PICKER_REF)
    found = ctx.data.get("pick_found")
    if found:
        ctx.reply(found, edit_ref=FOUND_REF)
    if ctx.data.get("pick_locate") and chosen is not None and chosen.level == "grid":
        # The place is chosen: the location keyboard goes too, with a message of its own (an
        # edit cannot take it away).
        ctx.update_data(pick_locate=False)
        ctx.reply(
            "✔ <b>" + escape(await place_path(ctx, chosen.code)) + "</b>", remove_keyboard=True
        )


def _with_parent(ctx: Context, unit: Unit, by_code: dict[str, Unit]) -> str:
    parent = by_code.get(unit.parent_code or "")
    label = unit_label(ctx.t, unit)
    if parent is None or parent.level == "district":
        return label
    return f"{label} · {unit_label(ctx.t, parent)}"


async def search(ctx: Context, text: str) -> None:
    """Typed text at a picker step: a search over every place below the one shown."""
    parent_code = ctx.data.get("pick_parent") or await district_root(ctx)
    if parent_code is None:
        await render_picker(ctx)
        return
    everything = await places(ctx)
    by_code = {u.code: u for u in everything}
    scope = descendants(everything, parent_code)
    found = find_places(scope, text)
    typed = escape(text)
    if not found:
        where = by_code.get(parent_code)
        if where is None:
            ctx.reply(
                ctx._(
                    "I found no place called “{text}”. Please check the name, or choose with "
                    "the buttons above.",
                    text=typed,
                )
            )
        else:
            ctx.reply(
                ctx._(
                    "I found no place called “{text}” in {place}. Please check the name, or "
                    "choose with the buttons above.",
                    text=typed,
                    place=escape(unit_label(ctx.t, where)),
                )
            )
        return
    previous = ctx.data.get("pick_found")
    if previous:
        ctx.reply(previous, edit_ref=FOUND_REF)  # the last list's buttons go
    if len(found) == 1:
        unit = found[0].unit
        path = escape(await place_path(ctx, unit.code))
        question = ctx._("Is this the place? <b>{place}</b>", place=path)
        rows = [[ctx.choice("✔ " + _with_parent(ctx, unit, by_code), unit.code)]]
        ctx.update_data(pick_found=ctx._("Found: <b>{place}</b>", place=path))
    else:
        shown = found[:SHOWN]
        if len(found) > SHOWN:
            question = ctx._(
                "{count} places match “{text}”; here are the first {shown}. Type more of the "
                "name to narrow it down.",
                count=len(found),
                text=typed,
                shown=SHOWN,
            )
        else:
            question = ctx._(
                "{count} places match “{text}”. Which one?", count=len(found), text=typed
            )
        rows = [[ctx.choice(_with_parent(ctx, f.unit, by_code), f.unit.code)] for f in shown]
        ctx.update_data(
            pick_found=ctx._("Places matching “{text}”", text=typed),
        )
    ctx.reply(question, rows, ref=FOUND_REF)


def picker_step(done: ChoiceHandler, *, upto: str = "grid") -> Step:
    """`upto` "community": a tapped community or village is the answer (the volunteer flow);
    a grid found by typing or by location still may be, and `done` then gets the grid."""

    async def on_choice(ctx: Context, value: str) -> None:
        assert ctx.flow is not None
        parent_code = ctx.data.get("pick_parent")
        if value == "back":
            parent = await unit_of(ctx.session, parent_code) if parent_code else None
            grandparent = parent.parent_code if parent and parent.level != "town" else None
            found = ctx.data.get("pick_found")
            if found:
                ctx.reply(found, edit_ref=FOUND_REF)
            ctx.go(ctx.flow, PICK_STEP, pick_parent=grandparent, pick_page=0, pick_found="")
            await render_picker(ctx, in_place=True)
            return
        if value in ("prev", "next"):
            page = int(ctx.data.get("pick_page") or 0) + (1 if value == "next" else -1)
            ctx.update_data(pick_page=max(page, 0))
            await render_picker(ctx, in_place=True)
            return
        root = parent_code or await district_root(ctx)
        chosen = await unit_below(ctx, value, root) if root else None
        if chosen is None and value and value == ctx.data.get("pick_located"):
            located = await unit_of(ctx.session, value)  # found by location: any grid
            chosen = located if located is not None and located.level == "grid" else None
        if chosen is None:
            ctx.answer(ctx._("That choice is no longer available. Please choose again."))
            await render_picker(ctx)
            return
        await close_picker(ctx, chosen)
        if chosen.level in ("grid", upto):
            await done(ctx, chosen.code)
        else:
            await show_picker(ctx, ctx.flow, chosen.code)

    async def on_input(ctx: Context) -> None:
        if ctx.inbound.kind == "location":
            await on_location(ctx)
            return
        text = ctx.inbound.text.strip()
        if ctx.inbound.kind != "text" or not text:
            ctx.reply(ctx._("Please type the name of the place, or tap one of the buttons."))
            return
        if len(text) > MAX_TYPED:
            ctx.reply(ctx._("Please type just the name of the place, such as a village's name."))
            return
        await search(ctx, text)

    return Step(render=render_picker, on_choice=on_choice, on_input=on_input)


async def place_path(ctx: Context, grid_code: str) -> str:
    """ "Jiangbei Street › Tianhe Community › Tianhe Grid 1" for a grid."""
    names: list[str] = []
    code: str | None = grid_code
    while code is not None:
        unit = await unit_of(ctx.session, code)
        if unit is None or unit.level == "district":
            break
        names.append(unit_label(ctx.t, unit))
        code = unit.parent_code
    return " › ".join(reversed(names))
