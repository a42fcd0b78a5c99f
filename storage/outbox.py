"""The outbox table's reads and the wake-up signal. Rows are written by `domain.outbox.enqueue`
and delivered by `schedules.outbox`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, or_, text, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.chunk_memo import chunk_memo
from storage.database import PENDING_OUTBOX, SENT_ROWS_ONLY, Database, HeldSession, NewOutboxRow
from storage.models import OutboxMessage


def add_outbox_row(session: AsyncSession, row: NewOutboxRow) -> None:
    """Add a row to the outbox in this session's transaction. A session of `Database` keeps it
    aside until a statement reads or changes the outbox, or the session commits, and then
    writes all it kept in one INSERT (storage.database.write_outbox)."""
    if not isinstance(session.sync_session, HeldSession):
        session.add(OutboxMessage(**row.values()))
        return
    session.sync_session.info.setdefault(PENDING_OUTBOX, []).append(row)
    memo = chunk_memo(session)
    if memo is not None:  # the sweep's chunk answers reads of the rows it wrote (issue 14)
        memo.add(row)


async def pending_count(session: AsyncSession) -> int:
    rows = await session.exec(select(OutboxMessage.id).where(OutboxMessage.status == "pending"))
    return len(rows.all())


async def latest_sent_message_id(session: AsyncSession, chat_id: int, ref_key: str) -> int | None:
    memo = chunk_memo(session)
    known = memo.card_rows(chat_id, ref_key) if memo is not None else None
    if known is not None:
        sent = [
            r.sent_message_id for r in known if r.status == "sent" and r.sent_message_id is not None
        ]
        return sent[-1] if sent else None
    row = await session.exec(
        select(OutboxMessage.sent_message_id)
        .where(OutboxMessage.chat_id == chat_id, OutboxMessage.ref_key == ref_key)
        .where(OutboxMessage.status == "sent", col(OutboxMessage.sent_message_id).is_not(None))
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
        .execution_options(**{SENT_ROWS_ONLY: True})
    )
    return row.first()


async def forget_sent(
    session: AsyncSession, before: datetime, after_id: int, limit: int
) -> tuple[int, int | None]:
    """One batch of the retention: the next `limit` rows after `after_id` (by primary key)
    that were written before `before` and sent or given up are deleted, except those a card's
    edit may still look up by its ref key (`latest_sent_message_id`, `rows_named`,
    `enqueue_edit`, `retire_keyboard`, the chats a claim's card went to): a row with a ref key
    stays unless a newer row of the same chat and key was sent, so the newest sent row of each
    (chat, ref key) stays, and a chat sent a card keeps a row of it. Returns how many went and
    the last id looked at (None: nothing left to look at). Two statements, bounded by the
    primary key (no parameter list)."""
    window = (
        await session.exec(
            select(OutboxMessage.id)
            .where(col(OutboxMessage.id) > after_id, OutboxMessage.status != "pending")
            .where(col(OutboxMessage.created_at) < before)
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        )
    ).all()
    if not window:
        return 0, None
    first, last = window[0], window[-1]
    assert first is not None and last is not None
    newer = aliased(OutboxMessage)
    newer_sent = (
        exists()
        .where(col(newer.chat_id) == col(OutboxMessage.chat_id))
        .where(col(newer.ref_key) == col(OutboxMessage.ref_key))
        .where(col(newer.id) > col(OutboxMessage.id), col(newer.status) == "sent")
        .where(col(newer.sent_message_id).is_not(None))
    )
    result = await session.exec(  # type: ignore[call-overload]
        delete(OutboxMessage)
        .where(col(OutboxMessage.id).between(first, last))
        .where(col(OutboxMessage.status) != "pending", col(OutboxMessage.created_at) < before)
        .where(or_(col(OutboxMessage.ref_key).is_(None), newer_sent))
    )
    return int(result.rowcount or 0), last if len(window) == limit else None


async def rows_named(
    session: AsyncSession, chat_id: int, ref_key: str
) -> list[OutboxMessage | NewOutboxRow]:
    """Every row that sent or edited a message named `ref_key` in the chat, oldest first (not
    the failed ones: the user never saw those)."""
    memo = chunk_memo(session)
    known = memo.card_rows(chat_id, ref_key) if memo is not None else None
    if known is not None:
        return [row for row in known if row.status != "failed"]
    rows = await session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.ref_key == ref_key, OutboxMessage.chat_id == chat_id)
        .where(OutboxMessage.status != "failed")
        .order_by(col(OutboxMessage.id))
    )
    return [*rows.all()]


OUTBOX_CHANNEL = "huiyin_outbox"


async def notify_outbox(session: AsyncSession) -> None:
    """Wake the worker, wherever it runs: on PostgreSQL a NOTIFY, delivered at commit."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.exec(text(f"NOTIFY {OUTBOX_CHANNEL}"))  # type: ignore[call-overload]


async def live_processes(session: AsyncSession) -> set[str]:
    """The names of the processes connected to this database now (PostgreSQL only)."""
    rows = await session.exec(
        text(  # type: ignore[call-overload]
            "SELECT DISTINCT application_name FROM pg_stat_activity "
            "WHERE datname = current_database()"
        )
    )
    return {str(name) for (name,) in rows.all() if name}


async def release_dead_claims(db: Database) -> int:
    """Release the pending rows claimed by a process of this deployment that is gone, so its
    chats need not wait for the claim timeout; return how many.

    On PostgreSQL a process is alive while it has a connection open (each names itself in
    `application_name`); on SQLite there is one process, so every claim but this process's own
    is a dead one's. A claim without a name (written before names were kept) is left to time out.
    """
    async with db.transaction() as session:
        held = col(OutboxMessage.claimed_at).is_not(None) & (OutboxMessage.status == "pending")
        if db.engine.dialect.name == "postgresql":
            alive = await live_processes(session) | {db.name}
            dead = col(OutboxMessage.claimed_by).is_not(None) & col(
                OutboxMessage.claimed_by
            ).not_in(sorted(alive))
        else:
            dead = or_(
                col(OutboxMessage.claimed_by).is_(None), col(OutboxMessage.claimed_by) != db.name
            )
        result = await session.exec(
            update(OutboxMessage).where(held).where(dead).values(claimed_at=None, claimed_by=None)  # type: ignore[call-overload]
        )
        return int(result.rowcount or 0)
