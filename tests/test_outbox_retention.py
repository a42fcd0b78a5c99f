"""Sent outbox rows are forgotten after the retention period (schedules/retention.py), in
batches by primary key, except what a card's edit still looks up by its ref key: the newest
sent row of each (chat, ref key). Both databases, an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select

from domain.clock import ManualClock
from domain.messages import Outbound
from domain.outbox import enqueue_edit
from schedules.retention import apply_retention, forget_outbox
from storage.database import Database
from storage.models import OutboxMessage
from storage.outbox import latest_sent_message_id, rows_named

RETAIN = {"outbox_days": 30, "closed_days": 1095}


async def add_rows(
    db: Database, when: datetime, rows: list[tuple[int, str | None, str, int | None]]
) -> list[int]:
    """(chat, ref key, status, sent message id) rows written at `when`; their ids."""
    async with db.transaction() as session:
        added = [
            OutboxMessage(
                chat_id=chat,
                payload=Outbound(chat_id=chat, text=f"message {n}").to_payload(),
                ref_key=ref,
                status=status,
                created_at=when,
                next_attempt_at=when,
                sent_at=when if status == "sent" else None,
                sent_message_id=message_id,
            )
            for n, (chat, ref, status, message_id) in enumerate(rows)
        ]
        session.add_all(added)
        await session.flush()
        return [row.id or 0 for row in added]


async def remaining(db: Database) -> list[int]:
    async with db.session() as session:
        rows = await session.exec(select(OutboxMessage.id).order_by(col(OutboxMessage.id)))
        return [row or 0 for row in rows.all()]


async def test_old_sent_rows_go_and_each_cards_newest_sent_row_stays(
    empty_db: Database, clock: ManualClock
) -> None:
    db = empty_db
    old, recent = clock.now() - timedelta(days=40), clock.now() - timedelta(days=5)
    ids = await add_rows(
        db,
        old,
        [
            (1, None, "sent", 11),  # 0: a reply: goes
            (1, "card:1:1", "sent", 12),  # 1: the card: a newer send of it follows, goes
            (1, "card:1:1", "sent", 12),  # 2: its edit: the newest sent row, stays
            (1, "card:1:1", "failed", None),  # 3: a failed edit after it: no newer sent, stays
            (2, "card:1:1", "sent", 21),  # 4: the same card in another chat: stays
            (2, None, "failed", None),  # 5: given up, no key: goes
            (3, "card:2:5", "failed", None),  # 6: not delivered, sent later (9): goes
            (1, None, "pending", None),  # 7: still to send: stays
        ],
    )
    newer = await add_rows(
        db,
        recent,
        [
            (3, None, "sent", 31),  # 8: recent: stays
            (3, "card:2:5", "sent", 32),  # 9: recent; the card's newest sent row now
        ],
    )
    before = {}
    async with db.session() as session:
        for chat, ref in ((1, "card:1:1"), (2, "card:1:1"), (3, "card:2:5")):
            before[chat, ref] = (
                await latest_sent_message_id(session, chat, ref),
                [r.sent_message_id for r in await rows_named(session, chat, ref)][-1:],
            )

    report = await apply_retention(db, clock, **RETAIN)

    # Row 3 (failed, no newer sent row) stays: only a newer *sent* row makes a keyed row
    # unneeded. Row 6 had a newer sent row of the same card (9): it goes.
    assert await remaining(db) == [ids[2], ids[3], ids[4], ids[7], *newer]
    assert report.deleted_messages == 4
    async with db.session() as session:
        for (chat, ref), (message_id, last_shown) in before.items():
            assert await latest_sent_message_id(session, chat, ref) == message_id
            shown = [r.sent_message_id for r in await rows_named(session, chat, ref)]
            assert shown[-1:] == last_shown
        kept = await session.get(OutboxMessage, ids[2])
        assert kept is not None and kept.payload["text"] == ""  # its text is forgotten too

    again = await apply_retention(db, clock, **RETAIN)
    assert again.deleted_messages == 0
    assert await remaining(db) == [ids[2], ids[3], ids[4], ids[7], *newer]


async def test_nothing_goes_before_the_retention_period(
    empty_db: Database, clock: ManualClock
) -> None:
    ids = await add_rows(empty_db, clock.now() - timedelta(days=29), [(1, None, "sent", 1)] * 3)
    assert (await apply_retention(empty_db, clock, **RETAIN)).deleted_messages == 0
    assert await remaining(empty_db) == ids


async def test_a_big_outbox_is_forgotten_batch_by_batch(
    empty_db: Database, clock: ManualClock
) -> None:
    db = empty_db
    old = clock.now() - timedelta(days=31)
    rows: list[tuple[int, str | None, str, int | None]] = []
    for chat in range(1, 8):
        for n in range(5):
            rows.append((chat, None, "sent", n))
            rows.append((chat, f"card:{chat}:1", "sent", 100 + chat))
    ids = await add_rows(db, old, rows)
    # Three rows looked at per transaction: the windows cross the cards' rows.
    deleted = await forget_outbox(db, clock.now() - timedelta(days=30), batch=3)
    assert deleted == 7 * 9
    cards = [i for i, row in zip(ids, rows, strict=True) if row[1] is not None]
    assert await remaining(db) == cards[4::5]  # each chat's newest card row


async def test_a_card_is_edited_in_place_after_its_old_rows_went(
    empty_db: Database, clock: ManualClock
) -> None:
    db = empty_db
    await add_rows(
        db,
        clock.now() - timedelta(days=60),
        [(5, "card:9:1", "sent", 77), (5, "card:9:1", "sent", 77), (5, None, "sent", 78)],
    )
    await apply_retention(db, clock, **RETAIN)
    async with db.transaction() as session:
        edit = Outbound(chat_id=5, text="Taken by Wang", edit_ref="card:9:1")
        assert await enqueue_edit(session, edit, clock.now())
    async with db.session() as session:
        assert await latest_sent_message_id(session, 5, "card:9:1") == 77
        pending = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.status == "pending"))
        ).one()
    assert pending.payload["text"] == "Taken by Wang" and pending.ref_key == "card:9:1"
