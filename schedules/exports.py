"""The export jobs: ledgers asked for with /export, built and sent by the worker.

Each job is claimed in its own short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
two workers never take the same one), built from a plain read session, and finished in the
same transaction that puts the document in the outbox, so a job is answered once. A claim
older than `CLAIM_TIMEOUT` (its worker died while building) is taken over; a job that failed
`MAX_ATTEMPTS` times is finished with an apology rather than tried for ever.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import col, select

from domain.clock import Clock
from domain.i18n import translator
from domain.messages import Outbound
from domain.outbox import enqueue
from handlers.export import ledger_message
from storage.database import Database
from storage.models import ExportJob, PhoneAccess
from storage.outbox import notify_outbox

log = logging.getLogger(__name__)

CLAIM_TIMEOUT = timedelta(minutes=10)
MAX_ATTEMPTS = 3


async def run_exports(db: Database, clock: Clock, zone: ZoneInfo) -> int:
    """Build and send every export job waiting; return how many were answered."""
    answered = 0
    while (job := await claim_next(db, clock)) is not None:
        answered += await answer(db, job, clock, zone)
    return answered


async def claim_next(db: Database, clock: Clock) -> ExportJob | None:
    now = clock.now()
    async with db.transaction() as session:
        job = (
            await session.exec(
                select(ExportJob)
                .where(col(ExportJob.finished_at).is_(None))
                .where(
                    or_(
                        col(ExportJob.claimed_at).is_(None),
                        col(ExportJob.claimed_at) < now - CLAIM_TIMEOUT,
                    )
                )
                .order_by(col(ExportJob.id))
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if job is None:
            return None
        job.claimed_at = now
        job.attempts += 1
        session.add(job)
    return job


async def answer(db: Database, job: ExportJob, clock: Clock, zone: ZoneInfo) -> int:
    seen: list[PhoneAccess] = []  # the full phone numbers the ledger shows (domain.privacy)
    if job.attempts > MAX_ATTEMPTS:
        t = translator(job.language)
        message = Outbound(
            chat_id=job.chat_id,
            text=t._(
                "Sorry, the ledger could not be prepared. Please try again later, or ask the "
                "district office for it (huiyin export)."
            ),
        )
    else:
        try:
            async with db.session() as session:
                message = await ledger_message(session, job, zone, clock.now(), seen)
        except Exception:
            # Left claimed: taken over after CLAIM_TIMEOUT, until MAX_ATTEMPTS.
            log.exception("export job %s failed (attempt %s)", job.id, job.attempts)
            return 0
    async with db.transaction() as session:
        current = await session.get(ExportJob, job.id, with_for_update=True)
        if current is None or current.finished_at is not None:
            return 0  # another worker answered it after taking over a stale claim
        enqueue(session, message, clock.now())
        session.add_all(seen)
        current.finished_at = clock.now()
        session.add(current)
        await notify_outbox(session)
    return 1
