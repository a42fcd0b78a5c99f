"""The async engine and session factory, built by `Database(url)`; nothing at import time."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, insert, inspect, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Account, OutboxMessage
from storage.roster_cache import SESSION_KEY, RosterCache

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
POOL_SIZE = 5
# Rows ANALYZE looks at per index on SQLite: statistics close enough for the planner to pick
# the right index, in milliseconds however large the tables have grown.
SQLITE_ANALYSIS_LIMIT = 1000
MAX_OVERFLOW = 10
# A session keeps the rows it has loaded, up to this many (see `HeldSession`).
HELD_ROWS = 1000


def process_name() -> str:
    """This process, as its connections name it to PostgreSQL (`application_name`, 63 bytes at
    most): another process of the deployment can tell from `pg_stat_activity` that it is alive."""
    return f"huiyin:{socket.gethostname()}:{os.getpid()}"[:63]


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return apply


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names (None for an in-memory or URI-style database)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_private(path: Path) -> None:
    """Create the database file readable and writable by its owner only (0600), before SQLite
    opens it: it holds residents' names and phone numbers. SQLite gives its -wal and -shm files
    the database file's permissions. A file already there that others can read is narrowed."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return  # SQLite will say what is wrong with the path
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
            log.warning("%s was readable by others; it is now 0600 (owner only).", path)
    finally:
        os.close(fd)


def make_engine(
    url: str,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    *,
    pool_size: int = POOL_SIZE,
    max_overflow: int = MAX_OVERFLOW,
    name: str | None = None,
) -> AsyncEngine:
    # hide_parameters: `huiyin -v` logs each SQL statement, and an error names the statement
    # that failed; neither shows the values bound to it (names, phone numbers, free texts).
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": busy_timeout_ms / 1000}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        path = sqlite_file(url)
        if path is not None:

            def before_connect(*_args: Any) -> None:
                make_private(path)

            event.listen(engine.sync_engine, "do_connect", before_connect)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={"server_settings": {"application_name": (name or process_name())[:63]}},
    )


class HeldSession(Session):
    """A session that keeps the objects it loads until it ends, so that `session.get` of a row
    already read answers from the identity map. SQLAlchemy's identity map holds objects weakly:
    a row read, used and dropped by one helper was read again by the next (an escalation read
    the same account 6 times and the same beneficiary 5, issue 14). Sessions here are short (an
    update, a sweep's row); past HELD_ROWS objects (a long read) the rest are held weakly again."""


@event.listens_for(HeldSession, "loaded_as_persistent")
def _hold(session: Session, instance: object) -> None:
    held: list[object] = session.info.setdefault("held", [])
    if len(held) < HELD_ROWS:
        held.append(instance)


Row = TypeVar("Row")


async def held_get(session: AsyncSession, model: type[Row], ident: Any) -> Row | None:
    """`session.get(model, ident)`, answered at once when the session holds the row already
    and it is up to date: `AsyncSession.get` hands every call to SQLAlchemy's synchronous
    layer through a greenlet, even when it finds the row in the identity map, and the sweep
    asks for the same few rows about ten times an escalation (issue 14)."""
    if ident is None:
        return None
    sync = session.sync_session
    found = sync.identity_map.get(sync.identity_key(model, ident))
    if found is not None:
        state = inspect(found)
        if not state.expired and not state.deleted and not state.was_deleted:
            return found  # type: ignore[no-any-return]
    return await session.get(model, ident)


# Where a session keeps the accounts it looked up by Telegram id (handlers.cards), None for
# none; forgotten whenever an account is added, which may be one of those.
ACCOUNTS_BY_TELEGRAM = "accounts_by_telegram"


def remember_account(
    session: AsyncSession | Session, telegram_id: int, account: Account | None
) -> None:
    """Note for this session that `telegram_id`'s account is `account` (None: they have none),
    when a query read it along with something else (a staff row, the sender of an update):
    handlers.cards.account_by_telegram then asks the database no more."""
    session.info.setdefault(ACCOUNTS_BY_TELEGRAM, {})[telegram_id] = account


# Outbox rows written in a session, not yet handed to it (storage.outbox.add_outbox_row).
PENDING_OUTBOX = "pending_outbox"


@dataclass(slots=True)
class NewOutboxRow:
    """An outbox row to be written, as values: a session of `Database` writes it with a plain
    INSERT, so it needs no ORM object, and building an `OutboxMessage` cost 0.24 ms (a
    SQLModel table model sets each field through two layers of instrumentation), four times an
    escalation (issue 14). Read like an `OutboxMessage` by what reads a card's rows."""

    chat_id: int
    payload: dict[str, Any]
    ref_key: str | None
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"
    sent_message_id: int | None = None

    def values(self) -> dict[str, Any]:
        """Every column but the id, as `OutboxMessage` defaults them."""
        return {
            "chat_id": self.chat_id,
            "payload": self.payload,
            "ref_key": self.ref_key,
            "status": self.status,
            "attempts": 0,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at,
            "sent_at": None,
            "sent_message_id": self.sent_message_id,
            "last_error": None,
            "claimed_at": None,
            "claimed_by": None,
        }


def write_outbox(session: Session) -> None:
    """Write the outbox rows kept so far in one statement (an executemany of a plain INSERT:
    nobody needs their ids back, and the ORM inserts rows one by one on SQLite to learn them).
    An escalation writes four rows (a card, an edit, two notices); each was an INSERT of its
    own, flushed by the next read."""
    pending: list[NewOutboxRow] | None = session.info.get(PENDING_OUTBOX)
    if pending:
        rows = [row.values() for row in pending]
        pending.clear()
        session.connection().execute(insert(OutboxMessage.__table__), rows)  # type: ignore[attr-defined]


# An execution option for a read of the outbox that cannot see the rows this session keeps
# aside (it reads sent rows only, and those are never rows of this session): the rows need
# not be written before it, and are written with the others, in one INSERT, at commit.
SENT_ROWS_ONLY = "outbox_sent_rows_only"


@event.listens_for(HeldSession, "do_orm_execute")
def _outbox_before_its_reads(state: Any) -> None:
    """Any statement on the outbox sees the rows this session wrote."""
    if state.execution_options.get(SENT_ROWS_ONLY):
        return
    if any(mapper.class_ is OutboxMessage for mapper in state.all_mappers):
        write_outbox(state.session)


@event.listens_for(HeldSession, "before_commit")
def _outbox_at_commit(session: Session) -> None:
    write_outbox(session)


@event.listens_for(HeldSession, "after_soft_rollback")
def _outbox_rolled_back(session: Session, _previous: Any) -> None:
    session.info.pop(PENDING_OUTBOX, None)


@event.listens_for(HeldSession, "transient_to_pending")
def _new_account(session: Session, instance: object) -> None:
    if isinstance(instance, Account):
        session.info.pop(ACCOUNTS_BY_TELEGRAM, None)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


class Database:
    """One engine and its sessions. `name` is the process's name in `pg_stat_activity`
    (`process_name()` unless given: tests play several processes in one)."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        pool_size: int = POOL_SIZE,
        max_overflow: int = MAX_OVERFLOW,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.name = (name or process_name())[:63]
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.engine = make_engine(
            url, busy_timeout_ms, pool_size=pool_size, max_overflow=max_overflow, name=self.name
        )
        # The roster's units, kept in memory for this process; every session carries it.
        self.roster = RosterCache()
        self._sessions = async_sessionmaker(
            self.engine,
            class_=AsyncSession,
            sync_session_class=HeldSession,
            expire_on_commit=False,
            info={SESSION_KEY: self.roster},
        )
        # SQLite allows one writer; serialising writers in-process avoids busy errors between
        # our own tasks (the busy timeout still covers other processes).
        self.write_lock = asyncio.Lock() if url.startswith("sqlite") else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed on success and rolled back on error."""
        if self.write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self.write_lock, self._sessions() as session, session.begin():
            yield session

    async def upgrade(self, revision: str = "head") -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), revision))
        await self.analyze()

    async def analyze(self) -> None:
        """Refresh SQLite's statistics of the tables and indexes (after the migrations, which
        run at every start, and after a roster import). SQLite never gathers them by itself,
        and without them it may choose the wrong index: reading a chat's last sent card took
        61 ms instead of 0.01 ms (issue 14). PostgreSQL's autovacuum keeps its own."""
        if self.write_lock is None:
            return
        async with self.write_lock, self.engine.begin() as conn:
            await conn.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
            await conn.exec_driver_sql("ANALYZE")

    async def downgrade(self, revision: str) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), revision))

    async def dispose(self) -> None:
        await self.engine.dispose()
