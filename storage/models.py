"""The tables. Times are aware UTC (SQLModel stores them so); display converts to the district's
time zone.

Status, level and role values are plain strings checked by the domain layer (`domain`),
so that adding a value is a code change, not a migration.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


class Unit(SQLModel, table=True):
    """A node of the administrative tree: district, town, community, grid or department."""

    __tablename__ = "units"

    code: str = Field(primary_key=True, max_length=32)
    level: str = Field(max_length=16, index=True)
    parent_code: str | None = Field(default=None, foreign_key="units.code", index=True)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=100)
    # Where a grid is, from the roster (docs/roster.md): a point and/or an outline (a GeoJSON
    # Polygon or MultiPolygon geometry, as text), for finding the grid of a shared location.
    lat: float | None = Field(default=None)
    lon: float | None = Field(default=None)
    outline: str | None = Field(default=None, sa_type=Text)
    # The name's pinyin read with pypinyin's phrase dictionary (重庆 "chong qing"), syllables
    # joined by spaces, set by the roster import (storage.pinyin.name_reading): finding a place
    # then never loads that dictionary (55 MiB) in the bot. None: not read yet.
    syllables: str | None = Field(default=None, sa_type=Text)


class Staff(SQLModel, table=True):
    """A roster entry: a person who serves a unit in a role."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=50)
    phone: str = Field(max_length=20, unique=True)
    telegram_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, unique=True, nullable=True)
    )
    role: str = Field(max_length=16, index=True)
    unit_code: str = Field(foreign_key="units.code", index=True)
    posts: str = Field(default="", max_length=500)
    active: bool = Field(default=True)
    # Reachability (domain/reach.py): Telegram lets a bot write only to someone who has
    # opened it. `opened_at` is when this person first wrote to the bot as this roster entry;
    # `refused_at` and `refused_reason` say Telegram has refused a message to them since
    # ("blocked", "deactivated", "chat_not_found"), cleared when they write again.
    opened_at: datetime | None = None
    refused_at: datetime | None = None
    refused_reason: str | None = Field(default=None, max_length=32)

    @property
    def post_list(self) -> list[str]:
        return [p for p in self.posts.split(";") if p]


class Account(SQLModel, table=True):
    """Anyone who has talked to the bot, resident or staff."""

    __tablename__ = "accounts"

    id: int | None = Field(default=None, primary_key=True)
    telegram_id: int = Field(sa_column=Column(BigInteger, unique=True, nullable=False))
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    display_name: str = Field(default="", max_length=100)
    language: str = Field(default="zh_CN", max_length=8)
    consent_at: datetime | None = None
    home_grid_code: str | None = Field(default=None, foreign_key="units.code")
    created_at: datetime
    # Set when Telegram refuses a message to this chat (blocked, deactivated, chat not found),
    # cleared when they write again: until then nothing more is sent to them.
    blocked_at: datetime | None = None
    # Floods (domain/floods.py): how many updates this person sent in the minute that began at
    # `updates_since`; and, when a coordinator marked them as a nuisance, when and who (their new
    # needs then go to that coordinator to screen first).
    updates_since: datetime | None = None
    updates_count: int = Field(default=0)
    nuisance_at: datetime | None = None
    nuisance_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    # When the resident withdrew consent and was erased (/forget, or a coordinator for them):
    # the row stays, anonymised (its Telegram id replaced by a negative placeholder), so the
    # requests it reported keep counting in the figures (domain/privacy.py).
    erased_at: datetime | None = None


class Beneficiary(SQLModel, table=True):
    """The person a need is for: the resident themself, or a family member they registered."""

    __tablename__ = "beneficiaries"

    id: int | None = Field(default=None, primary_key=True)
    owner_account_id: int = Field(foreign_key="accounts.id", index=True)
    is_self: bool = Field(default=False)
    name: str = Field(max_length=50)
    relation: str = Field(default="", max_length=30)
    grid_code: str = Field(foreign_key="units.code")
    phone: str | None = Field(default=None, max_length=20)
    created_at: datetime
    # The beneficiary's own account, when they use the bot themselves (they may then give the
    # verdict); None for a family member who does not (the grid member calls them instead).
    account_id: int | None = Field(default=None, foreign_key="accounts.id")
    # When the resident who registered this family member ticked "I have told them that
    # Huiyin keeps these details" (PIPL: the person is informed); None for one's own entry.
    informed_at: datetime | None = None


class Request(SQLModel, table=True):
    """A registered need and where it stands."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_assignee_status", "assignee_staff_id", "status"),
        Index("ix_requests_grid_created", "grid_code", "created_at"),
        # The deadline sweep reads only this: the earliest pending reminder or deadline.
        Index("ix_requests_next_due", "next_due_at"),
        # Reports (/stats, the export) read the requests received in a period.
        Index("ix_requests_created", "created_at"),
        # A village's open needs of a category ("Is it one of these?", domain/shared.py).
        Index("ix_requests_grid_category_status", "grid_code", "category", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    category: str = Field(max_length=24, index=True)
    description: str = Field(default="", max_length=2000)
    media_kind: str | None = Field(default=None, max_length=8)
    media_file_id: str | None = Field(default=None, max_length=200)
    reporter_account_id: int = Field(foreign_key="accounts.id", index=True)
    beneficiary_id: int = Field(foreign_key="beneficiaries.id", index=True)
    grid_code: str = Field(foreign_key="units.code")
    status: str = Field(max_length=16, index=True)
    level: str = Field(default="grid", max_length=16)
    priority: str = Field(default="normal", max_length=16)
    assignee_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    result_note: str | None = Field(default=None, max_length=1000)
    reopen_count: int = Field(default=0)
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    # Deadlines (domain/deadlines.py): the clocks of the current owner, and what is next.
    level_assigned_at: datetime | None = None
    accept_due_at: datetime | None = None
    accept_remind_at: datetime | None = None
    accept_reminder_stage: int = Field(default=0)
    resolve_due_at: datetime | None = None
    resolve_remind_at: datetime | None = None
    resolve_reminder_stage: int = Field(default=0)
    paused_at: datetime | None = None
    next_due_at: datetime | None = None
    # The first deadline this round of work missed (set by the sweep when a deadline passes,
    # kept through escalations, cleared when the resident reopens it): what "overdue" reads.
    overdue_since: datetime | None = None
    # The resolve deadlines kept once the clock stops (the ledger's "Resolve deadline" column
    # for a resolved request): the first one that passed (set by the sweep when it escalates or
    # flags the request for not being resolved in time; never cleared), and the holder's when
    # it was last resolved.
    resolve_missed_due_at: datetime | None = None
    resolved_due_at: datetime | None = None
    # Response (domain/metrics.py): the first holder's accept deadline, the first acceptance.
    respond_by: datetime | None = None
    responded_at: datetime | None = None
    # The resident's verdict (domain/verdicts.py). `verdict_stage` is what is due next at
    # `verdict_due_at` ("ask", "remind", "expire"), "done" once the verdict round is over.
    verdict_stage: str | None = Field(default=None, max_length=8)
    verdict_due_at: datetime | None = None
    verdict_asked_at: datetime | None = None
    solved: bool | None = None
    satisfaction: str | None = Field(default=None, max_length=16)
    verdict_comment: str | None = Field(default=None, max_length=1000)
    verdict_by: str | None = Field(default=None, max_length=12)
    verdict_account_id: int | None = Field(default=None, foreign_key="accounts.id")
    rated_at: datetime | None = None
    followup_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    # Personal data (domain/privacy.py): when the reporter agreed, separately, to send a
    # health or counselling need; when its free texts were removed (erasure or retention).
    sensitive_consent_at: datetime | None = None
    anonymised_at: datetime | None = None
    # The supply side (domain/claims.py): the live offer to volunteers, if any (a `claims` id);
    # a shared need (共性需求: marked by staff, or gathering "me too"s) and its supporters; the
    # need a later duplicate was merged into.
    claim_id: int | None = Field(default=None, index=True)
    shared_at: datetime | None = None
    supporter_count: int = Field(default=0)
    merged_into_id: int | None = Field(default=None, foreign_key="requests.id")

    @property
    def reference(self) -> str:
        return format_reference(self.id or 0)


def format_reference(request_id: int) -> str:
    return f"HY{request_id:06d}"


# The largest id a table's primary key can hold (INTEGER: 32-bit on PostgreSQL). A number
# typed or carried by a button beyond it names no row; asking the database for it would fail.
MAX_ROW_ID = 2**31 - 1


def parse_reference(text: str) -> int | None:
    """The request id a reference names ("HY000123", "#123", "123"), or None. A number out of
    an id's range is no reference: an 11-digit number is a mobile phone (13812345678)."""
    text = text.strip().upper().removeprefix("#")
    if text.startswith("HY"):
        text = text[2:]
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None


class RequestEvent(SQLModel, table=True):
    """One entry of a request's timeline. Rows are only ever inserted."""

    __tablename__ = "request_events"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="requests.id", index=True)
    at: datetime
    action: str = Field(max_length=24)
    actor_account_id: int | None = Field(default=None, foreign_key="accounts.id")
    actor_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    from_level: str | None = Field(default=None, max_length=16)
    to_level: str | None = Field(default=None, max_length=16)
    assignee_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    note: str | None = Field(default=None, max_length=1000)
    # A voice note that came with the entry (a verdict comment, a reopen reason), kept by
    # Telegram's file_id so the timeline can send it again.
    media_kind: str | None = Field(default=None, max_length=8)
    media_file_id: str | None = Field(default=None, max_length=200)


class BeneficiaryLink(SQLModel, table=True):
    """A one-time code a resident forwards to a family member they registered, so that the
    family member's own account is tied to the entry (and may then give the verdict)."""

    __tablename__ = "beneficiary_links"

    code: str = Field(primary_key=True, max_length=32)
    beneficiary_id: int = Field(foreign_key="beneficiaries.id", index=True)
    created_by_account_id: int = Field(foreign_key="accounts.id")
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by_account_id: int | None = Field(default=None, foreign_key="accounts.id")


class OutboxMessage(SQLModel, table=True):
    """An outgoing message, written in the same transaction as the change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "status", "next_attempt_at"),
        # A chat's messages by time: "in touch in the last half hour" (handlers.cards.in_touch)
        # reads only that half hour, not the chat's whole history.
        Index("ix_outbox_chat_created", "chat_id", "created_at"),
        # A card's rows in a chat, by its name or a range of names (handlers.cards).
        Index("ix_outbox_chat_ref", "chat_id", "ref_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    ref_key: str | None = Field(default=None, max_length=64, index=True)
    status: str = Field(default="pending", max_length=12)
    attempts: int = Field(default=0)
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None = None
    sent_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    last_error: str | None = Field(default=None, max_length=500)
    # Set while a worker is sending the row, so a second active worker skips it.
    claimed_at: datetime | None = None
    # The process that claimed it (its `Database.name`, PostgreSQL's application_name): a
    # process starting up releases the claims of one that is gone (storage.outbox).
    claimed_by: str | None = Field(default=None, max_length=63)


class ConversationState(SQLModel, table=True):
    """Where a chat is in a conversation, so a restart or another replica can go on."""

    __tablename__ = "conversation_states"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    flow: str = Field(max_length=32)
    step: str = Field(max_length=32)
    nonce: int = Field(default=0)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime


class Invite(SQLModel, table=True):
    """A one-time link that binds a roster entry to whoever opens it."""

    __tablename__ = "invites"

    code: str = Field(primary_key=True, max_length=32)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by_telegram_id: int | None = Field(default=None, sa_column=Column(BigInteger))


class InboxUpdate(SQLModel, table=True):
    """An update taken in by a webhook replica, kept until it has been handled.

    Telegram retries a delivery it thinks failed, so the same update can arrive twice, or at
    two replicas: the primary key makes the second arrival a no-op. The webhook answers as soon
    as the row is written; the update is then handled from here, in update order per chat, and
    a replica that crashed half-way leaves rows another one picks up.
    """

    __tablename__ = "inbox_updates"
    __table_args__ = (Index("ix_inbox_pending", "processed_at", "chat_id", "update_id"),)

    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    received_at: datetime
    processed_at: datetime | None = None


class ExportJob(SQLModel, table=True):
    """A ledger asked for in the chat, built by the worker rather than while the update is
    handled: a district's month takes seconds, and no one else's message should wait for it.
    The row outlives a restart, so a ledger asked for is always sent, once."""

    __tablename__ = "export_jobs"
    __table_args__ = (Index("ix_export_jobs_pending", "finished_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    staff_id: int = Field(foreign_key="staff.id")
    language: str = Field(max_length=8)
    period: str = Field(max_length=50)  # as typed after /export, read again at `requested_at`
    requested_at: datetime
    claimed_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(default=0)


class DigestDelivery(SQLModel, table=True):
    """The morning digest a person was sent on a day: at most one (the primary key), whatever
    restarts, catch-ups or second workers happen."""

    __tablename__ = "digest_deliveries"

    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    day: date = Field(primary_key=True)
    sent_at: datetime


class PhoneAccess(SQLModel, table=True):
    """Who saw a full phone number, when, and how: a contact card (the 📞 button) or an
    export with full numbers (in the chat, or `huiyin export` at the terminal). Rows are only
    ever inserted; an admin lists them with /phonelog."""

    __tablename__ = "phone_access"
    __table_args__ = (Index("ix_phone_access_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    # The staff member who saw it; None at the terminal (`huiyin export`).
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    channel: str = Field(max_length=16)  # domain.privacy: CONTACT_CARD, FOLLOW_UP_CALL, EXPORT...
    request_id: int | None = Field(default=None, foreign_key="requests.id")
    numbers: int = Field(default=1)  # how many full numbers were shown
    detail: str = Field(default="", max_length=200)  # the export's area and period


class WorkerLease(SQLModel, table=True):
    """Who runs the background work now, and when it last said it was alive (for /healthz)."""

    __tablename__ = "worker_leases"

    name: str = Field(primary_key=True, max_length=32)
    holder: str = Field(max_length=100)
    acquired_at: datetime
    heartbeat_at: datetime


class RosterVersion(SQLModel, table=True):
    """One row: a number the roster import raises whenever it writes, so every process's
    roster cache (storage.roster_cache) sees that the units it keeps may have changed."""

    __tablename__ = "roster_version"

    id: int = Field(primary_key=True)
    version: int = Field(default=1)


class UpwardRating(SQLModel, table=True):
    """A lower unit's rating of how the level above handled a need it passed up (一定双评):
    one per need per lower unit (the unique index), asked of one person of that unit.

    `state`: "pending" (to be asked at `ask_at`, the end of quiet hours), "asked" (lapses at
    `lapses_at`, 7 days later, as not rated), "rated", "lapsed", "unreachable" (no one of the
    unit could be asked). Ratings are domain.verdicts' satisfied / fairly / not_satisfied."""

    __tablename__ = "upward_ratings"
    __table_args__ = (
        Index("ux_upward_ratings_request_unit", "request_id", "rater_unit_code", unique=True),
        Index("ix_upward_ratings_due", "state", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="requests.id")
    rater_unit_code: str = Field(foreign_key="units.code", max_length=32)
    rater_level: str = Field(max_length=16)
    rater_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    rated_unit_code: str = Field(foreign_key="units.code", max_length=32, index=True)
    rated_level: str = Field(max_length=16)
    how: str = Field(max_length=12)  # "pass_up" (by hand) or "escalation" (a missed deadline)
    state: str = Field(max_length=12)
    created_at: datetime
    due_at: datetime | None = None  # the next step: asking (pending) or lapsing (asked)
    asked_at: datetime | None = None
    rating: str | None = Field(default=None, max_length=16)
    comment: str | None = Field(default=None, max_length=1000)
    rated_at: datetime | None = None


class Organisation(SQLModel, table=True):
    """A body that claims as one (a district department, an enterprise, a social organisation):
    its volunteers may claim a shared need in its name, through a contact person; residents
    then see the organisation's name. Called "units" in the practice; the table is named
    `organisations` because `units` is the administrative tree."""

    __tablename__ = "organisations"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    name_en: str = Field(default="", max_length=100)
    kind: str = Field(max_length=16)  # domain.volunteers: department, enterprise, social
    # The area it serves (a town or community), or None for the whole district.
    unit_code: str | None = Field(default=None, foreign_key="units.code")
    created_at: datetime


class Volunteer(SQLModel, table=True):
    """A resident who serves (志愿者, or an in-service party member who reported to the
    community, 报到): the community or town they serve, the categories they offer.

    `status`: "pending" (applied, waiting for the coordinator), "approved", "declined",
    "paused" (away for a while: gets no claim cards), "left". A volunteer imported from the
    roster is approved and has no account until they open the bot and are matched by phone."""

    __tablename__ = "volunteers"
    __table_args__ = (
        Index("ix_volunteers_unit_status", "unit_code", "status"),
        Index("ux_volunteers_telegram_id", "telegram_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = Field(default=None, foreign_key="accounts.id", unique=True)
    name: str = Field(max_length=50)
    phone: str | None = Field(default=None, max_length=20, unique=True)
    # From the roster (volunteers.csv), or the account's once bound: how an imported
    # volunteer is recognised when they first open the bot.
    telegram_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    unit_code: str = Field(foreign_key="units.code")
    categories: str = Field(default="", max_length=500)  # ";"-separated catalog codes
    party_member: bool = Field(default=False)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id", index=True)
    # May claim in the organisation's name (its contact person).
    is_contact: bool = Field(default=False)
    status: str = Field(max_length=12)
    source: str = Field(default="chat", max_length=8)  # "chat" or "roster"
    created_at: datetime
    decided_at: datetime | None = None
    decided_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    paused_at: datetime | None = None
    left_at: datetime | None = None

    @property
    def category_list(self) -> list[str]:
        return [c for c in self.categories.split(";") if c]


class Claim(SQLModel, table=True):
    """A need offered to volunteers (📣), and who took it (认领). One row per offer; the
    request's `claim_id` names the live one. The holder of the need stays responsible.

    `state` (domain.claims): "offered" → "claimed" → "done" (the claimant reported it) →
    "confirmed" (the holder, or the time limit, confirmed; the need is resolved); or ended:
    "withdrawn" (the holder took the offer back), "taken_back" (the holder took a claimed need
    back), "released" (the claimant gave it back or left), "closed" (the need ended otherwise).
    `next_due_at` is the earliest of `widen_at` (offer the town next) and `confirm_due_at`
    (count the reported work as done)."""

    __tablename__ = "claims"
    __table_args__ = (
        Index("ix_claims_state_due", "state", "next_due_at"),
        Index("ix_claims_volunteer_state", "volunteer_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="requests.id", index=True)
    state: str = Field(max_length=12)
    offered_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")  # None: auto
    note: str | None = Field(default=None, max_length=500)
    offered_at: datetime
    # Whose volunteers see the offer: the community first, then the town (`widen_at`).
    reach_unit_code: str = Field(foreign_key="units.code", max_length=32)
    widen_at: datetime | None = None
    volunteer_id: int | None = Field(default=None, foreign_key="volunteers.id")
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id")
    claimed_at: datetime | None = None
    done_at: datetime | None = None
    done_note: str | None = Field(default=None, max_length=1000)
    done_media_kind: str | None = Field(default=None, max_length=8)
    done_media_file_id: str | None = Field(default=None, max_length=200)
    hours: float | None = None
    confirm_due_at: datetime | None = None
    confirmed_at: datetime | None = None
    ended_at: datetime | None = None
    next_due_at: datetime | None = None
    # The resident's verdict on the need this claim resolved (domain/claim_figures.py): the
    # claimant's record, copied when the verdict is given.
    solved: bool | None = None
    satisfaction: str | None = Field(default=None, max_length=16)
    rated_at: datetime | None = None


class Supporter(SQLModel, table=True):
    """A resident who said "➕ Me too" to an open need of their village rather than report the
    same again (共性需求): told of every step, asked for their own verdict. One per need per
    beneficiary (a family member may add a parent)."""

    __tablename__ = "supporters"
    __table_args__ = (
        Index("ux_supporters_request_beneficiary", "request_id", "beneficiary_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="requests.id")
    account_id: int = Field(foreign_key="accounts.id", index=True)
    beneficiary_id: int = Field(foreign_key="beneficiaries.id")
    created_at: datetime
    verdict_asked_at: datetime | None = None
    solved: bool | None = None
    satisfaction: str | None = Field(default=None, max_length=16)
    comment: str | None = Field(default=None, max_length=1000)
    rated_at: datetime | None = None
