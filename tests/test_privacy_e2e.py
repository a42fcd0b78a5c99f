"""Personal data through Telegram, on python-telegram-bot and on aiogram against the loopback
fake Bot API: the consent question loses its buttons once answered, /mydata arrives as a message
and a JSON document, and /forget erases the resident and tells the grid member holding their
request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from storage.models import Account, Request
from tests.test_e2e_telegram import Start, User, bot_running, chat_of, starts

RESIDENT = 900001
WANG = 700000001  # grid member, Tianhe Grid 1


@pytest.mark.parametrize("start", starts("workday-1000"))
async def test_consent_mydata_and_forget_through_telegram(tmp_path: Path, start: Start) -> None:
    async with bot_running(tmp_path, start) as running:
        fake, db = running.fake, running.db
        wang = User(fake, WANG)
        resident = User(fake, RESIDENT)
        await wang.say("/start", "You are registered as grid member")

        consent = await resident.say("/start", "Do you agree?")
        assert "district office" in consent.params["text"]
        mark = len(fake.calls)
        await resident.tap("yes", "Choose the street or town:")
        edit = await fake.wait_for("editMessageText", lambda c: chat_of(c) == RESIDENT, after=mark)
        assert edit.ok
        shown = fake.messages(RESIDENT)[0]
        assert shown.plain_text.endswith("✅ I agree") and shown.edited
        assert not (shown.reply_markup or {}).get("inline_keyboard")

        await resident.tap("QS-JB", "choose your community")
        await resident.tap("QS-JB-TH", "choose your grid")
        await resident.tap("QS-JB-TH-01", "What would you like to do?")
        await resident.tap("report", "What kind of help is needed?")
        await resident.tap("living", "Which of these is closest?")
        await resident.tap("repair", "Please describe")
        await resident.say("The kitchen tap leaks", "Please check your request")
        mark = len(fake.calls)
        await resident.tap("submit", "HY000001")
        await wang.expect("HY000001", after=mark)

        mark = len(fake.calls)
        fake.push_text(RESIDENT, "/mydata", language_code="en")
        await resident.expect("What Huiyin keeps about you", after=mark)
        call = await fake.wait_for("sendDocument", lambda c: chat_of(c) == RESIDENT, after=mark)
        assert call.ok
        upload = fake.file_of(fake.messages(RESIDENT)[-1])
        assert upload.file_name == "huiyin-mydata.json"
        data = json.loads(upload.content)
        assert [r["reference"] for r in data["requests"]] == ["HY000001"]
        assert data["requests"][0]["description"] == "The kitchen tap leaks"

        await resident.say("/forget", "erase your data?")
        mark = len(fake.calls)
        await resident.tap("erase", "your data has been erased")
        await wang.expect("HY000001 is withdrawn", after=mark)

        async with db.session() as session:
            account = (await session.exec(select(Account))).all()
            request = (await session.exec(select(Request))).one()
        resident_account = next(a for a in account if a.erased_at is not None)
        assert resident_account.telegram_id < 0 and resident_account.display_name == ""
        assert (request.status, request.description) == ("cancelled", "")
