"""Personal data (PIPL): what a resident may see and erase, what the worker forgets on its own,
and who saw a full phone number.

- `personal_data`: everything kept about an account and the people it registered (/mydata).
- `erase_account`: consent withdrawn (/forget, or a coordinator for a resident who asked by
  phone). The account, its family members and every free text they wrote are anonymised; the
  rows themselves stay, so that each request keeps counting in the figures: its status,
  category, grid, times and verdict are not personal. Open requests are withdrawn (cancelled,
  as if the resident had withdrawn them by hand: docs/metrics.md does not count them as
  received); a resolved request still waiting for the verdict is closed as not rated.
- `prune_outbox` and `anonymise_closed`: retention, run by the worker (schedules/retention.py).
- `record_phone_access`: a row for each full phone number shown (the 📞 contact card, a
  follow-up call handed to a grid member, a ledger with full numbers), listed for admins by
  /phonelog.

Notes in the timeline mix codes (`why:pass_up`, `solved:y`) with free text (a reason, a question,
a comment); `scrub_note` keeps the code lines and drops the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import Area
from domain.claims import release_all_of
from domain.ledger import in_ledger
from domain.lifecycle import OPEN_STATUSES, Action, Status
from domain.requests import transition
from domain.volunteers import VolunteerStatus
from storage.models import (
    Account,
    Beneficiary,
    BeneficiaryLink,
    ConversationState,
    InboxUpdate,
    OutboxMessage,
    PhoneAccess,
    Request,
    RequestEvent,
    Staff,
    Supporter,
    Volunteer,
)

# Needs about a person's health or state of mind: sent only after a separate "yes".
SENSITIVE_CATEGORIES = frozenset({"health", "counseling"})
# The timeline note of a request withdrawn because its reporter was erased.
WHY_ERASED = "why:erased"
ERASED_NAME = "—"
# A code line of a note: `key:value` in lower-case ASCII, or one of the bare codes.
CODE_LINE = re.compile(r"^[a-z_]+:[A-Za-z0-9_:.\-]*$")
BARE_CODES = frozenset({"nobody"})
# What a pruned outbox row keeps of its message: nothing to read.
PRUNED_PAYLOAD: dict[str, Any] = {"text": "", "buttons": [], "pruned": True}
PRUNED_LENGTH = 80

# Who may erase a resident who asked by phone: the community, the town, the district office;
# and who may list the phone log: the district office.
ERASE_ROLES = frozenset({"coordinator", "town_officer", "admin"})
PHONELOG_ROLES = frozenset({"admin"})

CONTACT_CARD = "contact_card"
EXPORT = "export"
CLI_EXPORT = "cli_export"
FOLLOW_UP_CALL = "follow_up_call"


def scrub_note(note: str | None) -> str | None:
    """The code lines of a timeline note, without the free text."""
    if not note:
        return note
    kept = [line for line in note.split("\n") if CODE_LINE.match(line) or line in BARE_CODES]
    return "\n".join(kept) or None


def is_sensitive(category: str) -> bool:
    return category in SENSITIVE_CATEGORIES


# Anonymising ----------------------------------------------------------------------------------


def scrub_event(event: RequestEvent) -> None:
    event.note = scrub_note(event.note)
    event.media_kind = None
    event.media_file_id = None


async def anonymise_request(session: AsyncSession, request: Request, now: datetime) -> None:
    """Remove the free texts of a request and of its timeline: the description, the photo or
    voice, the result note, the verdict comment (and its supporters' comments), reasons and
    questions. What it was (kind, category, place, times, levels, verdict) stays."""
    request.description = ""
    request.media_kind = None
    request.media_file_id = None
    request.result_note = None
    request.verdict_comment = None
    request.anonymised_at = now
    session.add(request)
    events = await session.exec(select(RequestEvent).where(RequestEvent.request_id == request.id))
    for event in events.all():
        scrub_event(event)
        session.add(event)
    # The words of those who said "me too" to it go with it (their verdicts stay).
    await session.exec(  # type: ignore[call-overload]
        update(Supporter)
        .where(col(Supporter.request_id) == request.id, col(Supporter.comment).is_not(None))
        .values(comment=None)
    )


def anonymise_beneficiary(beneficiary: Beneficiary) -> None:
    beneficiary.name = ERASED_NAME
    beneficiary.relation = ""
    beneficiary.phone = None
    beneficiary.account_id = None


async def strip_sent_messages(session: AsyncSession, chat_id: int) -> None:
    """What was sent to a chat loses its text; what waits to be sent is dropped."""
    await session.exec(  # type: ignore[call-overload]
        delete(OutboxMessage).where(
            col(OutboxMessage.chat_id) == chat_id, col(OutboxMessage.status) == "pending"
        )
    )
    await session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .values(payload=PRUNED_PAYLOAD)
    )


# Erasure ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Erasure:
    """What an erasure changed: the requests withdrawn (their holders are told), the resolved
    ones closed without a verdict, and how many were anonymised in all."""

    withdrawn: list[Request] = field(default_factory=list)
    closed: list[Request] = field(default_factory=list)
    anonymised: int = 0
    family_members: int = 0
    # Needs they held as a volunteer, released (their holders are told).
    released: list[Request] = field(default_factory=list)


def erasable(account: Account | None) -> bool:
    return account is not None and account.id is not None and account.erased_at is None


async def erase_account(
    session: AsyncSession,
    account: Account,
    now: datetime,
    *,
    actor_staff_id: int | None = None,
) -> Erasure:
    """Withdraw consent and erase `account` (see the module's docstring). Within the caller's
    transaction; the caller tells the holders of the withdrawn requests."""
    assert account.id is not None
    result = Erasure()
    actor = {"actor_staff_id": actor_staff_id} if actor_staff_id else {}
    if not actor:
        actor = {"actor_account_id": account.id}
    requests = await session.exec(
        select(Request).where(Request.reporter_account_id == account.id).order_by(col(Request.id))
    )
    for request in requests.all():
        if request.status in OPEN_STATUSES:
            await transition(session, request, Action.CANCEL, now, note=WHY_ERASED, **actor)
            result.withdrawn.append(request)
        elif request.status == Status.RESOLVED:
            await transition(session, request, Action.CLOSE, now, note=WHY_ERASED, **actor)
            result.closed.append(request)
        request.verdict_stage = "done" if request.verdict_stage else None
        request.verdict_due_at = None
        await session.flush()
        await anonymise_request(session, request, now)
        result.anonymised += 1
    # What they wrote on requests reported by others (as a linked family member).
    others = await session.exec(
        select(Request).where(
            Request.verdict_account_id == account.id, Request.reporter_account_id != account.id
        )
    )
    for request in others.all():
        request.verdict_comment = None
        session.add(request)
    # Their "me too"s stay (the needs keep their count), without their words.
    supported = await session.exec(select(Supporter).where(Supporter.account_id == account.id))
    for supporter in supported.all():
        supporter.comment = None
        session.add(supporter)
    events = await session.exec(
        select(RequestEvent).where(RequestEvent.actor_account_id == account.id)
    )
    for event in events.all():
        scrub_event(event)
        session.add(event)
    owned = (
        await session.exec(select(Beneficiary).where(Beneficiary.owner_account_id == account.id))
    ).all()
    owned_ids = [b.id for b in owned if b.id is not None]
    for beneficiary in owned:
        anonymise_beneficiary(beneficiary)
        session.add(beneficiary)
        result.family_members += 0 if beneficiary.is_self else 1
    linked = await session.exec(select(Beneficiary).where(Beneficiary.account_id == account.id))
    for beneficiary in linked.all():
        beneficiary.account_id = None
        session.add(beneficiary)
    await session.flush()
    await session.exec(  # type: ignore[call-overload]
        delete(BeneficiaryLink).where(
            or_(
                col(BeneficiaryLink.created_by_account_id) == account.id,
                col(BeneficiaryLink.used_by_account_id) == account.id,
                col(BeneficiaryLink.beneficiary_id).in_(owned_ids),
            )
        )
    )
    await erase_volunteer(session, account, now, result)
    state = await session.get(ConversationState, account.chat_id)
    if state is not None:
        await session.delete(state)
    await strip_sent_messages(session, account.chat_id)
    # What they sent, kept by the webhook inbox after handling (the update being handled now,
    # marked at `now`, stays: it is what makes a second delivery of it a no-op).
    await session.exec(  # type: ignore[call-overload]
        delete(InboxUpdate).where(
            col(InboxUpdate.chat_id) == account.chat_id, col(InboxUpdate.processed_at) < now
        )
    )
    # A Telegram id is positive: the negative placeholder keeps the column unique, and the
    # person is a stranger to the bot from now on (a new /start asks for consent again).
    account.telegram_id = -account.id
    account.chat_id = -account.id
    account.display_name = ""
    account.consent_at = None
    account.home_grid_code = None
    account.blocked_at = None
    account.erased_at = now
    session.add(account)
    await session.flush()
    return result


async def erase_volunteer(
    session: AsyncSession, account: Account, now: datetime, result: Erasure
) -> None:
    """A volunteer profile goes with the account: what they hold is released, the row stays
    (claims and figures name it) as "left", without a name, a phone or a Telegram id."""
    volunteer = (
        await session.exec(select(Volunteer).where(Volunteer.account_id == account.id))
    ).first()
    if volunteer is None:
        return
    for _claim, request in await release_all_of(session, volunteer, now):
        result.released.append(request)
    if volunteer.status != VolunteerStatus.LEFT:
        volunteer.status = VolunteerStatus.LEFT.value
        volunteer.left_at = now
    volunteer.name = ""
    volunteer.phone = None
    volunteer.telegram_id = None
    session.add(volunteer)


async def reporter_of(session: AsyncSession, request_id: int) -> Account | None:
    request = await session.get(Request, request_id)
    return await session.get(Account, request.reporter_account_id) if request else None


# Retention ----------------------------------------------------------------------------------------


async def prune_outbox(session: AsyncSession, before: datetime) -> int:
    """Sent (or given-up) messages created before `before` lose their text; the row stays,
    with the id of the message Telegram shows, so a card can still be edited."""
    result = await session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(col(OutboxMessage.status) != "pending", col(OutboxMessage.created_at) < before)
        # Not pruned yet: PostgreSQL cannot compare JSON values, but a message's payload (a
        # dozen keys) is far longer than the pruned one's.
        .where(func.length(cast(col(OutboxMessage.payload), Text)) > PRUNED_LENGTH)
        .values(payload=PRUNED_PAYLOAD)
    )
    return int(result.rowcount or 0)


ENDED = (Status.CLOSED.value, Status.CANCELLED.value, Status.MERGED.value)


async def anonymise_closed(
    session: AsyncSession, before: datetime, now: datetime, *, limit: int = 500
) -> int:
    """Requests that ended (closed, cancelled, merged) before `before` lose their free texts,
    at most `limit` at a time (the next run goes on). Their figures stay."""
    rows = await session.exec(
        select(Request)
        .where(col(Request.status).in_(ENDED), col(Request.closed_at) < before)
        .where(col(Request.anonymised_at).is_(None))
        .order_by(col(Request.id))
        .limit(limit)
    )
    count = 0
    for request in rows.all():
        await anonymise_request(session, request, now)
        count += 1
    return count


# Phone numbers ----------------------------------------------------------------------------------


def record_phone_access(
    session: AsyncSession,
    now: datetime,
    channel: str,
    *,
    staff_id: int | None,
    request_id: int | None = None,
    numbers: int = 1,
    detail: str = "",
) -> None:
    session.add(
        PhoneAccess(
            at=now,
            staff_id=staff_id,
            channel=channel,
            request_id=request_id,
            numbers=numbers,
            detail=detail[:200],
        )
    )


async def full_numbers(
    session: AsyncSession, area: Area, start: datetime, end: datetime, staff_id: int | None
) -> int:
    """How many full phone numbers a ledger of `area` for [start, end) shows: on the requests
    `staff_id` holds, or on all of them (None: the terminal's `huiyin export`)."""
    query = (
        select(func.count())
        .select_from(Request)
        .join(Beneficiary, col(Beneficiary.id) == col(Request.beneficiary_id))
        .where(in_ledger(area, start, end))
        .where(col(Beneficiary.phone).is_not(None), col(Beneficiary.phone) != "")
    )
    if staff_id is not None:
        query = query.where(col(Request.assignee_staff_id) == staff_id)
    return int((await session.exec(query)).one())


async def phone_access_log(
    session: AsyncSession, *, since: datetime | None = None, limit: int = 50
) -> Sequence[tuple[PhoneAccess, Staff | None]]:
    """The newest phone openings first, with who did it."""
    query = (
        select(PhoneAccess, Staff)
        .join(Staff, col(Staff.id) == col(PhoneAccess.staff_id), isouter=True)
        .order_by(col(PhoneAccess.at).desc(), col(PhoneAccess.id).desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(col(PhoneAccess.at) >= since)
    return (await session.exec(query)).all()


# What we keep about someone -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonalData:
    account: Account
    beneficiaries: list[Beneficiary]
    requests: list[Request]
    events: dict[int, list[RequestEvent]]
    volunteer: Volunteer | None = None  # their volunteer profile, if they have one
    # The needs of others they said "me too" to (domain/shared.py), with their own verdict.
    supported: list[tuple[Supporter, Request]] = field(default_factory=list)


async def personal_data(session: AsyncSession, account: Account) -> PersonalData:
    """The account, the people it registered (itself included), the requests it reported and
    their timelines."""
    beneficiaries = (
        await session.exec(
            select(Beneficiary)
            .where(Beneficiary.owner_account_id == account.id)
            .order_by(col(Beneficiary.id))
        )
    ).all()
    requests = (
        await session.exec(
            select(Request)
            .where(Request.reporter_account_id == account.id)
            .order_by(col(Request.id))
        )
    ).all()
    events: dict[int, list[RequestEvent]] = {r.id: [] for r in requests if r.id is not None}
    if events:
        rows = await session.exec(
            select(RequestEvent)
            .where(col(RequestEvent.request_id).in_(list(events)))
            .order_by(col(RequestEvent.id))
        )
        for event in rows.all():
            events[event.request_id].append(event)
    volunteer = (
        await session.exec(select(Volunteer).where(Volunteer.account_id == account.id))
    ).first()
    supported = await session.exec(
        select(Supporter, Request)
        .join(Request, col(Request.id) == col(Supporter.request_id))
        .where(Supporter.account_id == account.id)
        .order_by(col(Supporter.id))
    )
    return PersonalData(
        account,
        list(beneficiaries),
        list(requests),
        events,
        volunteer=volunteer,
        supported=[(s, r) for s, r in supported.all()],
    )
