"""The claims' confirmation sweep: a volunteer's reported work that the holder has not
confirmed within HUIYIN_CLAIM_CONFIRM_HOURS counts as done — the claim ends as confirmed and the
need is resolved with the volunteer's line (handlers.claimed_work.confirm), so the resident is
asked for the verdict as usual.

Ticked by the worker with the injected clock. It reads due claims (`state = 'done' AND
next_due_at <= now`) in bounded batches in id order, each batch after the last id handled, and
handles each in its own transaction, claimed by its primary key as the deadline sweep does
(schedules/sweep.py): FOR UPDATE SKIP LOCKED on PostgreSQL, the write lock first on SQLite, then
read again, so two workers or a holder's tap at the same moment confirm it exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claims import ClaimState, due_claim_ids, end, lock_due_claim
from domain.clock import Clock
from domain.deadlines import Policy
from domain.lifecycle import Status
from handlers.base import escape
from handlers.cards import staff_translator, tell_staff
from handlers.claimed_work import claimant_name, confirm
from storage.database import Database
from storage.models import Request, Staff

log = logging.getLogger(__name__)

OPEN = (Status.ASSIGNED.value, Status.IN_PROGRESS.value)


@dataclass
class ConfirmReport:
    confirmed: list[int] = field(default_factory=list)  # claim ids
    closed: list[int] = field(default_factory=list)  # the need had ended otherwise
    failed: int = 0


async def confirm_due(db: Database, clock: Clock, zone: ZoneInfo, policy: Policy) -> ConfirmReport:
    now = clock.now()
    report = ConfirmReport()
    sqlite = db.url.startswith("sqlite")
    async for claim_id in due_claim_ids(db, ClaimState.DONE, now):
        try:
            async with db.transaction() as session:
                await handle(session, claim_id, now, zone, policy, report, sqlite=sqlite)
        except Exception:
            report.failed += 1
            log.exception("claim confirm: claim %s failed; the next tick tries again", claim_id)
    return report


async def handle(
    session: AsyncSession,
    claim_id: int,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    report: ConfirmReport,
    *,
    sqlite: bool,
) -> None:
    claim = await lock_due_claim(session, claim_id, ClaimState.DONE, now, sqlite=sqlite)
    if claim is None:
        return  # another worker, or the holder's tap, settled it
    request = await session.get(Request, claim.request_id, with_for_update=True)
    holder = (
        await session.get(Staff, request.assignee_staff_id)
        if request is not None and request.assignee_staff_id
        else None
    )
    if request is None or holder is None or request.status not in OPEN:
        end(claim, request, ClaimState.CLOSED, now)
        session.add(claim)
        if request is not None:
            session.add(request)
        report.closed.append(claim_id)
        return
    await confirm(session, zone, policy, claim, request, holder, now, auto=True)
    # The name in the holder's language (a unit's English name).
    name = await claimant_name(session, await staff_translator(session, holder), claim)
    await tell_staff(
        session,
        holder,
        now,
        lambda t: t._(
            "✅ {ref}: the work {who} reported was not confirmed in time, so it counts as done; "
            "the need is resolved and the resident asked for their verdict.",
            ref=request.reference,
            who=escape(name),
        ),
        request=request,
    )
    report.confirmed.append(claim_id)
