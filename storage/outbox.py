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
