"""Retention: what Huiyin forgets on its own, run by the worker once a day (and at start).

- Messages sent more than `outbox_days` ago lose their text (the outbox row stays, with the id
  of the message Telegram shows, so a card can still be edited in place).
- Requests that ended (closed, cancelled, merged) more than `closed_days` ago lose their free
  texts: description, photo or voice, result note, comment, the reasons in the timeline. Their
  figures stay. Default three years (HUIYIN_RETENTION_CLOSED_DAYS), docs/privacy.md.

Each run is one short transaction per batch, and idempotent: running it twice, or in two
processes, changes nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from domain.clock import Clock
from domain.privacy import anonymise_closed, prune_outbox
from storage.database import Database

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True, slots=True)
class RetentionReport:
    pruned_messages: int
    anonymised_requests: int


async def apply_retention(
    db: Database, clock: Clock, *, outbox_days: int, closed_days: int
) -> RetentionReport:
    now = clock.now()
    async with db.transaction() as session:
        pruned = await prune_outbox(session, now - timedelta(days=outbox_days))
    anonymised = 0
    while True:
        async with db.transaction() as session:
            done = await anonymise_closed(
                session, now - timedelta(days=closed_days), now, limit=BATCH
            )
        anonymised += done
        if done < BATCH:
            break
    if pruned or anonymised:
        log.info(
            "retention: %s sent message(s) emptied, %s ended request(s) anonymised",
            pruned,
            anonymised,
        )
    return RetentionReport(pruned, anonymised)
