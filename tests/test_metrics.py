"""The three rates on a hand-made set of requests, the expected values worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.metrics import Rates, rates
from storage.models import Request

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
DUE = T0 + timedelta(hours=24)


def request(
    status: str,
    *,
    accepted: timedelta | None = None,
    satisfaction: str | None = None,
    solved: bool | None = None,
) -> Request:
    return Request(
        kind="living",
        category="repair",
        reporter_account_id=1,
        beneficiary_id=1,
        grid_code="G",
        status=status,
        created_at=T0,
        updated_at=T0,
        respond_by=DUE,
        responded_at=T0 + accepted if accepted is not None else None,
        satisfaction=satisfaction,
        solved=solved,
    )


def test_rates_on_a_hand_made_set() -> None:
    hour = timedelta(hours=1)
    requests = [
        # 1 closed, accepted in 1 h, satisfied                 received, responded, resolved, sat
        request("closed", accepted=hour, satisfaction="satisfied", solved=True),
        # 2 closed, accepted in 23 h, fairly satisfied         received, responded, resolved, sat
        request("closed", accepted=23 * hour, satisfaction="fairly", solved=True),
        # 3 closed as not rated, accepted exactly at the deadline  received, responded, resolved
        request("closed", accepted=24 * hour),
        # 4 resolved, waiting for the verdict, accepted late    received, resolved
        request("resolved", accepted=30 * hour),
        # 5 reopened after "not satisfied": open again          received, responded, rated (not)
        request("assigned", accepted=2 * hour, satisfaction="not_satisfied", solved=False),
        # 6 never accepted                                      received
        request("assigned"),
        # 7 cancelled and 8 merged: not received at all
        request("cancelled", accepted=hour),
        request("merged", accepted=hour, satisfaction="satisfied"),
    ]
    result = rates(requests)
    # received = 6 (1-6); responded in time = 1, 2, 3, 5 = 4; resolved = 1, 2, 3, 4 = 4;
    # rated = 1, 2, 5 = 3 (3 is "not rated"); satisfied = 1, 2 = 2.
    assert result == Rates(received=6, responded=4, resolved=4, rated=3, satisfied=2)
    assert result.response == 4 / 6
    assert result.resolution == 4 / 6
    assert result.satisfaction == 2 / 3


def test_rates_of_nothing_are_undefined() -> None:
    result = rates([])
    assert (result.response, result.resolution, result.satisfaction) == (None, None, None)
    only_unrated = rates([request("closed", accepted=timedelta(hours=1))])
    assert (only_unrated.response, only_unrated.satisfaction) == (1.0, None)
