"""The outbox table's reads and the wake-up signal. Rows are written by `domain.outbox.enqueue`
and delivered by `schedules.outbox`."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import OutboxMessage


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
    )
    return row.first()


OUTBOX_CHANNEL = "huiyin_outbox"


async def notify_outbox(session: AsyncSession) -> None:
    """Wake the worker, wherever it runs: on PostgreSQL a NOTIFY, delivered at commit."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.exec(text(f"NOTIFY {OUTBOX_CHANNEL}"))  # type: ignore[call-overload]
