"""Retention: what Huiyin forgets on its own, run by the worker once a day (and at start).

- Messages sent (or given up) more than `outbox_days` ago are forgotten: their outbox rows are
  deleted, in batches by primary key, except the newest sent row of each card (each chat and
  ref key), which a later edit of that card looks up; those lose their text (the row stays,
  with the id of the message Telegram shows, so a card can still be edited in place).
- Requests that ended (closed, cancelled, merged) more than `closed_days` ago lose their free
  texts: description, photo or voice, result note, comment, the reasons in the timeline. Their
  figures stay. Default three years (HUIYIN_RETENTION_CLOSED_DAYS), docs/privacy.md.

Each run is one short transaction per batch, and idempotent: running it twice, or in two
processes, changes nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.clock import Clock
from domain.privacy import anonymise_closed, prune_outbox
from storage.database import Database
from storage.outbox import forget_sent

log = logging.getLogger(__name__)

BATCH = 500
OUTBOX_BATCH = 2000  # outbox rows looked at per transaction (most of them deleted)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    pruned_messages: int
    anonymised_requests: int
    deleted_messages: int = 0


async def apply_retention(
    db: Database, clock: Clock, *, outbox_days: int, closed_days: int
) -> RetentionReport:
    now = clock.now()
    deleted = await forget_outbox(db, now - timedelta(days=outbox_days))
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
    if pruned or anonymised or deleted:
        log.info(
            "retention: %s sent message(s) deleted, %s emptied, %s ended request(s) anonymised",
            deleted,
            pruned,
            anonymised,
        )
    return RetentionReport(pruned, anonymised, deleted)


async def forget_outbox(db: Database, before: datetime, *, batch: int = OUTBOX_BATCH) -> int:
    """Delete the outbox rows sent before `before` that no card edit needs, `batch` rows looked
    at per transaction; returns how many went."""
    deleted, after = 0, 0
    while True:
        async with db.transaction() as session:
            done, last = await forget_sent(session, before, after, batch)
        deleted += done
        if last is None:
            return deleted
        after = last
