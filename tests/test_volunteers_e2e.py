"""A volunteer joins through a community's link and the coordinator approves, through the real
python-telegram-bot and aiogram stacks: consent, category toggles edited in place, the card's
one-tap approval, the applicant told."""

from __future__ import annotations

import pytest
from sqlmodel import select

from storage.models import Volunteer
from tests.test_e2e_telegram import Running, User, starts
from tests.test_e2e_telegram import running as running  # the fixture, re-exported

XU = 700000011  # coordinator of 天河社区 QS-JB-TH
APPLICANT = 931201


@pytest.mark.parametrize("running", starts("workday-1000"), indirect=True)
async def test_joining_by_link_and_approval(running: Running) -> None:
    fake = running.fake
    xu, applicant = User(fake, XU), User(fake, APPLICANT)
    await xu.say("/start", "You are registered as")
    await applicant.say("/start v_QS-JB-TH", "Do you agree?")
    await applicant.tap("yes", "Which kinds of help will you offer?")
    edit = await applicant.tap("companionship", "Which kinds", method="editMessageText")
    assert "✅ Visits and company" in str(edit.params["reply_markup"])
    await applicant.tap("done", "Are you a member of the Communist Party")
    mark = len(fake.calls)
    await applicant.tap("yes", "Your application to volunteer in")
    card = await xu.expect("A volunteer applies", after=mark)
    assert "Visits and company" in card.params["text"]

    mark = len(fake.calls)
    message, data = xu.button("yes")
    assert data.startswith("va:")
    await xu.press(message.message_id, data)
    await applicant.expect("Welcome! You are now a volunteer", after=mark)
    await xu.expect("Approved by 徐国庆", after=mark, method="editMessageText")
    async with running.db.session() as session:
        volunteer = (await session.exec(select(Volunteer))).one()
        assert (volunteer.status, volunteer.unit_code) == ("approved", "QS-JB-TH")
    await applicant.say("/volunteer", "Your volunteer profile")
