"""The request lifecycle: states, actions and the table of allowed transitions.

    new ──route──► assigned ──accept──► in_progress ──resolve──► resolved ──close──► closed
                    │  ▲ decline / escalate (level up, new assignee)  │ reopen     │ reopen
                    │  │ reassign (by the level above, to anyone in its area)       │
                    └──┘◄─────────────────────────────────────────────┴────────────┘
    new | assigned | in_progress ──cancel──► cancelled;  ──merge──► merged

Escalation is not a state: it raises `level` and changes the assignee; reassignment changes
the assignee (and the level, to the new assignee's). Some actions only annotate the timeline
(reminders, pauses, priority changes) and are never passed to `next_status`. Anything not in the
table is refused with `TransitionRefused`; callers turn that into a polite answer.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    MERGED = "merged"


class Action(StrEnum):
    CREATE = "create"
    ROUTE = "route"
    ACCEPT = "accept"
    DECLINE = "decline"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    CANCEL = "cancel"
    MERGE = "merge"
    REASSIGN = "reassign"
    # Timeline entries that change no state (written with `add_event`, not `transition`):
    REMIND = "remind"  # a deadline reminder went to the owner
    OVERDUE = "overdue"  # a deadline passed and there was no one above to take it
    PRIORITY = "priority"  # staff marked it urgent, or accepted it as complex
    WAIT = "wait"  # staff asked the resident a question; the clocks pause
    ANSWER = "answer"  # the resident answered; the clocks run again
    RESUME = "resume"  # staff restarted the clocks without an answer
    ASK_VERDICT = "ask_verdict"  # the resident was asked whether it is solved (or reminded)
    FOLLOW_UP = "follow_up"  # a grid member was given the follow-up call (回访)
    VERDICT = "verdict"  # the verdict was given (by the resident, or recorded by staff)
    COMMENT = "comment"  # the resident's comment or reason after the verdict
    UNDELIVERED = "undelivered"  # Telegram refused the holder's task card; no one else to take it
    # Rating from below (domain/upward.py): a lower unit that passed the need up is asked how
    # the level that resolved it handled it; its answer; or no answer in 7 days.
    RATE_ASK = "rate_ask"
    RATE_ABOVE = "rate_above"
    RATE_NOTE = "rate_note"  # the rater's optional line or voice note
    RATE_LAPSED = "rate_lapsed"
    SCREEN = "screen"  # a need from someone marked as a nuisance waits for a coordinator
    FLAG = "flag"  # a coordinator marked (or unmarked) the reporter as a nuisance
    # The supply side (domain/claims.py): the holder offered it to volunteers; the offer went
    # on to the town's; the holder withdrew it; a volunteer (or a unit) claimed it; the
    # claimant gave it back (or left); the holder took it back; the claimant reported it done.
    OFFER = "offer"
    WIDEN = "widen"
    WITHDRAW = "withdraw"
    CLAIM = "claim"
    RELEASE = "release"
    TAKE_BACK = "take_back"
    CLAIM_DONE = "claim_done"
    # Shared needs: a resident said "me too"; staff marked it shared; a duplicate was merged in.
    SUPPORT = "support"
    SHARE = "share"
    MERGED_IN = "merged_in"


class Level(StrEnum):
    GRID = "grid"
    COMMUNITY = "community"
    TOWN = "town"
    DEPARTMENT = "department"
    DISTRICT = "district"


LADDER: tuple[Level, ...] = (
    Level.GRID,
    Level.COMMUNITY,
    Level.TOWN,
    Level.DEPARTMENT,
    Level.DISTRICT,
)

OPEN_STATUSES: frozenset[Status] = frozenset({Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS})
# Open with someone holding it: these run clocks, and can be passed up.
HELD_STATUSES: frozenset[Status] = frozenset({Status.ASSIGNED, Status.IN_PROGRESS})

TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.NEW, Action.ROUTE): Status.ASSIGNED,
    (Status.ASSIGNED, Action.ACCEPT): Status.IN_PROGRESS,
    (Status.ASSIGNED, Action.DECLINE): Status.ASSIGNED,
    (Status.ASSIGNED, Action.ESCALATE): Status.ASSIGNED,
    (Status.IN_PROGRESS, Action.ESCALATE): Status.ASSIGNED,
    (Status.ASSIGNED, Action.REASSIGN): Status.ASSIGNED,
    (Status.IN_PROGRESS, Action.REASSIGN): Status.ASSIGNED,
    (Status.IN_PROGRESS, Action.RESOLVE): Status.RESOLVED,
    (Status.RESOLVED, Action.CLOSE): Status.CLOSED,
    (Status.RESOLVED, Action.REOPEN): Status.ASSIGNED,
    (Status.CLOSED, Action.REOPEN): Status.ASSIGNED,
    **{(status, Action.CANCEL): Status.CANCELLED for status in OPEN_STATUSES},
    **{(status, Action.MERGE): Status.MERGED for status in OPEN_STATUSES},
}


class TransitionRefused(Exception):
    def __init__(self, status: str, action: str) -> None:
        super().__init__(f"{action} is not allowed from {status}")
        self.status = status
        self.action = action


def next_status(status: str, action: Action) -> Status:
    try:
        return TRANSITIONS[(Status(status), action)]
    except (KeyError, ValueError):
        raise TransitionRefused(status, action) from None


def level_above(level: str) -> Level | None:
    index = LADDER.index(Level(level))
    return LADDER[index + 1] if index + 1 < len(LADDER) else None
