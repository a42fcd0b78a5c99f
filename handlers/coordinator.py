"""Reassigning: the level above pulls a request down to a named grid member, or moves it to
someone else in its area (claiming level by level works both ways).

    /reassign                 the open requests in your area, one button each
    /reassign HY000123        who in your area can take it, one button each
    /reassign HY000123 NAME   straight to that person
    tap a person ──► reassigned: the new owner gets a card and must accept; the clocks start
                     again; the previous owner and the resident are told

Who may: a community coordinator for requests in the community, a town officer in the town,
a district department for the categories in its remit, the district admin for all — for a
request at their own level or below. Buttons (`r:<request>` and `r:<request>:<staff>`) are
checked again when pressed, so a stale or forged one changes nothing.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import area_of, units_below
from domain.labels import category_label, staff_label
from domain.lifecycle import LADDER, Level, Status
from domain.messages import Button
from domain.reach import reachable_clause
from domain.requests import reassign
from domain.routing import ROLE_AT_LEVEL, units_on_ladder
from handlers.base import Context, Router, escape, parse_id
from handlers.cards import announce_new_owner
from storage.models import Request, Staff, parse_reference

router = Router()
PREFIX = "r"
LEVEL_OF_ROLE: dict[str, Level] = {role: level for level, role in ROLE_AT_LEVEL.items()}
# "new": no one was reachable when it came in; a coordinator can give it to someone.
OPEN = (Status.NEW.value, Status.ASSIGNED.value, Status.IN_PROGRESS.value)
MAX_LISTED = 20


async def holder(session: AsyncSession, request: Request) -> Staff | None:
    if request.assignee_staff_id is None:
        return None
    return await session.get(Staff, request.assignee_staff_id)


def rank(level: str | Level) -> int:
    return LADDER.index(Level(level))


async def may_reassign(session: AsyncSession, staff: Staff, request: Request) -> bool:
    """Whether `staff` is above (or at) the request's level and its area covers the request."""
    level = LEVEL_OF_ROLE.get(staff.role)
    if level is None or level is Level.GRID or rank(level) < rank(request.level):
        return False
    if level is Level.DISTRICT:
        return True
    if level is Level.DEPARTMENT:
        return request.category in staff.post_list
    chain = await units_on_ladder(session, request.grid_code)
    return chain.get(level) == staff.unit_code


async def units_under(session: AsyncSession, code: str) -> list[str]:
    """`code` and every unit below it."""
    return [code, *(unit.code for unit in await units_below(session, code))]


async def candidates(session: AsyncSession, staff: Staff, request: Request) -> list[Staff]:
    """Who `staff` may give the request to: people of its area at its level or below (itself
    included), reachable on Telegram, the request's own grid first."""
    level = LEVEL_OF_ROLE[staff.role]
    roles = [ROLE_AT_LEVEL[lv] for lv in LADDER[: rank(level) + 1]]
    query = select(Staff).where(
        col(Staff.role).in_(roles), col(Staff.active).is_(True), reachable_clause()
    )
    if level in (Level.COMMUNITY, Level.TOWN):
        query = query.where(col(Staff.unit_code).in_(await units_under(session, staff.unit_code)))
        people = list((await session.exec(query)).all())
    else:
        # A department or the district: the request's own ladder, and the departments whose
        # remit covers the category.
        chain = await units_on_ladder(session, request.grid_code)
        people = [
            s
            for s in (await session.exec(query)).all()
            if s.unit_code in chain.values()
            or (s.role == "department" and request.category in s.post_list)
        ]
    people = [p for p in people if p.id != request.assignee_staff_id]
    return sorted(
        people,
        key=lambda p: (
            p.unit_code != request.grid_code,
            rank(LEVEL_OF_ROLE[p.role]),
            p.name,
            p.id or 0,
        ),
    )


async def reassignable(session: AsyncSession, staff: Staff) -> list[Request]:
    """The open requests `staff` may reassign, the soonest due first."""
    area = await area_of(session, staff)
    if area is None:
        return []
    query = select(Request).where(col(Request.status).in_(OPEN), area.clause())
    rows = await session.exec(
        query.order_by(
            col(Request.next_due_at).is_(None), col(Request.next_due_at), col(Request.id)
        )
    )
    found: list[Request] = []
    for request in rows.all():
        if await may_reassign(session, staff, request):
            found.append(request)
            if len(found) >= MAX_LISTED:
                break
    return found


@router.command("reassign")
async def reassign_command(ctx: Context) -> None:
    staff = ctx.staff
    if staff is None or LEVEL_OF_ROLE.get(staff.role) in (None, Level.GRID):
        ctx.reply(ctx._("/reassign is for coordinators and the levels above them."))
        return
    reference, _, name = ctx.inbound.args.strip().partition(" ")
    if not reference:
        await list_requests(ctx, staff)
        return
    request_id = parse_reference(reference)
    request = await ctx.session.get(Request, request_id) if request_id else None
    if request is None or not await may_reassign(ctx.session, staff, request):
        ctx.reply(ctx._("There is no request {ref} in your area.", ref=escape(reference[:20])))
        return
    if request.status not in OPEN:
        ctx.reply(ctx._("{ref} is no longer open.", ref=request.reference))
        return
    if name.strip():
        people = await candidates(ctx.session, staff, request)
        match = [p for p in people if p.name == name.strip()]
        if len(match) != 1:
            ctx.reply(
                ctx._(
                    "No one called {name} can take {ref}. Choose below:",
                    name=escape(name.strip()[:30]),
                    ref=request.reference,
                )
            )
            await show_candidates(ctx, staff, request)
            return
        await move(ctx, staff, request, match[0])
        return
    await show_candidates(ctx, staff, request)


async def list_requests(ctx: Context, staff: Staff) -> None:
    requests = await reassignable(ctx.session, staff)
    if not requests:
        ctx.reply(ctx._("There are no open requests in your area."))
        return
    buttons = []
    for request in requests:
        owner = await holder(ctx.session, request)
        buttons.append(
            [
                Button(
                    f"{request.reference} · {category_label(ctx.t, request.category)}"
                    f" · {owner.name if owner else '—'}",
                    data=f"{PREFIX}:{request.id}",
                )
            ]
        )
    ctx.reply(ctx._("Which request do you want to reassign?"), buttons)


async def show_candidates(ctx: Context, staff: Staff, request: Request) -> None:
    people = await candidates(ctx.session, staff, request)
    owner = await holder(ctx.session, request)
    if not people:
        ctx.reply(
            ctx._("There is no one else in your area who can take {ref}.", ref=request.reference)
        )
        return
    ctx.reply(
        ctx._(
            "{ref} is with {who}. Who should have it?",
            ref=request.reference,
            who=escape(staff_label(ctx.t, owner)),
        ),
        [
            [Button(staff_label(ctx.t, person), data=f"{PREFIX}:{request.id}:{person.id}")]
            for person in people
        ],
    )


@router.button(PREFIX)
async def on_reassign_button(ctx: Context) -> None:
    parts = ctx.inbound.button_data.split(":")
    ids = [parse_id(part) for part in parts[1:]]
    staff = ctx.staff
    if staff is None or not 1 <= len(ids) <= 2 or None in ids:
        ctx.answer(ctx._("This button is no longer active."))
        return
    request = await ctx.session.get(Request, ids[0], with_for_update=True)
    if request is None or not await may_reassign(ctx.session, staff, request):
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    if request.status not in OPEN:
        ctx.answer(ctx._("{ref} is no longer open.", ref=request.reference), alert=True)
        return
    if len(ids) == 1:
        await show_candidates(ctx, staff, request)
        return
    target = next(
        (p for p in await candidates(ctx.session, staff, request) if p.id == ids[1]), None
    )
    if target is None:
        owner = await holder(ctx.session, request)
        if owner is not None and owner.id == ids[1]:
            ctx.answer(ctx._("{ref} is already with {who}.", ref=request.reference, who=owner.name))
        else:
            ctx.answer(ctx._("This button is no longer active."))
        return
    await move(ctx, staff, request, target)


async def move(ctx: Context, staff: Staff, request: Request, target: Staff) -> None:
    previous = await holder(ctx.session, request)
    policy = ctx.policy
    await reassign(
        ctx.session,
        request,
        target,
        LEVEL_OF_ROLE[target.role],
        ctx.now,
        actor_staff=staff,
        zone=ctx.zone,
        policy=policy,
    )
    ctx.answer(ctx._("Reassigned"))
    ctx.reply(
        ctx._(
            "🔄 {ref} is now with {who}.",
            ref=request.reference,
            who=escape(staff_label(ctx.t, target)),
        )
    )
    actor = staff
    await announce_new_owner(
        ctx.session,
        ctx.zone,
        request,
        previous,
        target,
        ctx.now,
        lead=lambda t: t._("📌 Given to you by {name}", name=escape(actor.name)),
        tell_previous=None
        if previous is None or previous.id == actor.id
        else lambda t: t._(
            "🔄 {ref} was given to {who} by {name}.",
            ref=request.reference,
            who=escape(staff_label(t, target)),
            name=escape(actor.name),
        ),
        policy=policy,
        moved_up=False,
    )
