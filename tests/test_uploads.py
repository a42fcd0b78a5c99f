"""Files the bot makes itself (a chart, a spreadsheet), sent from bytes through every channel.

An `Outbound` with `upload_kind` travels through the outbox (base64 in the JSON payload), and
arrives as bytes in memory, as a file the console names, and as a multipart sendPhoto or
sendDocument through the real python-telegram-bot and aiogram stacks.
"""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.channels.console import ChatDriver, Transcript
from bot.channels.memory import MemorySender
from domain.clock import ManualClock
from domain.messages import Button, Outbound
from domain.outbox import enqueue
from schedules.outbox import OutboxSender
from storage.database import Database
from storage.models import OutboxMessage
from tests.fake_bot_api import FakeBotApi
from tests.test_e2e_telegram import Running, running, starts  # noqa: F401 - the fixture

CHAT = 910000001
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
XLSX_BYTES = b"PK\x03\x04 not really a spreadsheet, but bytes all the same"


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A valid PNG of grey pixels, built by hand so the test depends on nothing else."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_an_upload_needs_a_name_and_bytes() -> None:
    with pytest.raises(ValueError):
        Outbound(CHAT, "x", upload_kind="photo", upload_name="", upload_bytes=b"1")
    with pytest.raises(ValueError):
        Outbound(CHAT, "x", upload_kind="photo", upload_name="a.png", upload_bytes=b"")
    with pytest.raises(ValueError):
        Outbound(CHAT, "x", upload_kind="video", upload_name="a.mp4", upload_bytes=b"1")  # type: ignore[arg-type]


def test_payload_round_trip_keeps_the_bytes() -> None:
    png = tiny_png()
    message = Outbound(
        CHAT, "<b>图</b>", upload_kind="photo", upload_name="c.png", upload_bytes=png
    )
    again = Outbound.from_payload(CHAT, message.to_payload(), None)
    assert (again.upload_kind, again.upload_name, again.upload_bytes) == ("photo", "c.png", png)
    plain = Outbound(CHAT, "text")
    assert "upload_b64" not in plain.to_payload()
    assert Outbound.from_payload(CHAT, plain.to_payload(), None).upload_kind is None


async def test_outbox_delivers_upload_bytes_into_memory(db: Database) -> None:
    png = tiny_png()
    long_text = "\n".join("行" * 99 for _ in range(50))  # 4999 characters: two pieces
    async with db.transaction() as session:
        enqueue(
            session,
            Outbound(CHAT, "图表", upload_kind="photo", upload_name="chart.png", upload_bytes=png),
            NOW,
        )
        enqueue(
            session,
            Outbound(
                CHAT,
                long_text,
                buttons=((Button("OK", data="m:home"),),),
                upload_kind="document",
                upload_name="report.xlsx",
                upload_bytes=XLSX_BYTES,
            ),
            NOW,
        )
    async with db.session() as session:
        rows = (await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    # The file goes with the first piece only; the buttons with the last.
    assert [row.payload.get("upload_kind") for row in rows] == ["photo", "document", None]
    sender = MemorySender()
    await OutboxSender(db, sender, ManualClock(NOW)).deliver_due()
    shown = [m.message for m in sender.messages(CHAT)]
    assert (shown[0].upload_kind, shown[0].upload_bytes, shown[0].text) == ("photo", png, "图表")
    assert (shown[1].upload_name, shown[1].upload_bytes) == ("report.xlsx", XLSX_BYTES)
    assert shown[2].upload_kind is None and shown[2].buttons


async def test_console_writes_the_file_and_prints_its_path(db: Database, tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    driver = ChatDriver(db, ManualClock(NOW), ZoneInfo("Asia/Shanghai"))
    out = io.StringIO()
    Transcript(driver, out, upload_dir=tmp_path)
    png = tiny_png()
    await driver.sender.send(
        Outbound(CHAT, "图表", upload_kind="photo", upload_name="chart.png", upload_bytes=png)
    )
    written = sorted(tmp_path.glob("huiyin-chart-*.png"))  # noqa: ASYNC240 - a test's tmp dir
    assert len(written) == 1 and written[0].read_bytes() == png
    assert f"[photo: {written[0]}]" in out.getvalue() and "图表" in out.getvalue()


async def test_fake_bot_api_refuses_a_photo_that_is_not_an_image() -> None:
    from aiohttp import ClientSession, FormData

    async with FakeBotApi() as fake:
        fake.known_chat(CHAT)
        form = FormData()
        form.add_field("chat_id", str(CHAT))
        form.add_field("photo", b"not an image", filename="x.png", content_type="image/png")
        async with (
            ClientSession() as http,
            http.post(f"{fake.base_url}/bot{fake.token}/sendPhoto", data=form) as answer,
        ):
            body = await answer.json()
        assert body == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: IMAGE_PROCESS_FAILED",
        }


# Whatever the hour, files go out the same way: one working morning, on both frameworks.
@pytest.mark.parametrize("running", starts("workday-1000"), indirect=True)
async def test_photo_and_document_from_bytes_arrive_through_telegram(
    running: Running,  # noqa: F811 - the fixture imported above
) -> None:
    fake, db = running.fake, running.db
    fake.known_chat(CHAT)
    png = tiny_png(40, 30)
    mark = len(fake.calls)
    async with db.transaction() as session:
        enqueue(
            session,
            Outbound(
                CHAT,
                "<b>回音</b> 图表",
                upload_kind="photo",
                upload_name="stats.png",
                upload_bytes=png,
            ),
            running.clock.now(),
        )
        enqueue(
            session,
            Outbound(
                CHAT,
                "报表",
                buttons=((Button("OK", data="m:home"),),),
                upload_kind="document",
                upload_name="report.xlsx",
                upload_bytes=XLSX_BYTES,
            ),
            running.clock.now(),
        )
    photo_call = await fake.wait_for("sendPhoto", after=mark)
    document_call = await fake.wait_for("sendDocument", after=mark)
    assert photo_call.ok and document_call.ok
    photo, document = fake.messages(CHAT)[-2:]
    assert (photo.kind, photo.plain_text) == ("photo", "回音 图表")
    assert photo.entities == [{"type": "bold", "offset": 0, "length": 2}]
    assert fake.file_of(photo).content == png
    assert fake.file_of(photo).file_name == "stats.png"
    assert (document.kind, document.plain_text) == ("document", "报表")
    assert fake.file_of(document).content == XLSX_BYTES
    assert fake.file_of(document).file_name == "report.xlsx"
    assert document.inline_markup == {
        "inline_keyboard": [[{"text": "OK", "callback_data": "m:home"}]]
    }
