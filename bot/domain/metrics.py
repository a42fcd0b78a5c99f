"""The three rates of the resident's verdict (响应率、解决率、满意率), from requests alone.

The formulas, with their edge cases, are written out in docs/metrics.md; `rates` is the one
place they are computed, so every report (chat, chart, export) agrees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.domain.lifecycle import Status
from bot.domain.verdicts import FAIRLY, SATISFIED
from storage.models import Request

# Withdrawn and duplicate requests are not counted as received.
NOT_COUNTED = frozenset({Status.CANCELLED.value, Status.MERGED.value})
DONE = frozenset({Status.RESOLVED.value, Status.CLOSED.value})


@dataclass(frozen=True, slots=True)
class Rates:
    received: int
    responded: int  # first accepted by the first holder's accept deadline
    resolved: int  # resolved or closed now (a reopened request counts again once resolved)
    rated: int  # a satisfaction was given (by the resident, or recorded by staff); not "not rated"
    satisfied: int  # satisfied or fairly satisfied

    @property
    def response(self) -> float | None:
        return self.responded / self.received if self.received else None

    @property
    def resolution(self) -> float | None:
        return self.resolved / self.received if self.received else None

    @property
    def satisfaction(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None


def responded_in_time(request: Request) -> bool:
    return (
        request.responded_at is not None
        and request.respond_by is not None
        and request.responded_at <= request.respond_by
    )


def rates(requests: Iterable[Request]) -> Rates:
    received = responded = resolved = rated = satisfied = 0
    for request in requests:
        if request.status in NOT_COUNTED:
            continue
        received += 1
        responded += responded_in_time(request)
        resolved += request.status in DONE
        if request.satisfaction is not None:
            rated += 1
            satisfied += request.satisfaction in (SATISFIED, FAIRLY)
    return Rates(received, responded, resolved, rated, satisfied)
