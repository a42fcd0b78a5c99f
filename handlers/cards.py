"""Task cards for staff and notices for residents, shared by the conversations and the sweeps.

A task card is sent once per assignee with `ref = card:<request>:<staff>` and then edited in
place through the outbox whenever the request moves on.

Quiet hours: a notice about a non-urgent request that nobody asked for just now (the request
was accepted, passed up, reminded...) waits in the outbox until quiet hours end, unless the
person has been talking to the bot in the last half hour (then they are awake and waiting for
it). When someone writes to the bot, whatever waits for their chat goes out first
(`release_held`), so a held notice never holds back a reply.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from domain.claims import HELD_STATES, ClaimState, live_claim, offerable
from domain.deadlines import DEFAULT_POLICY, URGENT, Policy
from domain.i18n import TRADITIONAL, Translator, to_traditional, translator
from domain.labels import (
    LEVEL_LABELS,
    PRIORITY_LABELS,
    STATUS_LABELS,
    category_label,
    format_time,
    kind_label,
    mask_phone,
    relation_label,
    staff_label,
    unit_label,
)
from domain.lifecycle import Status
from domain.messages import Button, Outbound
from domain.outbox import enqueue, enqueue_edit, retire_keyboard
from domain.reach import account_reachable, reachable_chat
from domain.shared import supporter_accounts
from handlers.base import escape
from storage.chunk_memo import BURST_PREFIX, CARD_PREFIX, chunk_memo
from storage.database import ACCOUNTS_BY_TELEGRAM, held_get
from storage.models import (
    Account,
    Beneficiary,
    Claim,
    Organisation,
    OutboxMessage,
    Request,
    Staff,
    Volunteer,
)
from storage.outbox import latest_sent_message_id
from storage.roster_cache import unit_of

TASK_PREFIX = "t"
# The same notice to a linked family member (the beneficiary's own account) is named
# "family:<request>": a refusal there says nothing about the reporter.
FAMILY_NOTICE_PREFIX = "family"
# A notice to the reporter about a request is named "notice:<request>", so that a refusal of it
# (they blocked the bot) can be traced back to the request (schedules/refusals.py).
NOTICE_PREFIX = "notice"
# The same notice to a resident who said "me too" (domain/shared.py): "support:<request>".
SUPPORT_NOTICE_PREFIX = "support"
ANSWER_PREFIX = "q"
# Offers to volunteers and claims (handlers/offers.py): "of:<action>:<id>".
OFFER_PREFIX = "of"
# Someone who talked to the bot this recently is awake: quiet hours do not hold their notices.
IN_TOUCH = timedelta(minutes=30)


# Quiet hours --------------------------------------------------------------------------------


async def in_touch(session: AsyncSession, chat_id: int, now: datetime) -> bool:
    """Whether the bot and this chat exchanged messages in the last half hour (a reply or a
    notice that went straight out, not one that waited)."""
    row = await session.exec(
        select(OutboxMessage.id)
        .where(OutboxMessage.chat_id == chat_id)
        .where(col(OutboxMessage.created_at) >= now - IN_TOUCH)
        .where(col(OutboxMessage.next_attempt_at) <= col(OutboxMessage.created_at))
        .limit(1)
    )
    return row.first() is not None


async def hold_until(
    session: AsyncSession,
    chat_id: int,
    request: Request,
    now: datetime,
    zone: ZoneInfo | None,
    policy: Policy | None = None,
) -> datetime | None:
    """When an unasked-for notice about `request` may go to `chat_id`: None for now, or the end
    of quiet hours. Notices about urgent requests never wait."""
    if zone is None:
        return None
    policy = policy or DEFAULT_POLICY
    release = policy.hold_until(now, zone, urgent=request.priority == URGENT)
    if release is None or await in_touch(session, chat_id, now):
        return None
    return release


def held_notices(
    chat_id: int | ColumnElement[int], now: datetime | ColumnElement[datetime]
) -> Select[tuple[int | None]]:
    """The chat's notices that wait for the end of quiet hours (never tried yet); the chat and
    the moment may be bound parameters (the dispatcher's statement is built once)."""
    return (
        select(OutboxMessage.id)
        .where(OutboxMessage.chat_id == chat_id, OutboxMessage.status == "pending")
        .where(OutboxMessage.attempts == 0, col(OutboxMessage.next_attempt_at) > now)
    )


async def release_held(
    session: AsyncSession, chat_id: int, now: datetime, *, any_held: bool | None = None
) -> None:
    """The chat's user is here: what waited for the morning goes out now, before the reply.
    `any_held` is whether `held_notices` finds any, when the caller already asked (the
    dispatcher asks in the statement that reads the sender's account)."""
    if any_held is None:
        any_held = (await session.exec(held_notices(chat_id, now).limit(1))).first() is not None
    if not any_held:
        return
    held = col(OutboxMessage.next_attempt_at) > now
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id, col(OutboxMessage.status) == "pending")
        .where(col(OutboxMessage.attempts) == 0, held)
        .values(next_attempt_at=now)
    )  # type: ignore[call-overload]


def card_ref(request_id: int, staff_id: int) -> str:
    return f"{CARD_PREFIX}:{request_id}:{staff_id}"


async def account_by_telegram(session: AsyncSession, telegram_id: int | None) -> Account | None:
    """The account of a Telegram user, read once per session (a card, a notice and a refreshed
    card to the same person in one escalation each asked for their language). The session
    forgets what it knows when it is given a new account (storage.database.HeldSession)."""
    if telegram_id is None:
        return None
    known: dict[int, Account | None] = session.info.setdefault(ACCOUNTS_BY_TELEGRAM, {})
    if telegram_id not in known:
        known[telegram_id] = (
            await session.exec(select(Account).where(Account.telegram_id == telegram_id))
        ).first()
    return known[telegram_id]


async def staff_translator(session: AsyncSession, staff: Staff) -> Translator:
    account = await account_by_telegram(session, staff.telegram_id)
    return translator(account.language if account else "zh_CN")


async def place_of(session: AsyncSession, t: Translator, grid_code: str) -> str:
    names: list[str] = []
    code: str | None = grid_code
    while code is not None:
        unit = await unit_of(session, code)
        if unit is None or unit.level == "district":
            break
        names.append(unit_label(t, unit))
        code = unit.parent_code
    return " › ".join(reversed(names))


async def request_summary(
    session: AsyncSession, t: Translator, zone: ZoneInfo, request: Request, *, full_phone: bool
) -> str:
    """The request as staff see it: what, for whom, where, by whom, and where it stands."""
    beneficiary = await held_get(session, Beneficiary, request.beneficiary_id)
    reporter = await held_get(session, Account, request.reporter_account_id)
    assignee = (
        await held_get(session, Staff, request.assignee_staff_id)
        if request.assignee_staff_id
        else None
    )
    lines = [
        f"<b>{request.reference}</b> · {escape(category_label(t, request.category))}"
        f" ({escape(kind_label(t, request.kind))})",
        t._(
            "Status: {status} · Level: {level}",
            status=t._(STATUS_LABELS.get(request.status, request.status)),
            level=t._(LEVEL_LABELS.get(request.level, request.level)),
        ),
        "📍 " + escape(await place_of(session, t, request.grid_code)),
    ]
    if beneficiary is not None:
        who = escape(beneficiary.name)
        if not beneficiary.is_self and beneficiary.relation:
            who += f" ({escape(relation_label(t, beneficiary.relation))})"
        if beneficiary.phone:
            phone = beneficiary.phone if full_phone else mask_phone(beneficiary.phone)
            who += f" · ☎ {escape(phone)}"
        lines.append(t._("👤 For: {who}", who=who))
        if not beneficiary.is_self and reporter is not None:
            lines.append(
                t._(
                    "🙋 Reported by: {name} (family member, via Telegram)",
                    name=escape(reporter.display_name or "?"),
                )
            )
    if request.description:
        lines.append("📝 " + escape(request.description))
    if request.media_kind == "voice":
        lines.append(t._("🎤 Voice message attached above"))
    elif request.media_kind == "photo":
        lines.append(t._("🖼 Photo attached above"))
    lines.append(t._("🕒 Submitted: {time}", time=format_time(request.created_at, zone)))
    lines.extend(shared_lines(t, request))
    lines.append(t._("Handled by: {who}", who=escape(staff_label(t, assignee))))
    lines.extend(deadline_lines(t, zone, request))
    if request.reopen_count:
        lines.append(t._("🔁 Reopened {count} time(s)", count=request.reopen_count))
    if request.result_note:
        lines.append(t._("✅ Result: {note}", note=escape(request.result_note)))
    return "\n".join(lines)


def shared_lines(t: Translator, request: Request) -> list[str]:
    """A shared need (共性需求) and how many more residents have it (never who they are)."""
    lines: list[str] = []
    if request.shared_at is not None:
        lines.append(t._("🤝 Shared need of the village"))
    if request.supporter_count:
        lines.append(
            t.ngettext(
                "👥 {n} more resident",
                "👥 {n} more residents",
                request.supporter_count,
            )
        )
    return lines


def deadline_lines(t: Translator, zone: ZoneInfo, request: Request) -> list[str]:
    """Priority and the running deadlines, as the card and the timeline show them."""
    lines: list[str] = []
    if request.priority in PRIORITY_LABELS:
        lines.append(t._(PRIORITY_LABELS[request.priority]))
    if request.status not in (Status.ASSIGNED, Status.IN_PROGRESS):
        return lines
    if request.paused_at is not None:
        lines.append(
            t._(
                "⏸ Waiting for the resident's answer since {time}; the clock is paused.",
                time=format_time(request.paused_at, zone),
            )
        )
    if request.status == Status.ASSIGNED and request.accept_due_at is not None:
        lines.append(t._("⏳ Accept by: {time}", time=format_time(request.accept_due_at, zone)))
    if request.resolve_due_at is not None:
        lines.append(t._("⏳ Resolve by: {time}", time=format_time(request.resolve_due_at, zone)))
    return lines


def task_buttons(t: Translator, request: Request, staff: Staff) -> list[list[Button]]:
    """The actions the assignee may take now; none for anyone else."""
    if request.assignee_staff_id != staff.id or request.id is None:
        return []
    rid = request.id
    rows: list[list[Button]] = []
    urgent = (
        [Button(t._("🚨 Mark urgent"), data=f"{TASK_PREFIX}:urgent:{rid}")]
        if request.priority != URGENT
        else []
    )
    if request.status == Status.ASSIGNED:
        rows.append(
            [
                Button(t._("✅ Accept"), data=f"{TASK_PREFIX}:accept:{rid}"),
                Button(t._("🧩 Accept as complex"), data=f"{TASK_PREFIX}:complex:{rid}"),
            ]
        )
        rows.append([Button(t._("⬆ Pass up"), data=f"{TASK_PREFIX}:decline:{rid}"), *urgent])
    elif request.status == Status.IN_PROGRESS:
        rows.append([Button(t._("✔ Mark resolved"), data=f"{TASK_PREFIX}:resolve:{rid}")])
        if request.paused_at is None:
            ask = Button(t._("❓ Ask the resident"), data=f"{TASK_PREFIX}:ask:{rid}")
        else:
            ask = Button(t._("▶ Resume the clock"), data=f"{TASK_PREFIX}:resume:{rid}")
        rows.append([ask, Button(t._("⬆ Pass up"), data=f"{TASK_PREFIX}:decline:{rid}")])
        if urgent:
            rows.append(urgent)
    return rows


def organisation_label(t: Translator, organisation: Organisation | None) -> str:
    if organisation is None:
        return "?"
    if t.language == "en" and organisation.name_en:
        return organisation.name_en
    return to_traditional(organisation.name) if t.language == TRADITIONAL else organisation.name


def short_name(volunteer: Volunteer) -> str:
    """What residents are told of a volunteer: a first name (the first word), or for a name
    written without spaces (Chinese) the family name only."""
    name = volunteer.name.strip()
    if " " in name:
        return name.split()[0]
    return name[:1] or "?"


async def claimant_label(
    session: AsyncSession, t: Translator, claim: Claim, *, for_staff: bool
) -> str:
    """Who holds a claim: for the holder, the volunteer's name, phone, party membership and
    organisation; for residents, the unit's name, or "volunteer" and a first name. Escaped."""
    volunteer = await session.get(Volunteer, claim.volunteer_id) if claim.volunteer_id else None
    body = await session.get(Organisation, claim.organisation_id) if claim.organisation_id else None
    if not for_staff:
        if body is not None:
            return escape(organisation_label(t, body))
        return t._("volunteer {name}", name=escape(short_name(volunteer) if volunteer else "?"))
    if volunteer is None:
        return "?"
    parts = [escape(volunteer.name)]
    if volunteer.phone:
        parts.append(f"☎ {escape(volunteer.phone)}")
    if volunteer.party_member:
        parts.append(t._("party member"))
    home = (
        await session.get(Organisation, volunteer.organisation_id)
        if volunteer.organisation_id and body is None
        else None
    )
    if home is not None:
        parts.append(escape(organisation_label(t, home)))
    person = " · ".join(parts)
    if body is not None:
        return t._(
            "{unit} (through {person})", unit=escape(organisation_label(t, body)), person=person
        )
    return person


async def offer_part(
    session: AsyncSession, t: Translator, request: Request
) -> tuple[list[str], list[list[Button]]]:
    """The holder's view of the offer to volunteers: a line, and the button that goes with it
    (offer it; withdraw the offer; take a claimed need back)."""
    if request.id is None or request.status not in (Status.ASSIGNED, Status.IN_PROGRESS):
        return [], []
    rid = request.id
    claim = await live_claim(session, request)
    if claim is None:
        if not offerable(request.category):
            return [], []
        return [], [[Button(t._("📣 Offer to volunteers"), data=f"{OFFER_PREFIX}:offer:{rid}")]]
    if claim.state == ClaimState.OFFERED:
        reach = escape(unit_label(t, await unit_of(session, claim.reach_unit_code)))
        return (
            [t._("📣 Offered to volunteers ({area}), not claimed yet", area=reach)],
            [[Button(t._("Withdraw offer"), data=f"{OFFER_PREFIX}:withdraw:{rid}")]],
        )
    if ClaimState(claim.state) in HELD_STATES:
        who = await claimant_label(session, t, claim, for_staff=True)
        return (
            [t._("🙋 Claimed by {who}", who=who)],
            [[Button(t._("↩ Take it back"), data=f"{OFFER_PREFIX}:back:{rid}")]],
        )
    return [], []


async def task_card(
    session: AsyncSession, t: Translator, zone: ZoneInfo, request: Request, staff: Staff
) -> tuple[str, list[list[Button]]]:
    mine = request.assignee_staff_id == staff.id
    text = await request_summary(session, t, zone, request, full_phone=mine)
    if not mine:
        text = t._("This task has moved on.") + "\n\n" + text
    buttons = task_buttons(t, request, staff)
    if mine:
        lines, rows = await offer_part(session, t, request)
        if lines:
            text += "\n" + "\n".join(lines)
        buttons.extend(rows)
    beneficiary = await held_get(session, Beneficiary, request.beneficiary_id)
    if mine and beneficiary is not None and beneficiary.phone and request.id is not None:
        buttons.append([Button(t._("📞 Contact card"), data=f"{TASK_PREFIX}:phone:{request.id}")])
    return text, buttons


async def send_task_card(
    session: AsyncSession,
    zone: ZoneInfo,
    request: Request,
    staff: Staff,
    now: datetime,
    *,
    lead: Callable[[Translator], str] | None = None,
    not_before: datetime | None = None,
    burst_window: timedelta | None = None,
) -> None:
    """Push a new task card (and the resident's photo or voice message) to the assignee.

    `lead` writes the card's first line in the assignee's language (default "New task").
    Nothing goes to someone the bot cannot reach (domain.reach). With `burst_window`, a need
    that joins others of the same reporter the assignee got within it and has not accepted
    yet is shown in one summary card for them all (`send_burst_summary`), not a card of its
    own."""
    chat_id = reachable_chat(staff)
    if chat_id is None or request.id is None:
        return
    t = await staff_translator(session, staff)
    if burst_window:
        mates = await burst_mates(session, request, staff, now, burst_window)
        if mates:
            await send_burst_summary(
                session, t, chat_id, [*mates, request], staff, now, burst_window, not_before
            )
            return
    if request.media_kind and request.media_file_id:
        enqueue(
            session,
            Outbound(
                chat_id=chat_id,
                text=request.reference,
                media_kind=request.media_kind,
                media_file_id=request.media_file_id,
            ),
            now,
            not_before=not_before,
        )
    text, buttons = await task_card(session, t, zone, request, staff)
    heading = lead(t) if lead else t._("🆕 New task")
    # Edits go to the newest copy of the card; an older one keeps its text, not its buttons.
    ref = card_ref(request.id, staff.id or 0)
    await retire_keyboard(
        session, chat_id, await latest_sent_message_id(session, chat_id, ref), ref, now
    )
    enqueue(
        session,
        Outbound(
            chat_id=chat_id,
            text=f"<b>{heading}</b>\n{text}",
            buttons=tuple(tuple(r) for r in buttons),
            ref=card_ref(request.id, staff.id or 0),
        ),
        now,
        not_before=not_before,
    )


# A burst: one summary card ---------------------------------------------------------------------

BURST_SHOWN = 16  # needs listed, and buttons, on a summary card; /tasks lists them all
BURST_SNIPPET = 40  # characters of each description


async def burst_mates(
    session: AsyncSession, request: Request, staff: Staff, now: datetime, window: timedelta
) -> list[Request]:
    """The other needs of `request`'s reporter that reached `staff` within `window` and are
    still waiting to be accepted, oldest first."""
    memo = chunk_memo(session)
    known = memo.burst_mates(request, staff, now, window) if memo is not None else None
    if known is not None:  # the sweep's chunk read them (storage.chunk_memo)
        return known
    rows = await session.exec(
        select(Request)
        .where(Request.reporter_account_id == request.reporter_account_id)
        .where(Request.assignee_staff_id == staff.id, Request.status == Status.ASSIGNED.value)
        .where(col(Request.level_assigned_at) >= now - window)
        .where(col(Request.id) != request.id)
        .order_by(col(Request.id))
    )
    return list(rows.all())


def burst_ref(reporter_account_id: int, staff_id: int, first_request_id: int) -> str:
    return f"{BURST_PREFIX}:{reporter_account_id}:{staff_id}:{first_request_id}"


async def send_burst_summary(
    session: AsyncSession,
    t: Translator,
    chat_id: int,
    burst: list[Request],
    staff: Staff,
    now: datetime,
    window: timedelta,
    not_before: datetime | None,
) -> None:
    """One card for a burst of needs from one person: each listed, with a button that opens
    its own task card (to accept it, pass it up...). The card is named after the burst's first
    need and kept up to date: rewritten in the outbox while it waits there, edited in place
    once sent, so a burst of any size is one message to the assignee."""
    first = burst[0]
    assert first.id is not None
    reporter = await held_get(session, Account, first.reporter_account_id)
    name = reporter.display_name if reporter is not None and reporter.display_name else "?"
    lines = [
        "<b>"
        + t.ngettext(
            "🗂 {n} task from the same person, {name}, in the last {minutes} minutes",
            "🗂 {n} tasks from the same person, {name}, in the last {minutes} minutes",
            len(burst),
            name=escape(name),
            minutes=int(window.total_seconds() // 60),
        )
        + "</b>",
        t._("None of them is accepted yet. Open each to accept it or pass it up."),
    ]
    buttons: list[Button] = []
    for request in burst[:BURST_SHOWN]:
        snippet = request.description[:BURST_SNIPPET]
        if len(request.description) > BURST_SNIPPET:
            snippet += "…"
        lines.append(
            f"• <b>{request.reference}</b> {escape(category_label(t, request.category))}"
            + (f" · {escape(snippet)}" if snippet else "")
        )
        buttons.append(
            Button(
                t._("Open {ref}", ref=request.reference),
                data=f"v:{request.id}",
            )
        )
    if len(burst) > BURST_SHOWN:
        lines.append(t._("…and {n} more: /tasks lists them all.", n=len(burst) - BURST_SHOWN))
    lines.append(
        t._(
            "If this is a flood, a coordinator can send /nuisance {ref}: this person's new "
            "needs then go to the coordinator to review first.",
            ref=first.reference,
        )
    )
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    ref = burst_ref(first.reporter_account_id, staff.id or 0, first.id)
    text = "\n".join(lines)
    waiting = (
        await session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id, OutboxMessage.ref_key == ref)
            .where(OutboxMessage.status == "pending", col(OutboxMessage.claimed_at).is_(None))
            .where(OutboxMessage.attempts == 0)
            .order_by(col(OutboxMessage.id).desc())
            .limit(1)
        )
    ).first()
    if waiting is not None:
        # Not sent yet: it simply shows the burst as it is now when it goes.
        edit_ref = waiting.payload.get("edit_ref")
        waiting.payload = Outbound(
            chat_id=chat_id, text=text, buttons=rows, edit_ref=edit_ref
        ).to_payload()
        session.add(waiting)
        return
    shown = (
        await session.exec(
            select(OutboxMessage.id)
            .where(OutboxMessage.chat_id == chat_id, OutboxMessage.ref_key == ref)
            .limit(1)
        )
    ).first()
    message = (
        Outbound(chat_id=chat_id, text=text, buttons=rows, edit_ref=ref)
        if shown is not None
        else Outbound(chat_id=chat_id, text=text, buttons=rows, ref=ref)
    )
    enqueue(session, message, now, not_before=not_before)


async def summarised_only(
    session: AsyncSession,
    chat_id: int,
    request: Request,
    staff: Staff,
    window: timedelta | None,
) -> bool:
    """Whether `staff` saw the request only in a burst's summary card (never a card of its
    own): reminders and "moved on" notices about it are then not sent one by one; the burst's
    first need, which has its own card, carries them."""
    if not window or request.id is None or staff.id is None:
        return False
    # Read after an escalation too (the request has its new owner by then), so bounded by
    # when the need came in rather than when it reached `staff`.
    since = request.created_at - window
    # The summary cards' names all start with this prefix. Asked as a range of names rather
    # than a LIKE, which SQLite cannot answer from the ref_key index: it read every row of the
    # chat since `since` instead, and an escalation in a backlog of 1,000 for one grid member
    # cost 3.5 ms and growing (issue 14). ";" is the character after ":".
    prefix = f"{BURST_PREFIX}:{request.reporter_account_id}:{staff.id}:"
    memo = chunk_memo(session)
    own = card_ref(request.id, staff.id)
    if memo is not None and memo.covers(own) and memo.covers(prefix):
        # The sweep's chunk read both (storage.chunk_memo): no statement.
        own_card = bool(memo.named.get((chat_id, own)))
        summary = any(
            row.created_at >= since
            for row in memo.rows_named_from(chat_id, prefix, prefix[:-1] + ";")
        )
        return summary and not own_card
    in_summary = (
        select(OutboxMessage.id)
        .where(col(OutboxMessage.ref_key) >= prefix, col(OutboxMessage.ref_key) < prefix[:-1] + ";")
        .where(OutboxMessage.chat_id == chat_id)
        .where(col(OutboxMessage.created_at) >= since)
    )
    # Both questions in one statement: a card of its own, and a summary card.
    row = await session.exec(
        select(
            exists(_card_rows(chat_id, request.id, staff.id)),
            exists(in_summary),
        )
    )
    own_card, summary = row.one()
    return bool(summary) and not own_card


async def card_shown(session: AsyncSession, chat_id: int, request_id: int, staff_id: int) -> bool:
    """Whether `staff` was ever sent a card of its own for the request (not only a summary)."""
    row = await session.exec(_card_rows(chat_id, request_id, staff_id).limit(1))
    return row.first() is not None


def _card_rows(chat_id: int, request_id: int, staff_id: int) -> Select[tuple[int | None]]:
    return (
        select(OutboxMessage.id)
        .where(OutboxMessage.chat_id == chat_id)
        .where(OutboxMessage.ref_key == card_ref(request_id, staff_id))
    )


async def refresh_task_card(
    session: AsyncSession,
    zone: ZoneInfo,
    request: Request,
    staff: Staff,
    now: datetime,
    *,
    not_before: datetime | None = None,
) -> None:
    """Edit the assignee's card in place to show the request's new state."""
    chat_id = reachable_chat(staff)
    if chat_id is None or request.id is None:
        return
    t = await staff_translator(session, staff)
    text, buttons = await task_card(session, t, zone, request, staff)
    # Unchanged (a second tap on a card that moved on): no edit, which Telegram would refuse
    # as "message is not modified".
    await enqueue_edit(
        session,
        Outbound(
            chat_id=chat_id,
            text=text,
            buttons=tuple(tuple(r) for r in buttons),
            edit_ref=card_ref(request.id, staff.id or 0),
        ),
        now,
        not_before=not_before,
    )


async def notify_reporter(
    session: AsyncSession,
    request: Request,
    now: datetime,
    build: Callable[[Translator], str],
    *,
    zone: ZoneInfo | None = None,
    policy: Policy | None = None,
    buttons: Callable[[Translator], list[Button]] | None = None,
    supporters: bool = True,
) -> bool:
    """Tell the reporter about their request in their own language (`build` writes the text),
    and the family member it is for when their own account is linked to it (they hear what the
    reporter hears); False when neither can be told (Telegram refused us since they last wrote).

    With `zone`, the notice keeps quiet hours (unless the request is urgent). `buttons` adds
    buttons in front of "See the timeline".

    The residents who said "me too" (domain/shared.py) get the same notice, each in their own
    language, under a line saying it is a need they support; without the buttons (the
    timeline and any answer are the reporter's). `supporters=False` for what concerns the
    reporter alone (a question to them)."""
    told = False
    residents = await residents_within_reach(session, request)
    for account in residents:
        t = translator(account.language)
        row = [
            *(buttons(t) if buttons else []),
            Button(t._("See the timeline"), data=f"v:{request.id}"),
        ]
        prefix = (
            NOTICE_PREFIX if account.id == request.reporter_account_id else FAMILY_NOTICE_PREFIX
        )
        enqueue(
            session,
            Outbound(
                chat_id=account.chat_id,
                text=build(t),
                buttons=(tuple(row),),
                ref=f"{prefix}:{request.id}",
            ),
            now,
            not_before=await hold_until(session, account.chat_id, request, now, zone, policy),
        )
        told = True
    if supporters:
        told_ids = {a.id for a in residents} | {request.reporter_account_id}
        for account in await supporter_accounts(session, request):
            if account.id in told_ids or not account_reachable(account):
                continue
            told_ids.add(account.id)
            t = translator(account.language)
            enqueue(
                session,
                Outbound(
                    chat_id=account.chat_id,
                    text=t._("👥 About a need you support:") + "\n" + build(t),
                    ref=f"{SUPPORT_NOTICE_PREFIX}:{request.id}",
                ),
                now,
                not_before=await hold_until(session, account.chat_id, request, now, zone, policy),
            )
    return told


async def linked_account_id(session: AsyncSession, request: Request) -> int | None:
    """The account of the family member a request is for, when they opened their personal
    link (and are not the reporter)."""
    beneficiary = await held_get(session, Beneficiary, request.beneficiary_id)
    if beneficiary is None or beneficiary.account_id in (None, request.reporter_account_id):
        return None
    return beneficiary.account_id


async def is_resident_of(session: AsyncSession, request: Request, account: Account | None) -> bool:
    """The reporter, or the linked family member the request is for."""
    if account is None or account.id is None:
        return False
    if request.reporter_account_id == account.id:
        return True
    return await linked_account_id(session, request) == account.id


async def residents_within_reach(session: AsyncSession, request: Request) -> list[Account]:
    """The reporter and the linked family member, those the bot can still write to."""
    people: list[Account] = []
    reporter = await held_get(session, Account, request.reporter_account_id)
    if reporter is not None and account_reachable(reporter):
        people.append(reporter)
    linked = await linked_account_id(session, request)
    family = await held_get(session, Account, linked) if linked is not None else None
    if family is not None and account_reachable(family):
        people.append(family)
    return people


async def reporter_within_reach(session: AsyncSession, request: Request) -> Account | None:
    reporter = await held_get(session, Account, request.reporter_account_id)
    return reporter if account_reachable(reporter) else None


async def tell_staff(
    session: AsyncSession,
    staff: Staff | None,
    now: datetime,
    build: Callable[[Translator], str],
    *,
    request: Request | None = None,
    not_before: datetime | None = None,
) -> None:
    """A short message to a staff member in their language, with the task's view button."""
    chat_id = reachable_chat(staff)
    if staff is None or chat_id is None:
        return
    t = await staff_translator(session, staff)
    buttons: tuple[tuple[Button, ...], ...] = ()
    if request is not None and request.id is not None and request.assignee_staff_id == staff.id:
        buttons = ((Button(t._("Open the task"), data=f"v:{request.id}"),),)
    enqueue(
        session,
        Outbound(chat_id=chat_id, text=build(t), buttons=buttons),
        now,
        not_before=not_before,
    )


async def announce_new_owner(
    session: AsyncSession,
    zone: ZoneInfo,
    request: Request,
    previous: Staff | None,
    owner: Staff,
    now: datetime,
    *,
    lead: Callable[[Translator], str],
    tell_previous: Callable[[Translator], str] | None = None,
    policy: Policy | None = None,
    hold: bool = False,
    moved_up: bool = True,
    burst_window: timedelta | None = None,
) -> None:
    """A request changed hands (escalated, passed up, reassigned): the previous owner's card
    shows it moved on (with `tell_previous` as a message), the new owner gets a card headed
    `lead`, and the resident is told who has it now. With `hold`, staff messages about a
    non-urgent request keep quiet hours too (the sweep's; a person acting gets replies)."""

    async def staff_hold(staff: Staff | None) -> datetime | None:
        chat_id = reachable_chat(staff)
        if not hold or chat_id is None:
            return None
        return await hold_until(session, chat_id, request, now, zone, policy)

    if previous is not None and previous.id != owner.id:
        not_before = await staff_hold(previous)
        previous_chat = reachable_chat(previous)
        # A need they saw only in a burst's summary card has no card of its own to update, and
        # the burst's first need tells them it moved on.
        if previous_chat is None or not await summarised_only(
            session, previous_chat, request, previous, burst_window
        ):
            await refresh_task_card(session, zone, request, previous, now, not_before=not_before)
            if tell_previous is not None:
                await tell_staff(session, previous, now, tell_previous, not_before=not_before)
    await send_task_card(
        session,
        zone,
        request,
        owner,
        now,
        lead=lead,
        not_before=await staff_hold(owner),
        burst_window=burst_window,
    )

    def resident_text(t: Translator) -> str:
        who = escape(staff_label(t, owner))
        if not moved_up:
            return t._(
                "🔄 Your request <b>{ref}</b> is now with {who}.", ref=request.reference, who=who
            )
        return t._(
            "⏫ Your request <b>{ref}</b> is now with {who}, at the {level} level, "
            "so that it gets done.",
            ref=request.reference,
            who=who,
            level=t._(LEVEL_LABELS.get(request.level, request.level)),
        )

    await notify_reporter(session, request, now, resident_text, zone=zone, policy=policy)
