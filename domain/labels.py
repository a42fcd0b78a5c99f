"""Words for what the rules store as codes (statuses, levels, roles, timeline actions and
notes, priorities, relations, categories), and how times, places and phones are shown: what the
conversations, the background work and the ledger all print the same way."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from domain.catalog import CATEGORY_BY_CODE, KINDS
from domain.i18n import N_, TRADITIONAL, Translator, to_traditional, translator
from storage.models import Account, Staff, Unit
from storage.roster_cache import unit_of

STATUS_LABELS: dict[str, str] = {
    "new": N_("Received"),
    "assigned": N_("Waiting to be accepted"),
    "in_progress": N_("Being handled"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
    "cancelled": N_("Cancelled"),
    "merged": N_("Merged with another request"),
}

LEVEL_LABELS: dict[str, str] = {
    "grid": N_("grid"),
    "community": N_("community / village"),
    "town": N_("street / town"),
    "department": N_("district department"),
    "district": N_("district"),
}

ROLE_LABELS: dict[str, str] = {
    "grid_member": N_("grid member"),
    "coordinator": N_("community coordinator"),
    "town_officer": N_("town officer"),
    "department": N_("department officer"),
    "admin": N_("district administrator"),
}

EVENT_LABELS: dict[str, str] = {
    "create": N_("Submitted"),
    "route": N_("Sent to {assignee}"),
    "accept": N_("Accepted by {actor}"),
    "decline": N_("Passed back by {actor}, now with {assignee}"),
    "escalate": N_("Escalated to {assignee}"),
    "resolve": N_("Resolved by {actor}"),
    "close": N_("Closed"),
    "reopen": N_("Reopened, now with {assignee}"),
    "cancel": N_("Cancelled"),
    "merge": N_("Merged"),
    "reassign": N_("Reassigned by {actor} to {assignee}"),
    "remind": N_("Reminder sent to {assignee}"),
    "overdue": N_("Overdue with {assignee}"),
    "priority": N_("Priority set by {actor}"),
    "wait": N_("{actor} asked a question; the clock is paused"),
    "answer": N_("The resident answered; the clock runs again"),
    "resume": N_("{actor} restarted the clock"),
    "ask_verdict": N_("The resident was asked whether it is solved"),
    "follow_up": N_("Follow-up call given to {actor}"),
    "verdict": N_("Verdict given"),
    "comment": N_("The resident's comment"),
    "undelivered": N_("The task card could not be delivered to {assignee}"),
    "rate_ask": N_("{actor} was asked how the level above handled it"),
    "rate_above": N_("Rated from below by {actor}"),
    "rate_note": N_("{actor}'s note on the rating from below"),
    "rate_lapsed": N_("Not rated from below within 7 days"),
    "screen": N_("Held for {assignee} to review first"),
    "flag": N_("{actor} changed the reporter's mark"),
    # Offers and claims (handlers/offers.py); the claim's note is the claimant's public name.
    "offer": N_("Offered to volunteers"),
    "widen": N_("Offered to the town's volunteers too"),
    "withdraw": N_("The offer to volunteers was withdrawn"),
    "claim": N_("Taken on by a volunteer"),
    "release": N_("The volunteer gave it back"),
    "take_back": N_("Taken back from the volunteer"),
    "claim_done": N_("The volunteer reported it done"),
    "support": N_("Another resident said “me too”"),
    "share": N_("Marked as a shared need by {actor}"),
    "merged_in": N_("A duplicate was merged into it by {actor}"),
}

# Timeline entries staff see and the reporter not: about the reporter rather than the need
# (screening, the nuisance mark), or between staff units (the rating from below).
STAFF_ONLY_EVENTS = frozenset(
    {"screen", "flag", "rate_ask", "rate_above", "rate_note", "rate_lapsed"}
)

# Codes in an event's note (domain.requests WHY_*, and the deadline events), as shown.
NOTE_LABELS: dict[str, str] = {
    "why:accept_overdue": N_("not accepted in time"),
    "why:resolve_overdue": N_("not resolved in time"),
    "why:pass_up": N_("passed up by hand"),
    "why:nobody_above": N_("no one above could take it"),
    "why:unreachable:blocked": N_("the task card could not be delivered: Huiyin was blocked"),
    "why:unreachable:deactivated": N_(
        "the task card could not be delivered: the Telegram account is deleted"
    ),
    "why:unreachable:chat_not_found": N_(
        "the task card could not be delivered: Huiyin was never opened"
    ),
    "clock:accept": N_("deadline to accept"),
    "clock:resolve": N_("deadline to resolve"),
    "to:claimant": N_("to the volunteer who claimed it"),
    "priority:urgent": N_("urgent"),
    "priority:complex": N_("complex"),
    "why:reopened": N_("reopened by the resident"),
    "verdict:ask": N_("first question"),
    "verdict:remind": N_("reminder"),
    "verdict:not_rated": N_("not rated in time"),
    "solved:y": N_("solved"),
    "solved:n": N_("not solved"),
    "satisfaction:satisfied": N_("satisfied"),
    "satisfaction:fairly": N_("fairly satisfied"),
    "satisfaction:not_satisfied": N_("not satisfied"),
    "by:reporter": N_("by the reporter"),
    "by:beneficiary": N_("by the beneficiary"),
    "by:staff": N_("recorded by staff after a call"),
    "screen:held": N_("the reporter's needs are reviewed first"),
    "screen:passed": N_("after review"),
    "screen:closed": N_("closed after review"),
    "nuisance:on": N_("marked as a nuisance: their new needs are reviewed first"),
    "nuisance:off": N_("nuisance mark removed: their needs take the normal route again"),
    "burst:summary": N_("not sent on its own: the need is in a summary card with others"),
}

PRIORITY_LABELS: dict[str, str] = {
    "urgent": N_("🚨 Urgent"),
    "complex": N_("🧩 Complex"),
}

RELATIONS: dict[str, str] = {
    "father": N_("Father"),
    "mother": N_("Mother"),
    "grandparent": N_("Grandparent"),
    "spouse": N_("Spouse"),
    "child": N_("Child"),
    "relative": N_("Other relative"),
}


def category_label(t: Translator, code: str) -> str:
    category = CATEGORY_BY_CODE.get(code)
    return t._(category.label) if category else code


def kind_label(t: Translator, code: str) -> str:
    return t._(KINDS[code]) if code in KINDS else code


def relation_label(t: Translator, relation: str) -> str:
    """A relation chosen with a button is stored as a code; one typed in is kept as typed."""
    return t._(RELATIONS[relation]) if relation in RELATIONS else relation


def unit_label(t: Translator, unit: Unit | None) -> str:
    if unit is None:
        return "?"
    if t.language == "en" and unit.name_en:
        return unit.name_en
    return to_traditional(unit.name) if t.language == TRADITIONAL else unit.name


async def unit_name(session: AsyncSession, t: Translator, code: str | None) -> str:
    return unit_label(t, await unit_of(session, code)) if code else "?"


def staff_label(t: Translator, staff: Staff | None) -> str:
    if staff is None:
        return t._("nobody yet")
    return f"{staff.name} ({t._(ROLE_LABELS.get(staff.role, staff.role))})"


def format_time(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else phone


def translator_for(account: Account | None) -> Translator:
    return translator(account.language if account else "zh_CN")
