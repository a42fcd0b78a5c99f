"""The request lifecycle: the allowed-transitions table, refusals, the ladder, and the timeline
that every transition writes."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlmodel import col, select

from domain.clock import ManualClock
from domain.lifecycle import Action, Level, Status, TransitionRefused, level_above, next_status
from domain.requests import transition
from storage.database import Database
from storage.models import Account, Beneficiary, Request, RequestEvent

# Written out by hand from ARCHITECTURE.md, so a change to the table in the code shows up here.
ALLOWED: dict[tuple[Status, Action], Status] = {
    (Status.NEW, Action.ROUTE): Status.ASSIGNED,
    (Status.NEW, Action.CANCEL): Status.CANCELLED,
    (Status.NEW, Action.MERGE): Status.MERGED,
    (Status.ASSIGNED, Action.ACCEPT): Status.IN_PROGRESS,
    (Status.ASSIGNED, Action.DECLINE): Status.ASSIGNED,
    (Status.ASSIGNED, Action.ESCALATE): Status.ASSIGNED,
    (Status.ASSIGNED, Action.CANCEL): Status.CANCELLED,
    (Status.ASSIGNED, Action.MERGE): Status.MERGED,
    (Status.IN_PROGRESS, Action.ESCALATE): Status.ASSIGNED,
    (Status.ASSIGNED, Action.REASSIGN): Status.ASSIGNED,
    (Status.IN_PROGRESS, Action.REASSIGN): Status.ASSIGNED,
    (Status.IN_PROGRESS, Action.RESOLVE): Status.RESOLVED,
    (Status.IN_PROGRESS, Action.CANCEL): Status.CANCELLED,
    (Status.IN_PROGRESS, Action.MERGE): Status.MERGED,
    (Status.RESOLVED, Action.CLOSE): Status.CLOSED,
    (Status.RESOLVED, Action.REOPEN): Status.ASSIGNED,
    (Status.CLOSED, Action.REOPEN): Status.ASSIGNED,
}

REFUSED = [
    (status, action)
    for status, action in itertools.product(Status, Action)
    if (status, action) not in ALLOWED
]


@pytest.mark.parametrize(("status", "action"), list(ALLOWED), ids=lambda v: str(v))
def test_allowed_transition(status: Status, action: Action) -> None:
    assert next_status(status.value, action) is ALLOWED[(status, action)]


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (Status.NEW, Action.ACCEPT),
        (Status.NEW, Action.RESOLVE),
        (Status.ASSIGNED, Action.RESOLVE),
        (Status.IN_PROGRESS, Action.ACCEPT),
        (Status.IN_PROGRESS, Action.DECLINE),
        (Status.RESOLVED, Action.CANCEL),
        (Status.CLOSED, Action.CLOSE),
        (Status.CANCELLED, Action.REOPEN),
        (Status.MERGED, Action.ROUTE),
    ],
    ids=lambda v: str(v),
)
def test_refused_transition_raises(status: Status, action: Action) -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status(status.value, action)
    assert (refused.value.status, refused.value.action) == (status.value, action)


def test_everything_outside_the_table_is_refused() -> None:
    for status, action in REFUSED:
        with pytest.raises(TransitionRefused):
            next_status(status.value, action)


def test_closed_and_side_exits_are_final_except_reopen() -> None:
    for status in (Status.CANCELLED, Status.MERGED):
        assert not [action for action in Action if (status, action) in ALLOWED]
    assert [action for action in Action if (Status.CLOSED, action) in ALLOWED] == [Action.REOPEN]


def test_unknown_status_is_refused_not_crashed() -> None:
    with pytest.raises(TransitionRefused):
        next_status("bogus", Action.ACCEPT)


@pytest.mark.parametrize(
    ("level", "above"),
    [
        ("grid", Level.COMMUNITY),
        ("community", Level.TOWN),
        ("town", Level.DEPARTMENT),
        ("department", Level.DISTRICT),
        ("district", None),
    ],
)
def test_level_above_climbs_the_ladder(level: str, above: Level | None) -> None:
    assert level_above(level) == above


# transition() against the database -----------------------------------------------------------


async def new_request(db: Database, clock: ManualClock, status: Status) -> int:
    async with db.transaction() as session:
        account = Account(telegram_id=900001, chat_id=900001, created_at=clock.now())
        session.add(account)
        await session.flush()
        assert account.id is not None
        beneficiary = Beneficiary(
            owner_account_id=account.id,
            is_self=True,
            name="Resident",
            grid_code="QS-JB-TH-01",
            created_at=clock.now(),
        )
        session.add(beneficiary)
        await session.flush()
        assert beneficiary.id is not None
        request = Request(
            kind="living",
            category="repair",
            reporter_account_id=account.id,
            beneficiary_id=beneficiary.id,
            grid_code="QS-JB-TH-01",
            status=status.value,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(request)
        await session.flush()
        assert request.id is not None
        return request.id


async def test_transition_writes_state_and_event_together(db: Database, clock: ManualClock) -> None:
    request_id = await new_request(db, clock, Status.IN_PROGRESS)
    later = clock.advance(timedelta(hours=2))
    async with db.transaction() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        await transition(session, request, Action.RESOLVE, later, note="Pipe replaced")

    async with db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        assert (request.status, request.resolved_at, request.result_note) == (
            "resolved",
            later,
            "Pipe replaced",
        )
        events = (await session.exec(select(RequestEvent))).all()
        assert [(e.action, e.from_status, e.to_status, e.note) for e in events] == [
            ("resolve", "in_progress", "resolved", "Pipe replaced"),
        ]


async def test_refused_transition_changes_nothing(db: Database, clock: ManualClock) -> None:
    request_id = await new_request(db, clock, Status.CLOSED)
    with pytest.raises(TransitionRefused):
        async with db.transaction() as session:
            request = await session.get(Request, request_id)
            assert request is not None
            await transition(session, request, Action.ACCEPT, clock.now())

    async with db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None and request.status == "closed"
        assert (await session.exec(select(col(RequestEvent.id)))).all() == []
