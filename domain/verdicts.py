"""The resident's verdict after the work: asked, reminded, given (or recorded by staff after a
follow-up call), and what follows — the request closes, or reopens one level up.

    resolved ──(ask_after, out of quiet hours)──► asked ──(remind_after)──► reminded
       │                                          │                           │ (close_after
       │                                          │ verdict                   │  from asking)
       │         solved and (fairly) satisfied ◄──┴──► not solved / not satisfied
       │                     │                               │
       │                  closed                reopened one level up (reopen_count + 1)
       └──────────────────────────────────────────────► closed as "not rated"

The next step of a resolved request is `verdict_stage` at `verdict_due_at`, which
`refresh_next_due` copies into `next_due_at`, so the deadline sweep runs it (exactly once, as it
does reminders and escalations). A verdict is given once per round (the first answer counts);
after a reopening the next resolution starts a new round, and the earlier verdict stays in the
timeline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claim_figures import credit_verdict
from domain.deadlines import Policy, refresh_next_due, start_clocks
from domain.lifecycle import Action, Level, Status
from domain.requests import note_event, reroute_up, transition
from domain.routing import Route, route_request
from storage.models import Request, RequestEvent, Staff

SATISFIED, FAIRLY, NOT_SATISFIED = "satisfied", "fairly", "not_satisfied"
SATISFACTION: tuple[str, ...] = (SATISFIED, FAIRLY, NOT_SATISFIED)
BY_REPORTER, BY_BENEFICIARY, BY_STAFF = "reporter", "beneficiary", "staff"
ASK, REMIND, EXPIRE, DONE = "ask", "remind", "expire", "done"
# A resident may reopen a closed request from "My requests" this long after it closed.
REOPEN_WINDOW = timedelta(days=7)
WHY_REOPENED = "why:reopened"  # the resident's verdict, or a reopening from "My requests"
NOT_RATED = "verdict:not_rated"
# Timeline entries about the verdict itself (their actors did not handle the request).
AFTER_THE_WORK = (
    Action.ASK_VERDICT.value,
    Action.FOLLOW_UP.value,
    Action.VERDICT.value,
    Action.COMMENT.value,
    Action.CLOSE.value,
    Action.RATE_ASK.value,
    Action.RATE_ABOVE.value,
    Action.RATE_NOTE.value,
    Action.RATE_LAPSED.value,
)


def outside_quiet(moment: datetime, zone: ZoneInfo, policy: Policy) -> datetime:
    """`moment`, or the end of the quiet hours it falls in (residents are never asked at night)."""
    return policy.quiet_hours.release(moment, zone) or moment


def schedule_verdict(request: Request, now: datetime, zone: ZoneInfo, policy: Policy) -> None:
    """The request was resolved: a new verdict round starts, asked after `ask_after`."""
    request.verdict_stage = ASK
    request.verdict_due_at = outside_quiet(now + policy.verdict.ask_after, zone, policy)
    request.verdict_asked_at = None
    request.solved = None
    request.satisfaction = None
    request.verdict_comment = None
    request.verdict_by = None
    request.verdict_account_id = None
    request.rated_at = None
    request.followup_staff_id = None
    refresh_next_due(request)


def verdict_asked(request: Request, now: datetime, zone: ZoneInfo, policy: Policy) -> None:
    request.verdict_asked_at = now
    request.verdict_stage = REMIND
    request.verdict_due_at = outside_quiet(now + policy.verdict.remind_after, zone, policy)
    refresh_next_due(request)


def verdict_reminded(request: Request, now: datetime, policy: Policy) -> None:
    asked = request.verdict_asked_at or now
    request.verdict_stage = EXPIRE
    request.verdict_due_at = max(now, asked + policy.verdict.close_after)
    refresh_next_due(request)


def verdict_over(request: Request) -> None:
    request.verdict_stage = DONE
    request.verdict_due_at = None
    refresh_next_due(request)


def waiting_for_verdict(request: Request) -> bool:
    return request.status == Status.RESOLVED and request.rated_at is None


def needs_reopening(solved: bool, satisfaction: str) -> bool:
    return not solved or satisfaction == NOT_SATISFIED


async def handled_by(session: AsyncSession, request: Request) -> set[int]:
    """Every staff member who held or acted on the request (they cannot rate it)."""
    assert request.id is not None
    rows = await session.exec(
        select(RequestEvent.actor_staff_id, RequestEvent.assignee_staff_id)
        .where(RequestEvent.request_id == request.id)
        .where(col(RequestEvent.action).not_in(AFTER_THE_WORK))
    )
    ids = {staff_id for row in rows.all() for staff_id in row if staff_id is not None}
    if request.assignee_staff_id is not None:
        ids.add(request.assignee_staff_id)
    return ids


async def choose_follow_up(session: AsyncSession, request: Request) -> Staff | None:
    """Who makes the follow-up call (回访): a grid member of the beneficiary's grid who did not
    handle the request (or the first level above with someone who did not)."""
    route = await route_request(
        session,
        request.grid_code,
        request.category,
        start_level=Level.GRID,
        exclude_staff_ids=await handled_by(session, request),
    )
    return route.staff if route is not None else None


async def record_verdict(
    session: AsyncSession,
    request: Request,
    now: datetime,
    *,
    solved: bool,
    satisfaction: str,
    by: str,
    account_id: int | None = None,
    staff_id: int | None = None,
) -> RequestEvent:
    """Store the verdict of this round (the caller checked that none was given yet)."""
    assert satisfaction in SATISFACTION
    request.solved = solved
    request.satisfaction = satisfaction
    request.verdict_by = by
    request.verdict_account_id = account_id
    request.rated_at = now
    verdict_over(request)
    session.add(request)
    # Resolved through a claim: the verdict counts in the claimant's record, and they hear it.
    await credit_verdict(session, request, now, solved=solved, satisfaction=satisfaction)
    return note_event(
        session,
        request,
        Action.VERDICT,
        now,
        actor_account_id=account_id,
        actor_staff_id=staff_id,
        note=f"solved:{'y' if solved else 'n'}\nsatisfaction:{satisfaction}\nby:{by}",
    )


async def close_request(
    session: AsyncSession, request: Request, now: datetime, *, note: str | None = None
) -> None:
    await transition(session, request, Action.CLOSE, now, note=note)
    verdict_over(request)


async def reopen(
    session: AsyncSession,
    request: Request,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    *,
    reason: str | None,
    actor_account_id: int | None = None,
    voice_file_id: str | None = None,
) -> Route | None:
    """Back to work one level up (the community's coordinator after the grid, and so on), with
    fresh clocks; at the top, or with no one above, the same holder has it again. Returns the
    new holder's route, or None when it stayed where it was. A reason given as a voice message
    is kept on the reopening's timeline entry by its file_id."""
    request.reopen_count += 1
    request.overdue_since = None  # a new round of work, with its own deadlines
    verdict_over(request)
    route = await reroute_up(
        session,
        request,
        Action.REOPEN,
        now,
        actor_staff=None,
        reason=reason,
        why=WHY_REOPENED,
        zone=zone,
        policy=policy,
    )
    if route is None:
        await transition(
            session,
            request,
            Action.REOPEN,
            now,
            note="\n".join(n for n in (WHY_REOPENED, reason) if n),
        )
        start_clocks(request, now, zone, policy)
    event = (
        await session.exec(
            select(RequestEvent)
            .where(RequestEvent.request_id == request.id, RequestEvent.action == "reopen")
            .order_by(col(RequestEvent.id).desc())
            .limit(1)
        )
    ).first()
    if event is not None and actor_account_id is not None:
        event.actor_account_id = actor_account_id
        session.add(event)
    if event is not None and voice_file_id:
        event.media_kind = "voice"
        event.media_file_id = voice_file_id
        session.add(event)
    session.add(request)
    return route


def may_reopen_from_list(request: Request, now: datetime) -> bool:
    """A closed request can be reopened by the resident within REOPEN_WINDOW of closing."""
    return (
        request.status == Status.CLOSED
        and request.closed_at is not None
        and now - request.closed_at <= REOPEN_WINDOW
    )
