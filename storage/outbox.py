"""The outbox table's reads and the wake-up signal. Rows are written by `domain.outbox.enqueue`
and delivered by `schedules.outbox`."""

from __future__ import annotations

from sqlalchemy import or_, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.database import PENDING_OUTBOX, SENT_ROWS_ONLY, Database, HeldSession
from storage.models import OutboxMessage


def add_outbox_row(session: AsyncSession, row: OutboxMessage) -> None:
    """Add a row to the outbox in this session's transaction. A session of `Database` keeps it
    aside until a statement reads or changes the outbox, or the session commits, and then
    writes all it kept in one INSERT (storage.database.write_outbox)."""
    if not isinstance(session.sync_session, HeldSession):
        session.add(row)
        return
    session.sync_session.info.setdefault(PENDING_OUTBOX, []).append(row)


async def pending_count(session: AsyncSession) -> int:
    rows = await session.exec(select(OutboxMessage.id).where(OutboxMessage.status == "pending"))
    return len(rows.all())


async def latest_sent_message_id(session: AsyncSession, chat_id: int, ref_key: str) -> int | None:
    row = await session.exec(
        select(OutboxMessage.sent_message_id)
        .where(OutboxMessage.chat_id == chat_id, OutboxMessage.ref_key == ref_key)
        .where(OutboxMessage.status == "sent", col(OutboxMessage.sent_message_id).is_not(None))
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
        .execution_options(**{SENT_ROWS_ONLY: True})
    )
    return row.first()


async def rows_named(session: AsyncSession, chat_id: int, ref_key: str) -> list[OutboxMessage]:
    """Every row that sent or edited a message named `ref_key` in the chat, oldest first (not
    the failed ones: the user never saw those)."""
    rows = await session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.ref_key == ref_key, OutboxMessage.chat_id == chat_id)
        .where(OutboxMessage.status != "failed")
        .order_by(col(OutboxMessage.id))
    )
    return list(rows.all())


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
