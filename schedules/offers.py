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

from sqlalchemy import text
from sqlmodel import col, select

from domain.claims import ClaimState
from domain.clock import Clock
from domain.deadlines import Policy
from handlers.offers import widen
from storage.database import Database
from storage.models import Claim

log = logging.getLogger(__name__)

BATCH = 200


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
    after = 0
    while True:
        async with db.session() as session:
            due = list(
                (
                    await session.exec(
                        select(Claim.id)
                        .where(Claim.state == ClaimState.OFFERED.value)
                        .where(col(Claim.next_due_at) <= now)
                        .where(col(Claim.id) > after)
                        .order_by(col(Claim.id))
                        .limit(BATCH)
                    )
                ).all()
            )
        if not due:
            return report
        for claim_id in due:
            assert claim_id is not None
            after = claim_id
            try:
                async with db.transaction() as session:
                    if sqlite:
                        await session.exec(text("UPDATE claims SET id = id WHERE 0"))  # type: ignore[call-overload]
                    claim = (
                        await session.exec(
                            select(Claim)
                            .where(Claim.id == claim_id)
                            .where(Claim.state == ClaimState.OFFERED.value)
                            .where(col(Claim.next_due_at) <= now)
                            .with_for_update(skip_locked=True)
                        )
                    ).first()
                    if claim is None:
                        continue
                    report.cards += await widen(session, claim, now, zone, policy)
                    report.widened += 1
            except Exception:
                log.exception("offers: claim %s failed; the next tick tries again", claim_id)
