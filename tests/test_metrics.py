"""The figures and the three rates, counted in SQL on a hand-made set of requests inserted
directly into the database; the expected values are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.metrics import Counts, Rates, conditions, rates, responded_in_time, tally
from storage.database import Database
from storage.models import Account, Beneficiary, Request

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
DUE = T0 + timedelta(hours=24)
HOUR = timedelta(hours=1)
GRID = "QS-JB-TH-01"


async def owner(session: AsyncSession, grid: str = GRID) -> tuple[int, int]:
    """An account and its beneficiary for requests to belong to: (account id, beneficiary id)."""
    account = Account(telegram_id=910000001, chat_id=910000001, created_at=T0)
    session.add(account)
    await session.flush()
    assert account.id is not None
    beneficiary = Beneficiary(
        owner_account_id=account.id, is_self=True, name="居民", grid_code=grid, created_at=T0
    )
    session.add(beneficiary)
    await session.flush()
    assert beneficiary.id is not None
    return account.id, beneficiary.id


def request(
    ids: tuple[int, int],
    status: str,
    *,
    accepted: timedelta | None = None,
    satisfaction: str | None = None,
    solved: bool | None = None,
    grid: str = GRID,
    category: str = "repair",
    created_at: datetime = T0,
    **more: Any,
) -> Request:
    values: dict[str, Any] = {
        "kind": "living",
        "category": category,
        "reporter_account_id": ids[0],
        "beneficiary_id": ids[1],
        "grid_code": grid,
        "status": status,
        "created_at": created_at,
        "updated_at": created_at,
        "respond_by": created_at + (DUE - T0),
        "responded_at": created_at + accepted if accepted is not None else None,
        "satisfaction": satisfaction,
        "solved": solved,
    }
    return Request(**(values | more))


def hand_made(ids: tuple[int, int]) -> list[Request]:
    return [
        # 1 closed, accepted in 1 h, satisfied                 received, responded, resolved, sat
        request(ids, "closed", accepted=HOUR, satisfaction="satisfied", solved=True),
        # 2 closed, accepted in 23 h, fairly satisfied         received, responded, resolved, sat
        request(ids, "closed", accepted=23 * HOUR, satisfaction="fairly", solved=True),
        # 3 closed as not rated, accepted exactly at the deadline  received, responded, resolved
        request(ids, "closed", accepted=24 * HOUR),
        # 4 resolved, waiting for the verdict, accepted late    received, resolved
        request(ids, "resolved", accepted=30 * HOUR),
        # 5 reopened after "not satisfied": open again, being worked on, its resolve deadline
        #   still ahead                                         received, responded, rated (not)
        request(
            ids,
            "in_progress",
            accepted=2 * HOUR,
            satisfaction="not_satisfied",
            solved=False,
            resolve_due_at=T0 + 100 * HOUR,
        ),
        # 6 never accepted, its first accept deadline long gone   received, open, overdue
        request(ids, "assigned", accept_due_at=T0 + 48 * HOUR),
        # 7 cancelled and 8 merged: not received at all
        request(ids, "cancelled", accepted=HOUR),
        request(ids, "merged", accepted=HOUR, satisfaction="satisfied"),
    ]


async def test_rates_on_a_hand_made_set(db: Database) -> None:
    async with db.transaction() as session:
        session.add_all(hand_made(await owner(session)))
    now = T0 + 72 * HOUR
    async with db.session() as session:
        result = await rates(session, col(Request.grid_code) == GRID, now)
        counts = (await tally(session, col(Request.grid_code) == GRID, now))[()]
    # received = 6 (1-6); responded in time = 1, 2, 3, 5 = 4; resolved = 1, 2, 3, 4 = 4;
    # rated = 1, 2, 5 = 3 (3 is "not rated"); satisfied = 1, 2 = 2.
    assert result == Rates(received=6, responded=4, resolved=4, rated=3, satisfied=2)
    assert result.response == 4 / 6
    assert result.resolution == 4 / 6
    assert result.satisfaction == 2 / 3
    # accepted at any time = 1-5 = 5; closed = 1, 2, 3 = 3; open = 5, 6 = 2; overdue: 6 only
    # (5's deadline is 100 h after T0, and now is 72 h after).
    assert counts == Counts(
        received=6,
        accepted=5,
        responded=4,
        resolved=4,
        closed=3,
        open=2,
        overdue=1,
        rated=3,
        satisfied=2,
    )
    assert counts.rates == result


async def test_overdue_follows_the_clock(db: Database) -> None:
    async with db.transaction() as session:
        ids = await owner(session)
        session.add_all(
            [
                # accepted in time, resolve deadline at 50 h
                request(ids, "in_progress", accepted=HOUR, resolve_due_at=T0 + 50 * HOUR),
                # the same, but waiting on the resident: the clocks stand still
                request(
                    ids,
                    "in_progress",
                    accepted=HOUR,
                    resolve_due_at=T0 + 50 * HOUR,
                    paused_at=T0 + 10 * HOUR,
                ),
            ]
        )
    async with db.session() as session:
        before = (await tally(session, col(Request.grid_code) == GRID, T0 + 49 * HOUR))[()]
        after = (await tally(session, col(Request.grid_code) == GRID, T0 + 50 * HOUR))[()]
    assert (before.open, before.overdue) == (2, 0)
    assert (after.open, after.overdue) == (2, 1)


async def test_tally_groups_and_sums(db: Database) -> None:
    async with db.transaction() as session:
        ids = await owner(session)
        session.add_all(
            [
                request(ids, "closed", accepted=HOUR, grid="QS-JB-TH-01", category="repair"),
                request(ids, "assigned", grid="QS-JB-TH-01", category="health"),
                request(ids, "resolved", accepted=30 * HOUR, grid="QS-JB-TH-02"),
                request(ids, "cancelled", grid="QS-JB-LY-01", category="health"),
            ]
        )
    now = T0 + HOUR
    async with db.session() as session:
        by_grid = await tally(session, Request.id > 0, now, group_by=[col(Request.grid_code)])
        by_both = await tally(
            session,
            col(Request.grid_code).in_(["QS-JB-TH-01", "QS-JB-TH-02"]),
            now,
            group_by=[col(Request.grid_code), col(Request.category)],
        )
        nothing = await tally(session, col(Request.grid_code) == "QS-FM-SQ-01", now)
    assert {key: c.received for key, c in by_grid.items()} == {
        ("QS-JB-TH-01",): 2,
        ("QS-JB-TH-02",): 1,
        ("QS-JB-LY-01",): 0,  # a group of a cancelled request alone: present, nothing received
    }
    assert set(by_both) == {
        ("QS-JB-TH-01", "repair"),
        ("QS-JB-TH-01", "health"),
        ("QS-JB-TH-02", "repair"),
    }
    total = sum(by_both.values(), Counts())
    # 1 responded in time; 1 and 3 resolved; 2 open
    assert (total.received, total.responded, total.resolved, total.open) == (3, 1, 2, 1)
    assert nothing == {}


async def test_rates_of_nothing_are_undefined(db: Database) -> None:
    async with db.transaction() as session:
        ids = await owner(session)
        session.add(request(ids, "closed", accepted=HOUR))
    async with db.session() as session:
        none = await rates(session, col(Request.grid_code) == "QS-FM-SQ-01", T0)
        only_unrated = await rates(session, col(Request.grid_code) == GRID, T0)
    assert (none.response, none.resolution, none.satisfaction) == (None, None, None)
    assert (only_unrated.response, only_unrated.satisfaction) == (1.0, None)


async def test_the_one_request_predicate_agrees_with_the_sql_condition(db: Database) -> None:
    async with db.transaction() as session:
        ids = await owner(session)
        made = [*hand_made(ids), request(ids, "assigned", respond_by=None)]
        session.add_all(made)
    async with db.session() as session:
        in_sql = set(
            (
                await session.exec(
                    select(Request.id).where(conditions(T0)["responded"])  # type: ignore[call-overload]
                )
            ).all()
        )
        loaded = (await session.exec(select(Request))).all()
    received = [r for r in loaded if r.status not in ("cancelled", "merged")]
    assert {r.id for r in received if responded_in_time(r)} == in_sql
    assert len(in_sql) == 4
