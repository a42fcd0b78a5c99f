"""What the sweep reads once for a chunk of requests it handles in one transaction (issue 14).

An escalation's helpers each ask the database a small question: the level's candidates and
their open counts (domain.routing), whether the previous owner saw the need only in a burst's
summary card, the rows of a card to edit, the message a new card replaces (handlers.cards,
storage.outbox), the reporter's other needs that make a burst. Asked per request, those were
six statements an escalation, and each flushed the last request's writes in statements of their
own. For a chunk, `prefetch` reads the answers' rows once, after the chunk's claim, and the
helpers answer from them (`chunk_memo(session)`; None outside a chunk: they ask the database).

An answer from the memo is what the database would answer at that moment in the transaction:
the rows read, plus what the chunk has written since (the outbox rows it adds are noted here
as they are added; the requests it changes are the session's objects, whose attributes are
current). What the memo does not cover (another chat's quiet hours, a ref outside the chunk,
another `now`) is asked of the database as before, which sees everything the chunk wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from storage.database import NewOutboxRow
from storage.models import OutboxMessage, Request, Staff

# A row of the outbox: read from it, or written by the chunk.
OutboxRow = OutboxMessage | NewOutboxRow

# A session's memo, under this key of `session.info`.
CHUNK_MEMO = "sweep_chunk_memo"
# The names of task cards ("card:<request>:<staff>") and burst summary cards
# ("burst:<reporter>:<staff>:<first request>"), handlers.cards.
CARD_PREFIX = "card"
BURST_PREFIX = "burst"
# Ranges of names asked in one statement: two values each, so at most 2 × this many bound.
RANGES_PER_STATEMENT = 500


@dataclass
class ChunkMemo:
    """The rows a chunk's helpers read, and what the chunk added to them."""

    now: datetime
    burst_window: timedelta | None
    request_ids: frozenset[int]
    reporter_ids: frozenset[int]
    # The status of a need waiting to be accepted (domain.lifecycle.Status.ASSIGNED; storage
    # is below the domain, so the sweep names it).
    waiting_status: str
    # The chunk's requests and, with a burst window, every need of their reporters waiting to
    # be accepted that reached its owner within the window (the candidates for a burst), by
    # reporter (which never changes) and id.
    requests: dict[int, dict[int, Request]] = field(default_factory=dict)
    # Outbox rows named after a chunk request's cards or a reporter's burst cards, by (chat,
    # name), oldest first; the rows the chunk adds are appended as they are added.
    named: dict[tuple[int, str], list[OutboxRow]] = field(default_factory=dict)
    bursts: list[OutboxRow] = field(default_factory=list)
    # domain.routing: the staff of (role, unit) and each one's open task count, kept current
    # as the chunk assigns (domain.routing.note_open_change).
    staff_at: dict[tuple[str, str | None], list[Staff]] = field(default_factory=dict)
    open_counts: dict[int, int] = field(default_factory=dict)

    # Outbox ----------------------------------------------------------------------------------

    def covers(self, ref_key: str) -> bool:
        """Whether every row named `ref_key` is known here. Rows of task cards are known with
        their payloads (the chunk only adds to them); of burst cards only that they exist
        (handlers.cards.send_burst_summary rewrites a waiting one through a read of its own)."""
        kind, _, rest = ref_key.partition(":")
        owner = rest.partition(":")[0]
        if not owner.isdigit():
            return False
        if kind == CARD_PREFIX:
            return int(owner) in self.request_ids
        if kind == BURST_PREFIX:
            return int(owner) in self.reporter_ids
        return False

    def card_rows(self, chat_id: int, ref_key: str) -> list[OutboxRow] | None:
        """The rows of a task card in the chat, oldest first; None when not known here."""
        if not ref_key.startswith(CARD_PREFIX + ":") or not self.covers(ref_key):
            return None
        return self.named.get((chat_id, ref_key), [])

    def rows_named_from(self, chat_id: int, low: str, high: str) -> Iterable[OutboxRow]:
        """Burst rows of the chat whose names are in [low, high)."""
        return (
            row
            for row in self.bursts
            if row.chat_id == chat_id and row.ref_key is not None and low <= row.ref_key < high
        )

    def add(self, row: OutboxRow) -> None:
        """A row the chunk wrote (storage.outbox.add_outbox_row)."""
        if row.ref_key is None or not self.covers(row.ref_key):
            return
        self.named.setdefault((row.chat_id, row.ref_key), []).append(row)
        if row.ref_key.startswith(BURST_PREFIX + ":"):
            self.bursts.append(row)

    # Requests --------------------------------------------------------------------------------

    def note_request(self, request: Request) -> None:
        if request.id is not None:
            self.requests.setdefault(request.reporter_account_id, {})[request.id] = request

    def burst_mates(
        self, request: Request, staff: Staff, now: datetime, window: timedelta
    ) -> list[Request] | None:
        """handlers.cards.burst_mates from the chunk's rows; None when they do not cover it."""
        if (
            now != self.now
            or window != self.burst_window
            or request.reporter_account_id not in self.reporter_ids
        ):
            return None
        since = now - window
        return sorted(
            (
                other
                for other in self.requests.get(request.reporter_account_id, {}).values()
                if other.assignee_staff_id == staff.id
                and other.status == self.waiting_status
                and other.level_assigned_at is not None
                and other.level_assigned_at >= since
                and other.id != request.id
            ),
            key=lambda other: other.id or 0,
        )


def chunk_memo(session: AsyncSession) -> ChunkMemo | None:
    """The memo of the chunk this session handles, if it handles one."""
    memo = session.info.get(CHUNK_MEMO)
    return memo if isinstance(memo, ChunkMemo) else None


def _ranges(prefixes: list[str]) -> list[Select[tuple[OutboxMessage]]]:
    """Reads of the rows whose names start with one of `prefixes` (ending in ":"), a bounded
    number of prefixes a statement: the ranges [prefix, prefix with ";", the character after
    ":") as a list of VALUES joined to the outbox, so both databases read each range from the
    ref_key index (issue 14). Written as one condition per range OR-ed together, it scanned the
    whole outbox: SQLite for an ORDER BY, PostgreSQL whenever its statistics of the table were
    older than its growth (0.6 s a chunk at 40,000 rows); built from expression objects, it also
    cost more to construct and compile than to run."""
    queries = []
    for start in range(0, len(prefixes), RANGES_PER_STATEMENT):
        part = prefixes[start : start + RANGES_PER_STATEMENT]
        wanted = ", ".join(f"(:low_{n}, :high_{n})" for n in range(len(part)))
        values = {f"low_{n}": prefix for n, prefix in enumerate(part)}
        values |= {f"high_{n}": prefix[:-1] + ";" for n, prefix in enumerate(part)}
        statement = text(
            f"WITH wanted(low, high) AS (VALUES {wanted}) SELECT outbox.* FROM wanted "
            "JOIN outbox ON outbox.ref_key >= wanted.low AND outbox.ref_key < wanted.high"
        ).bindparams(**values)
        queries.append(select(OutboxMessage).from_statement(statement))
    return queries


async def prefetch(
    session: AsyncSession,
    requests: list[Request],
    now: datetime,
    burst_window: timedelta | None,
    *,
    waiting_status: str,
) -> ChunkMemo:
    """Read, for the claimed `requests`, what their helpers ask, and keep it for the session
    (two statements: the outbox rows of their cards and their reporters' burst cards; with a
    burst window, their reporters' needs waiting to be accepted within it)."""
    memo = ChunkMemo(
        now=now,
        burst_window=burst_window,
        request_ids=frozenset(r.id for r in requests if r.id is not None),
        reporter_ids=frozenset(r.reporter_account_id for r in requests),
        waiting_status=waiting_status,
    )
    for request in requests:
        memo.note_request(request)
    prefixes = [f"{CARD_PREFIX}:{i}:" for i in sorted(memo.request_ids)]
    prefixes += [f"{BURST_PREFIX}:{i}:" for i in sorted(memo.reporter_ids)]
    found_rows: list[OutboxMessage] = []
    for query in _ranges(prefixes):
        # A FromStatement is not a SelectOfScalar: session.exec would give rows, not entities.
        found_rows.extend((await session.exec(query)).scalars().all())  # type: ignore[attr-defined]
    for row in sorted(found_rows, key=lambda row: row.id or 0):
        assert row.ref_key is not None
        memo.named.setdefault((row.chat_id, row.ref_key), []).append(row)
        if row.ref_key.startswith(BURST_PREFIX + ":"):
            memo.bursts.append(row)
    if burst_window and memo.reporter_ids:
        found = await session.exec(
            select(Request)
            .where(col(Request.reporter_account_id).in_(sorted(memo.reporter_ids)))
            .where(Request.status == waiting_status)
            .where(col(Request.level_assigned_at) >= now - burst_window)
        )
        for other in found.all():
            memo.note_request(other)
    session.info[CHUNK_MEMO] = memo
    return memo
