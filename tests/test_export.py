"""/export in the chat and `huiyin export` at the terminal: the area's ledger as an .xlsx file,
scoped to the viewer, refused politely to those without an area and for bad periods, and
replaced by a polite answer when the file would be over Telegram's upload limit."""

from __future__ import annotations

import asyncio
import io
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook
from sqlmodel import col, select

import handlers.export as export_module
import schedules.exports as exports_module
from bot.channels.memory import ShownMessage
from bot.cli import build_parser, export_command, main
from bot.settings import load_settings
from domain.clock import ManualClock
from domain.i18n import translator
from domain.messages import Inbound
from schedules.exports import run_exports
from storage.database import Database
from storage.models import ExportJob, OutboxMessage
from storage.roster import sample_district_dir
from tests.conftest import everyone_opened
from tests.harness import Harness
from tests.test_e2e_telegram import Running, Start, bot_running, chat_of, starts
from tests.test_ledger import (  # noqa: F401 - the fixture
    NOW,
    ZONE,
    account,
    district,
    make_district,
    submit,
)

XU = 700000011  # coordinator, Tianhe community
HU = 700000017  # town officer, Jiangbei street
LUO = 700000022  # housing bureau (housing; repair)
WANG = 700000001  # grid member, Tianhe Grid 1


def workbook(shown: ShownMessage) -> Workbook:
    assert shown.message.upload_kind == "document"
    return load_workbook(io.BytesIO(shown.message.upload_bytes))


def references(book: Workbook) -> list[str]:
    return [str(row[0]) for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)]


def ref(request_id: int) -> str:
    return f"HY{request_id:06d}"


async def ask(harness: Harness, user: int, text: str) -> list[ShownMessage]:
    """What `user` sees in answer to `text` (the task cards the district's escalations left
    waiting in the outbox are delivered first)."""
    await harness.outbox.deliver_due()
    return await harness.say(user, text)


async def test_a_coordinator_gets_the_communitys_ledger(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
) -> None:
    preparing, shown = await ask(harness, XU, "/export 2026-11")
    assert preparing.text == "⏳ 正在生成天河社区需求台账（2026-11，共 3 件），稍后会发到这里。"
    zh = translator("zh_CN")
    assert shown.message.upload_name == "huiyin-ledger-QS-JB-TH-2026-11.xlsx"
    assert shown.text == zh.ngettext(
        "📒 Ledger of {area}, {period}: {n} request. The second sheet has the figures.",
        "📒 Ledger of {area}, {period}: {n} requests. The second sheet has the figures.",
        3,
        area="天河社区",
        period="2026-11",
    )
    assert shown.text == "📒 天河社区需求台账（2026-11）：共 3 件。第二个工作表是统计数据。"
    book = workbook(shown)
    assert [sheet.title for sheet in book.worksheets] == ["需求台账", "统计", "志愿者"]
    assert references(book) == [ref(district[k]) for k in ("escalated", "closed", "late")]
    phones = [row[8] for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)]
    # Xu holds the escalated request: its number in full; the others masked.
    assert phones == ["13800001111", "138****2222", "139****3333"]


async def test_a_town_officer_this_month_in_english(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
) -> None:
    harness.languages[HU] = "en"
    preparing, shown = await ask(harness, HU, "/export")  # this month so far
    assert preparing.text == (
        "⏳ Preparing the ledger of Jiangbei Street, 2026-11 (4 requests); it will arrive here "
        "shortly."
    )
    assert shown.message.upload_name == "huiyin-ledger-QS-JB-2026-11.xlsx"
    assert shown.text.startswith("📒 Ledger of Jiangbei Street, 2026-11: 4 requests.")
    book = workbook(shown)
    assert book.worksheets[0]["A1"].value == "Reference no."
    assert references(book) == [
        ref(district[k]) for k in ("escalated", "closed", "late", "liuyuan")
    ]
    (empty,) = await ask(harness, HU, "/export today")
    assert empty.message.upload_kind is None
    assert empty.text == (
        "No requests were received in Jiangbei Street in 2026-11-30: there is no ledger to send."
    )
    (week,) = await ask(harness, HU, "/export week")  # Monday: this week is today
    assert week.text == (
        "No requests were received in Jiangbei Street in 2026-11-30 – 2026-11-30: there is no "
        "ledger to send."
    )


def test_file_names_are_plain() -> None:
    assert export_module.file_name("QS-JB", "2026-11-23 – 2026-11-29") == (
        "huiyin-ledger-QS-JB-2026-11-23_to_2026-11-29.xlsx"
    )
    assert export_module.file_name("QS", "2026-11-30") == "huiyin-ledger-QS-2026-11-30.xlsx"


async def test_a_department_sees_its_remit(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
) -> None:
    harness.languages[LUO] = "en"
    _, shown = await ask(harness, LUO, "/export 本月")
    assert references(workbook(shown)) == [ref(district[k]) for k in ("closed", "late", "liuyuan")]
    assert shown.text.endswith("\nOnly the categories in your remit are counted.")


async def test_refusals_are_polite(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
) -> None:
    harness.languages[WANG] = harness.languages[XU] = "en"
    (refused,) = await ask(harness, WANG, "/export")
    assert refused.text == (
        "/export is for community coordinators, town officers, district departments and the "
        "district admin."
    )
    usage = (
        "Usage: /export [today|week|month|YYYY-MM]. For example: /export 2026-10 (a month "
        "that has begun), or /export week."
    )
    for bad in ("/export yesterday", "/export 2027-01", "/export 2026-13", "/export <b>"):
        (answer,) = await ask(harness, XU, bad)
        assert answer.text == usage and answer.message.upload_kind is None


async def test_over_the_upload_limit_asks_for_less(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export_module, "MAX_UPLOAD_BYTES", 1024)
    harness.languages[XU] = "en"
    _, answer = await ask(harness, XU, "/export 2026-11")
    assert answer.message.upload_kind is None
    assert answer.text.startswith("The ledger of Tianhe Community for 2026-11 (3 requests) is ")
    assert "than the 0 MB Telegram lets a bot send" in answer.text
    assert "/export week" in answer.text and "huiyin export" in answer.text


# The export job ---------------------------------------------------------------------------------


async def pending_jobs(db: Database) -> list[ExportJob]:
    async with db.session() as session:
        rows = await session.exec(select(ExportJob).where(col(ExportJob.finished_at).is_(None)))
        return list(rows.all())


async def documents(harness: Harness, user: int) -> list[ShownMessage]:
    return [m for m in harness.sender.messages(user) if m.message.upload_kind == "document"]


async def test_the_update_only_queues_the_job_and_a_restart_loses_nothing(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
) -> None:
    """The update's transaction writes a job, not the workbook; a worker started later (after
    a restart) sends the ledger once, and a second run finds nothing to do."""
    harness.languages[XU] = "en"
    await harness.outbox.deliver_due()
    await harness.dispatcher.handle(command(XU, "/export 2026-11"))  # no worker runs
    [job] = await pending_jobs(harness.db)
    assert (job.chat_id, job.period, job.language, job.claimed_at) == (XU, "2026-11", "en", None)
    async with harness.db.session() as session:
        queued = (await session.exec(select(OutboxMessage))).all()
    assert not [m for m in queued if m.payload.get("upload_kind")]

    harness.clock.advance(timedelta(hours=3))  # the bot was down meanwhile
    assert await run_exports(harness.db, harness.clock, ZONE) == 1
    assert await run_exports(harness.db, harness.clock, ZONE) == 0
    await harness.outbox.deliver_due()
    [document] = await documents(harness, XU)
    assert document.text.startswith("📒 Ledger of Tianhe Community, 2026-11: 3 requests.")
    assert await pending_jobs(harness.db) == []


async def test_asking_again_while_it_is_prepared_queues_nothing_more(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
) -> None:
    harness.languages[XU] = "en"
    await harness.dispatcher.handle(command(XU, "/export 2026-11"))
    await harness.dispatcher.handle(command(XU, "/export 2026-11"))
    await harness.outbox.deliver_due()
    assert harness.texts(XU)[-1] == (
        "That ledger is already being prepared; it will arrive here shortly."
    )
    assert len(await pending_jobs(harness.db)) == 1


async def test_a_worker_that_died_building_is_taken_over_then_given_up_politely(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness.languages[XU] = "en"
    await harness.dispatcher.handle(command(XU, "/export 2026-11"))
    claimed = await exports_module.claim_next(harness.db, harness.clock)  # then the worker dies
    assert claimed is not None
    assert await run_exports(harness.db, harness.clock, ZONE) == 0  # its claim is fresh

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports_module, "ledger_message", broken)
    for _ in range(exports_module.MAX_ATTEMPTS - 1):
        harness.clock.advance(exports_module.CLAIM_TIMEOUT + timedelta(seconds=1))
        assert await run_exports(harness.db, harness.clock, ZONE) == 0
    harness.clock.advance(exports_module.CLAIM_TIMEOUT + timedelta(seconds=1))
    assert await run_exports(harness.db, harness.clock, ZONE) == 1
    await harness.outbox.deliver_due()
    assert harness.texts(XU)[-1].startswith("Sorry, the ledger could not be prepared.")
    assert await pending_jobs(harness.db) == []


async def test_two_workers_at_once_send_the_ledger_once(
    harness: Harness,
    district: dict[str, int],  # noqa: F811
) -> None:
    await harness.dispatcher.handle(command(XU, "/export 2026-11"))
    answered = await asyncio.gather(
        run_exports(harness.db, harness.clock, ZONE), run_exports(harness.db, harness.clock, ZONE)
    )
    assert sorted(answered) == [0, 1]
    await harness.outbox.deliver_due()
    assert len(await documents(harness, XU)) == 1


def command(user: int, text: str) -> Inbound:
    name, _, args = text[1:].partition(" ")
    return Inbound(
        kind="command",
        user_id=user,
        chat_id=user,
        text=text,
        command=name,
        args=args,
        language="en",
    )


# The terminal -----------------------------------------------------------------------------------


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("HUIYIN_DATABASE_URL", url)
    monkeypatch.delenv("HUIYIN_BOT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["import", str(sample_district_dir())]) == 0
    return url


async def cli_export(url: str, *args: str) -> int:
    """`huiyin export ARGS` on the district's requests, at the test's time."""
    parsed = build_parser().parse_args(["export", *args])
    db = Database(url)
    try:
        await everyone_opened(db)
        ids = await make_district(db)
        assert ids
        return await export_command(
            db,
            load_settings(_env_file=None, database_url=url),
            parsed.unit,
            parsed.period,
            parsed.out,
            parsed.lang,
            ManualClock(NOW),
        )
    finally:
        await db.dispose()


def test_the_terminal_writes_the_whole_file_with_full_numbers(
    cli_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ledger.xlsx"
    code = asyncio.run(
        cli_export(cli_database, "--unit", "QS-JB", "--period", "2026-11", "--out", str(out))
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == (
        f"Wrote {out}: the ledger of QS-JB for 2026-11, 4 request(s)."
    )
    book = load_workbook(out)
    assert book.worksheets[0]["A1"].value == "编号"
    rows = list(book.worksheets[0].iter_rows(min_row=2, values_only=True))
    assert [row[8] for row in rows] == ["13800001111", "13800002222", "13900003333", None]
    assert book.worksheets[1]["A4"].value == "合计"


def test_the_terminal_refuses_bad_arguments(
    cli_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ledger.xlsx"

    def export(*args: str) -> int:
        return main(["export", *args, "--out", str(out)], clock=ManualClock(NOW))

    assert export("--unit", "QS-NOPE", "--period", "2026-11") == 1
    assert "--unit 'QS-NOPE'" in capsys.readouterr().err
    assert export("--unit", "QS-JB-TH-01") == 1  # a grid
    assert export("--unit", "QS", "--period", "2026-13") == 2
    assert "--period '2026-13'" in capsys.readouterr().err
    assert not out.exists()
    missing = tmp_path / "no-such-folder" / "ledger.xlsx"
    code = asyncio.run(
        cli_export(cli_database, "--unit", "QS", "--period", "2026-11", "--out", str(missing))
    )
    assert code == 1
    assert "cannot write it" in capsys.readouterr().err


# Through Telegram ---------------------------------------------------------------------------------


@pytest.mark.parametrize("start", starts())
async def test_the_file_arrives_through_telegram(tmp_path: Path, start: Start) -> None:
    """The real python-telegram-bot and aiogram stacks upload the workbook with sendDocument,
    at each moment of the matrix. The request is there when the bot starts (so a working
    morning's start-up digest counts it as new)."""
    made: dict[str, int] = {}

    async def one_request(running: Running) -> None:
        running.fake.known_chat(WANG)  # the grid member gets the task card
        now = running.clock.now()
        resident = await account(running.db, 900001, "Li Ming", "QS-JB-TH-01", now)
        made["request"] = await submit(
            running.db, now, resident, grid="QS-JB-TH-01", phone="13800001111"
        )

    async with bot_running(tmp_path, start, one_request) as running:
        fake = running.fake
        today = running.clock.now().astimezone(ZONE).date().isoformat()
        mark = len(fake.calls)
        fake.push_text(XU, "/export today", language_code="en")
        call = await fake.wait_for("sendDocument", lambda c: chat_of(c) == XU, after=mark)
        assert call.ok
        document = fake.messages(XU)[-1]
        assert document.kind == "document"
        assert document.plain_text.startswith(f"📒 Ledger of Tianhe Community, {today}: 1 request.")
        upload = fake.file_of(document)
        assert upload.file_name == f"huiyin-ledger-QS-JB-TH-{today}.xlsx"
        book = load_workbook(io.BytesIO(upload.content))
        rows = list(book.worksheets[0].iter_rows(values_only=True))
        assert rows[0][0] == "Reference no." and len(rows) == 2
        assert (rows[1][0], rows[1][8]) == (ref(made["request"]), "138****1111")  # Wang holds it


def test_the_terminal_file_is_readable_by_its_owner_only(cli_database: str, tmp_path: Path) -> None:
    """The ledger holds full phone numbers: a new file is created 0600, and one already there
    (world-readable) is narrowed to 0600 when it is overwritten."""
    fresh = tmp_path / "fresh.xlsx"
    old = tmp_path / "old.xlsx"
    old.write_bytes(b"")
    old.chmod(0o644)
    code = asyncio.run(
        cli_export(cli_database, "--unit", "QS-JB", "--period", "2026-11", "--out", str(fresh))
    )
    assert code == 0
    assert main(["export", "--unit", "QS-JB", "--out", str(old)], clock=ManualClock(NOW)) == 0
    for out in (fresh, old):
        assert stat.S_IMODE(out.stat().st_mode) == 0o600, out
        assert load_workbook(out).worksheets[0]["A1"].value == "编号"
