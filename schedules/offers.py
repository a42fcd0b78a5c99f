"""The offers tick: an offer nobody claimed while it was with the community's volunteers goes
to the town's too (handlers/offers.py `widen`), once its `widen_at` has passed.

Claims due (`state = 'offered' AND next_due_at <= now`) are read by primary key in bounded
batches; each is widened in its own transaction, claimed with `FOR UPDATE SKIP LOCKED` on
PostgreSQL (and after a write on SQLite, as the other ticks do) and read again under the
claim, so an offer is widened once whatever ticks run at the same time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from domain.claims import ClaimState, due_claim_ids, lock_due_claim
from domain.clock import Clock
from domain.deadlines import Policy
from handlers.offers import widen
from storage.database import Database

log = logging.getLogger(__name__)


@dataclass
class OffersReport:
    widened: int = 0
    cards: int = 0

    @property
    def total(self) -> int:
        return self.widened


async def run_offers(
    db: Database, clock: Clock, zone: ZoneInfo, policy: Policy | None = None
) -> OffersReport:
    """Widen every offer whose time with the community has passed (the new cards keep quiet
    hours, as `policy` sets them)."""
    now = clock.now()
    report = OffersReport()
    sqlite = db.url.startswith("sqlite")
    async for claim_id in due_claim_ids(db, ClaimState.OFFERED, now):
        try:
            async with db.transaction() as session:
                claim = await lock_due_claim(
                    session, claim_id, ClaimState.OFFERED, now, sqlite=sqlite
                )
                if claim is None:
                    continue
                report.cards += await widen(session, claim, now, zone, policy)
                report.widened += 1
        except Exception:
            log.exception("offers: claim %s failed; the next tick tries again", claim_id)
    return report
