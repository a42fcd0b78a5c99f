"""The rating-from-below tick: questions that waited for quiet hours to end are asked, and
questions unanswered for 7 days lapse as not rated (domain/upward.py, handlers/rate_above.py).

Each due row is handled in its own transaction, claimed with `FOR UPDATE SKIP LOCKED` on
PostgreSQL (and after a write on SQLite, as the deadline sweep does) and read again under the
claim, so a question is asked once and lapses once, whatever ticks run at the same time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import col, select

from domain.clock import Clock
from domain.deadlines import Policy
from domain.upward import ASKED, PENDING, due_ratings, lapse
from handlers.rate_above import ask_rating
from storage.database import Database
from storage.models import Request, UpwardRating

log = logging.getLogger(__name__)

BATCH = 200


@dataclass
class RatingsReport:
    asked: int = 0
    lapsed: int = 0
    unreachable: int = 0

    @property
    def total(self) -> int:
        return self.asked + self.lapsed + self.unreachable


async def run_ratings(db: Database, clock: Clock, zone: ZoneInfo, policy: Policy) -> RatingsReport:
    """Ask what is due (never in quiet hours) and lapse what went unanswered for 7 days."""
    now = clock.now()
    report = RatingsReport()
    # Nothing is asked in quiet hours (lapsing still happens).
    quiet = policy.quiet_hours.release(now, zone) is not None
    sqlite = db.url.startswith("sqlite")
    seen: set[int] = set()
    while True:
        async with db.session() as session:
            due = [i for i in await due_ratings(session, now, BATCH) if i not in seen]
        if not due:
            return report
        for rating_id in due:
            seen.add(rating_id)
            try:
                async with db.transaction() as session:
                    if sqlite:
                        await session.exec(text("UPDATE upward_ratings SET id = id WHERE 0"))  # type: ignore[call-overload]
                    rating = (
                        await session.exec(
                            select(UpwardRating)
                            .where(UpwardRating.id == rating_id)
                            .where(col(UpwardRating.due_at) <= now)
                            .with_for_update(skip_locked=True)
                        )
                    ).first()
                    if rating is None:
                        continue
                    if rating.state == ASKED:
                        request = await session.get(Request, rating.request_id)
                        if request is not None:
                            lapse(session, rating, request, now)
                            report.lapsed += 1
                    elif rating.state == PENDING and not quiet:
                        if await ask_rating(session, rating, now):
                            report.asked += 1
                        else:
                            report.unreachable += 1
            except Exception:
                log.exception("ratings: row %s failed; the next tick tries again", rating_id)
