"""Request services: submit, move along the lifecycle, and record every step in the timeline.

Each function works inside the caller's transaction and writes the state change together with
its event, so the timeline can never disagree with the request.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claims import close_claim_of
from domain.deadlines import DEFAULT_POLICY, Policy, start_clocks, stop_accept_clock, stop_clocks
from domain.floods import (
    NOTE_SCREEN_CLOSED,
    NOTE_SCREEN_HELD,
    NOTE_SCREEN_PASSED,
    is_nuisance,
    screener_for,
)
from domain.lifecycle import (
    OPEN_STATUSES,
    Action,
    Level,
    Status,
    TransitionRefused,
    level_above,
    next_status,
)
from domain.routing import Route, note_open_change, route_request
from storage.models import Account, Beneficiary, Request, RequestEvent, Staff

# The zone deadlines are counted in when a caller does not say (the settings' default).
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")

# Why a request went up a level, as the first line of the event's note (codes, not prose).
WHY_ACCEPT_OVERDUE = "why:accept_overdue"  # not accepted in time
WHY_RESOLVE_OVERDUE = "why:resolve_overdue"  # not resolved in time
WHY_PASS_UP = "why:pass_up"  # the owner passed it up by hand
WHY_NOBODY_ABOVE = "why:nobody_above"  # a deadline passed and no one above could be reached
# Telegram refused the holder's task card: "why:unreachable:<blocked|deactivated|chat_not_found>"
WHY_UNREACHABLE = "why:unreachable"


def add_event(
    session: AsyncSession,
    request: Request,
    action: Action,
    at: datetime,
    *,
    from_status: str | None = None,
    from_level: str | None = None,
    actor_account_id: int | None = None,
    actor_staff_id: int | None = None,
    note: str | None = None,
) -> RequestEvent:
    assert request.id is not None
    event = RequestEvent(
        request_id=request.id,
        at=at,
        action=action.value,
        actor_account_id=actor_account_id,
        actor_staff_id=actor_staff_id,
        from_status=from_status,
        to_status=request.status,
        from_level=from_level,
        to_level=request.level,
        assignee_staff_id=request.assignee_staff_id,
        note=note,
    )
    session.add(event)
    return event


def note_event(
    session: AsyncSession,
    request: Request,
    action: Action,
    at: datetime,
    *,
    actor_account_id: int | None = None,
    actor_staff_id: int | None = None,
    note: str | None = None,
) -> RequestEvent:
    """A timeline entry for something that leaves the request's status and level as they are
    (a reminder, a question, a comment, a change of priority)."""
    return add_event(
        session,
        request,
        action,
        at,
        from_status=request.status,
        from_level=request.level,
        actor_account_id=actor_account_id,
        actor_staff_id=actor_staff_id,
        note=note,
    )


def skip_note(route: Route) -> str | None:
    """How the route climbed past empty levels, for the timeline (codes, not prose)."""
    if not route.skipped:
        return None
    return ";".join(f"skip:{s.level.value}:{s.reason}" for s in route.skipped)


async def transition(
    session: AsyncSession,
    request: Request,
    action: Action,
    now: datetime,
    *,
    actor_account_id: int | None = None,
    actor_staff_id: int | None = None,
    note: str | None = None,
    assignee: Staff | None = None,
    level: Level | None = None,
) -> RequestEvent:
    """Apply `action` if the transitions table allows it (else TransitionRefused)."""
    previous_status, previous_level = request.status, request.level
    before = (request.assignee_staff_id, request.status in OPEN_STATUSES)
    request.status = next_status(request.status, action).value
    if assignee is not None:
        request.assignee_staff_id = assignee.id
    if level is not None:
        request.level = level.value
    request.updated_at = now
    if action is Action.ACCEPT:
        request.accepted_at = now
        if request.responded_at is None:
            request.responded_at = now
        stop_accept_clock(request)
    elif action is Action.RESOLVE:
        request.resolved_at = now
        request.result_note = note
        request.resolved_due_at = request.resolve_due_at  # what it was resolved within
        stop_clocks(request)
    elif action in (Action.CLOSE, Action.CANCEL, Action.MERGE):
        request.closed_at = now
        stop_clocks(request)
    note_open_change(session, before, (request.assignee_staff_id, request.status in OPEN_STATUSES))
    if action in (Action.RESOLVE, Action.CANCEL, Action.MERGE):
        # An offer or a claim of a need that ended otherwise is closed (domain/claims.py).
        await close_claim_of(session, request, now)
    session.add(request)
    return add_event(
        session,
        request,
        action,
        now,
        from_status=previous_status,
        from_level=previous_level,
        actor_account_id=actor_account_id,
        actor_staff_id=actor_staff_id,
        note=note,
    )


async def submit_request(
    session: AsyncSession,
    *,
    reporter: Account,
    beneficiary: Beneficiary,
    kind: str,
    category: str,
    description: str,
    media_kind: str | None,
    media_file_id: str | None,
    now: datetime,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> tuple[Request, Route | None]:
    """Register a need and route it; the request is `assigned` unless nobody at all is reachable.

    Its priority follows the category (safety: urgent) and its clocks start at once. A need
    from someone marked as a nuisance is not routed: it stays `new`, with no clocks, held by
    the coordinator who screens it (domain.floods); the route returned is theirs."""
    assert reporter.id is not None and beneficiary.id is not None
    policy = policy or DEFAULT_POLICY
    request = Request(
        kind=kind,
        category=category,
        description=description,
        media_kind=media_kind,
        media_file_id=media_file_id,
        reporter_account_id=reporter.id,
        beneficiary_id=beneficiary.id,
        grid_code=beneficiary.grid_code,
        status=Status.NEW.value,
        level=Level.GRID.value,
        priority=policy.priority_for(category),
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    await session.flush()
    add_event(session, request, Action.CREATE, now, actor_account_id=reporter.id)
    if is_nuisance(reporter):
        screener = await screener_for(session, reporter, beneficiary.grid_code)
        if screener is not None:
            request.assignee_staff_id = screener.staff.id
            request.level = screener.level.value
            session.add(request)
            note_event(session, request, Action.SCREEN, now, note=NOTE_SCREEN_HELD)
            return request, screener
    route = await route_request(session, beneficiary.grid_code, category)
    if route is None:
        add_event(session, request, Action.ROUTE, now, from_status=request.status, note="nobody")
        return request, None
    await transition(
        session,
        request,
        Action.ROUTE,
        now,
        assignee=route.staff,
        level=route.level,
        note=skip_note(route),
    )
    start_clocks(request, now, zone or DEFAULT_ZONE, policy)
    return request, route


async def reroute_up(
    session: AsyncSession,
    request: Request,
    action: Action,
    now: datetime,
    *,
    actor_staff: Staff | None,
    reason: str | None,
    why: str | None = None,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> Route | None:
    """Hand the request to the next level up (decline or escalation); None if there is none.

    The new owner's clocks start now. The note records why (`why`, a WHY_ code), the reason
    given, and the levels passed over because no one there could be reached."""
    above = level_above(request.level)
    if above is None:
        return None
    # Nothing the route reads depends on this request's changes not yet written (the missed
    # deadline): they go out with the transition, in one UPDATE instead of two.
    with session.no_autoflush:
        route = await route_request(
            session,
            request.grid_code,
            request.category,
            start_level=above,
            exclude_staff_ids=[request.assignee_staff_id] if request.assignee_staff_id else (),
        )
    if route is None:
        return None
    notes = [n for n in (why, reason, skip_note(route)) if n]
    await transition(
        session,
        request,
        action,
        now,
        actor_staff_id=actor_staff.id if actor_staff else None,
        assignee=route.staff,
        level=route.level,
        note="\n".join(notes) or None,
    )
    start_clocks(request, now, zone or DEFAULT_ZONE, policy or DEFAULT_POLICY)
    return route


async def pass_up_by_hand(
    session: AsyncSession,
    request: Request,
    staff: Staff,
    reason: str,
    now: datetime,
    *,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> Route | None:
    """Claiming level by level: `staff` says this level cannot meet the need, and the level
    above has it at once. The holder passing up a request not yet accepted declines it; after
    accepting, or when someone above moves it, it is an escalation by hand. None: no one above
    can take it, and nothing changed."""
    decline = request.assignee_staff_id == staff.id and request.status == Status.ASSIGNED
    try:
        return await reroute_up(
            session,
            request,
            Action.DECLINE if decline else Action.ESCALATE,
            now,
            actor_staff=staff,
            reason=reason,
            why=None if decline else WHY_PASS_UP,
            zone=zone,
            policy=policy,
        )
    except TransitionRefused:
        return None


async def reassign(
    session: AsyncSession,
    request: Request,
    staff: Staff,
    level: Level,
    now: datetime,
    *,
    actor_staff: Staff,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> RequestEvent:
    """Give the request to `staff` (at `level`): pulled down, or moved within an area (or, for
    one that found no one reachable when it came in, routed by hand). The new owner must
    accept it, and its clocks start now."""
    event = await transition(
        session,
        request,
        Action.ROUTE if request.status == Status.NEW else Action.REASSIGN,
        now,
        actor_staff_id=actor_staff.id,
        assignee=staff,
        level=level,
    )
    start_clocks(request, now, zone or DEFAULT_ZONE, policy or DEFAULT_POLICY)
    return event


async def move_on_unreachable(
    session: AsyncSession,
    request: Request,
    holder: Staff,
    refusal: str,
    now: datetime,
    *,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> Route | None:
    """Telegram refused `holder`'s task card: the request goes to the next reachable person by
    the usual routing, at its level or above (as a level with no one reachable is skipped),
    and the timeline says why. None when no one at all can take it: it stays, noted, and
    its deadlines take it on from there."""
    why = f"{WHY_UNREACHABLE}:{refusal}"
    route = await route_request(
        session,
        request.grid_code,
        request.category,
        start_level=Level(request.level),
        exclude_staff_ids=[holder.id] if holder.id is not None else (),
    )
    if route is None:
        note_event(session, request, Action.UNDELIVERED, now, note=why)
        return None
    await transition(
        session,
        request,
        Action.REASSIGN,
        now,
        assignee=route.staff,
        level=route.level,
        note="\n".join(n for n in (why, skip_note(route)) if n),
    )
    start_clocks(request, now, zone or DEFAULT_ZONE, policy or DEFAULT_POLICY)
    return route


async def requests_of(
    session: AsyncSession, account_id: int, limit: int, offset: int = 0
) -> list[Request]:
    """A resident's requests, newest first: their own, those they filed for family, and those
    family filed for them once they opened their personal link (the entry's `account_id`)."""
    linked = select(Beneficiary.id).where(Beneficiary.account_id == account_id)
    rows = await session.exec(
        select(Request)
        .where(
            or_(
                Request.reporter_account_id == account_id,
                col(Request.beneficiary_id).in_(linked),
            )
        )
        .order_by(col(Request.created_at).desc(), col(Request.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all())


async def timeline(session: AsyncSession, request_id: int) -> list[RequestEvent]:
    rows = await session.exec(
        select(RequestEvent)
        .where(RequestEvent.request_id == request_id)
        .order_by(col(RequestEvent.at), col(RequestEvent.id))
    )
    return list(rows.all())


async def open_tasks_of(session: AsyncSession, staff_id: int) -> list[Request]:
    rows = await session.exec(
        select(Request)
        .where(Request.assignee_staff_id == staff_id)
        .where(col(Request.status).in_([Status.ASSIGNED.value, Status.IN_PROGRESS.value]))
        .order_by(col(Request.created_at), col(Request.id))
    )
    return list(rows.all())


def held_for_screening(request: Request) -> bool:
    """A need from someone marked as a nuisance, waiting for its holder to screen it."""
    return request.status == Status.NEW and request.assignee_staff_id is not None


async def pass_on_screened(
    session: AsyncSession,
    request: Request,
    screener: Staff,
    now: datetime,
    *,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
) -> Route | None:
    """The screener lets the need through: it takes the normal route, from the grid up, and
    its clocks start now. None when no one at all can be reached (it then stays with them)."""
    route = await route_request(session, request.grid_code, request.category)
    if route is None:
        return None
    notes = [n for n in (NOTE_SCREEN_PASSED, skip_note(route)) if n]
    await transition(
        session,
        request,
        Action.ROUTE,
        now,
        actor_staff_id=screener.id,
        assignee=route.staff,
        level=route.level,
        note="\n".join(notes),
    )
    start_clocks(request, now, zone or DEFAULT_ZONE, policy or DEFAULT_POLICY)
    return route


async def close_screened(
    session: AsyncSession, request: Request, screener: Staff, note: str, now: datetime
) -> RequestEvent:
    """The screener closes the need with a note. It is withdrawn rather than resolved (status
    `cancelled`), so it counts neither as received nor as resolved (docs/metrics.md)."""
    return await transition(
        session,
        request,
        Action.CANCEL,
        now,
        actor_staff_id=screener.id,
        note=f"{NOTE_SCREEN_CLOSED}\n{note}",
    )
