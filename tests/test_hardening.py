"""Small hardening items (issue 10, item 6): private files, logging without personal data,
one-line start-up errors."""

from __future__ import annotations

import io
import logging
import os
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.cli import configure_logging, main
from domain.clock import ManualClock
from storage.database import Database
from storage.models import Account, Beneficiary

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def test_the_sqlite_file_is_created_private(tmp_path: Path) -> None:
    """The database holds names and phone numbers: SQLite's file (and the -wal and -shm files
    it makes beside it) is created 0600; one already there that others can read is narrowed."""
    path = tmp_path / "huiyin.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    made = [tmp_path / name for name in os.listdir(tmp_path) if name.startswith("huiyin.db")]
    assert path in made
    for file in made:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file

    old = tmp_path / "old.db"
    old.write_bytes(b"")
    old.chmod(0o644)
    db = Database(f"sqlite+aiosqlite:///{old}")
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_an_in_memory_database_makes_no_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    assert os.listdir(tmp_path) == []


async def test_sql_logging_shows_no_personal_values(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """`huiyin -v` logs SQL statements, never the values bound to them (names, phones, texts),
    and an error from the database does not carry them either."""
    phone = "13812345678"
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    async with db.transaction() as session:
        account = Account(telegram_id=777001, chat_id=777001, display_name="王秀英", created_at=NOW)
        session.add(account)
        await session.flush()
        assert account.id is not None
        session.add(
            Beneficiary(
                owner_account_id=account.id,
                is_self=True,
                name="王秀英",
                grid_code="QS-JB-TH-01",
                phone=phone,
                created_at=NOW,
            )
        )
    with pytest.raises(IntegrityError) as failed:
        async with db.transaction() as session:
            session.add(Account(telegram_id=777001, chat_id=1, display_name=phone, created_at=NOW))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "INSERT INTO beneficiaries" in logged  # the statements are there
    assert phone not in logged and "王秀英" not in logged
    assert phone not in str(failed.value) and "王秀英" not in str(failed.value)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


TOKEN = "123456789:AAEabcdefghijklmnopqrstuvwxyz0123456"


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
def test_an_unreachable_bot_api_at_start_is_one_line(
    framework: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUIYIN_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("HUIYIN_TELEGRAM_API_URL", api)
    monkeypatch.setenv("HUIYIN_FRAMEWORK", framework)
    monkeypatch.setenv("HUIYIN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    assert main(["run"], clock=ManualClock(NOW)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"Cannot reach the Telegram Bot API at {api}: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("verb", [["run"], ["db", "upgrade"], ["roster", "status"]])
def test_an_unreachable_database_at_start_is_one_line(
    verb: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The password is not shown; the line says what to check."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUIYIN_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("HUIYIN_TELEGRAM_API_URL", f"http://127.0.0.1:{closed_port()}")
    url = f"postgresql+asyncpg://huiyin:secret-pw@127.0.0.1:{closed_port()}/huiyin"
    monkeypatch.setenv("HUIYIN_DATABASE_URL", url)
    assert main(verb, clock=ManualClock(NOW)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Cannot reach the database at postgresql+asyncpg://huiyin:***@127.0.0.1:")
    assert "secret-pw" not in err and "check HUIYIN_DATABASE_URL" in err


async def test_verbose_logging_keeps_personal_data_out(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`huiyin -v`: SQL statements are logged, but not the values bound to them nor the rows
    they return, and a mobile number is masked in any line (a driver's message, a traceback)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.DEBUG)
    configure_logging(verbose=True)
    logging.Logger.manager._clear_cache()  # root's level was set without setLevel
    phone = "13812345678"
    async with db.transaction() as session:
        account = Account(telegram_id=777002, chat_id=777002, display_name="王秀英", created_at=NOW)
        session.add(account)
        await session.flush()
        assert account.id is not None
        session.add(
            Beneficiary(
                owner_account_id=account.id,
                is_self=True,
                name="王秀英",
                grid_code="QS-JB-TH-01",
                phone=phone,
                created_at=NOW,
            )
        )
    async with db.session() as session:
        found = (await session.exec(select(Beneficiary).where(Beneficiary.phone == phone))).one()
        assert found.name == "王秀英"
    driver = logging.getLogger("asyncpg.protocol")
    driver.error("invalid input for query argument $1: %s (value out of int32 range)", phone)
    try:
        raise ValueError(f"no such id {phone}")
    except ValueError:
        logging.getLogger("huiyin").exception("update failed for +86 138 1234 5678")
    logged = stream.getvalue()
    assert "SELECT" in logged and "INSERT INTO beneficiaries" in logged
    assert "王秀英" not in logged
    assert phone not in logged and "1234 5678" not in logged
    assert "argument $1: 138****5678" in logged and "no such id 138****5678" in logged
