"""A resident's personal data: see it, erase it; and who opened a phone number.

    /mydata             what Huiyin keeps about me and the people I registered: a message, and
                        the whole of it (timelines included) as a JSON file
    /forget ──► "erase everything?" ──erase──► anonymised, open requests withdrawn (their
               holders told), the chat a stranger to the bot from then on
    /forget HY000123    (a coordinator, town officer or the district office, for a resident who
               asked by phone) ──► "erase the resident who reported it?" ──erase──► the same,
               and the resident is told
    /phonelog           (the district office) who saw a full phone number, newest first

What erasure does, and keeps, is in domain/privacy.py and docs/privacy.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from domain.i18n import N_, Translator, translator
from domain.labels import STATUS_LABELS, category_label, format_time, relation_label
from domain.messages import Outbound
from domain.privacy import (
    CLI_EXPORT,
    CONTACT_CARD,
    ERASE_ROLES,
    EXPORT,
    FOLLOW_UP_CALL,
    PHONELOG_ROLES,
    Erasure,
    PersonalData,
    erasable,
    erase_account,
    personal_data,
    phone_access_log,
)
from domain.volunteers import STATUS_LABELS as VOLUNTEER_STATUS_LABELS
from handlers.base import Context, Router, Step, escape
from handlers.cards import refresh_task_card, tell_staff
from handlers.common import show_menu
from handlers.lookup import in_area
from handlers.picker import place_path
from storage.models import Account, Request, Staff, format_reference, parse_reference

router = Router()
FLOW = "forget"
PHONELOG_SHOWN = 50
SHOWN_REQUESTS = 20


# /mydata ------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def data_file(data: PersonalData) -> dict[str, Any]:
    """Everything kept, as plain JSON (codes, not translated labels)."""
    account = data.account
    kept: dict[str, Any] = {
        "account": {
            "telegram_id": account.telegram_id,
            "display_name": account.display_name,
            "language": account.language,
            "consent_at": _iso(account.consent_at),
            "home_grid": account.home_grid_code,
            "created_at": _iso(account.created_at),
        },
        "people": [
            {
                "self": b.is_self,
                "name": b.name,
                "relation": b.relation,
                "grid": b.grid_code,
                "phone": b.phone,
                "told_at": _iso(b.informed_at),
                "linked_to_own_telegram": b.account_id is not None,
                "created_at": _iso(b.created_at),
            }
            for b in data.beneficiaries
        ],
        "requests": [
            {
                "reference": r.reference,
                "for": next((b.name for b in data.beneficiaries if b.id == r.beneficiary_id), ""),
                "kind": r.kind,
                "category": r.category,
                "description": r.description,
                "media": r.media_kind,
                "grid": r.grid_code,
                "status": r.status,
                "level": r.level,
                "created_at": _iso(r.created_at),
                "closed_at": _iso(r.closed_at),
                "result_note": r.result_note,
                "solved": r.solved,
                "satisfaction": r.satisfaction,
                "comment": r.verdict_comment,
                "sensitive_consent_at": _iso(r.sensitive_consent_at),
                "timeline": [
                    {"at": _iso(e.at), "action": e.action, "note": e.note}
                    for e in data.events.get(r.id or 0, [])
                ],
            }
            for r in data.requests
        ],
        "supporting": [
            {
                "reference": r.reference,
                "for": next((b.name for b in data.beneficiaries if b.id == s.beneficiary_id), ""),
                "category": r.category,
                "status": r.status,
                "since": _iso(s.created_at),
                "solved": s.solved,
                "satisfaction": s.satisfaction,
                "comment": s.comment,
                "rated_at": _iso(s.rated_at),
            }
            for s, r in data.supported
        ],
    }
    volunteer = data.volunteer
    if volunteer is not None:
        kept["volunteer"] = {
            "name": volunteer.name,
            "phone": volunteer.phone,
            "serves": volunteer.unit_code,
            "categories": volunteer.category_list,
            "party_member": volunteer.party_member,
            "organisation_id": volunteer.organisation_id,
            "status": volunteer.status,
            "created_at": _iso(volunteer.created_at),
        }
    return kept


async def data_message(ctx: Context, data: PersonalData) -> str:
    account = data.account
    lines = [ctx._("<b>What Huiyin keeps about you</b>")]
    lines.append(
        ctx._(
            "Your Telegram name: {name}. Agreed on {date}.",
            name=escape(account.display_name or "—"),
            date=format_time(account.consent_at, ctx.zone) if account.consent_at else "—",
        )
    )
    if account.home_grid_code:
        place = await place_path(ctx, account.home_grid_code)
        lines.append(ctx._("Where you live: {place}", place=escape(place)))
    if ctx.staff is not None:
        lines.append(
            ctx._(
                "Roster entry: {name}, {phone} (kept by the district office).",
                name=escape(ctx.staff.name),
                phone=escape(ctx.staff.phone),
            )
        )
    family = [b for b in data.beneficiaries if not b.is_self]
    if family:
        lines.append("")
        lines.append(ctx._("<b>Family members you registered</b>"))
    for member in family:
        parts = [escape(member.name), escape(relation_label(ctx.t, member.relation))]
        parts.append(escape(await place_path(ctx, member.grid_code)))
        if member.phone:
            parts.append("☎ " + escape(member.phone))
        if member.informed_at:
            parts.append(
                ctx._("you told them on {date}", date=format_time(member.informed_at, ctx.zone))
            )
        if member.account_id is not None:
            parts.append(ctx._("linked to their own Telegram"))
        lines.append("• " + " · ".join(parts))
    lines.append("")
    lines.append(ctx.t.ngettext("<b>{n} request</b>", "<b>{n} requests</b>", len(data.requests)))
    for request in data.requests[-SHOWN_REQUESTS:]:
        status = ctx._(STATUS_LABELS.get(request.status, request.status))
        line = (
            f"• {request.reference} · {escape(category_label(ctx.t, request.category))} · "
            f"{escape(status)} · {format_time(request.created_at, ctx.zone)}"
        )
        if request.description:
            line += " · " + escape(request.description[:60])
        lines.append(line)
    if data.volunteer is not None:
        lines.append("")
        lines.append(
            ctx._(
                "Volunteer profile: {name}, serving {place} ({status}); /volunteer shows it.",
                name=escape(data.volunteer.name),
                place=escape(await place_path(ctx, data.volunteer.unit_code)),
                status=ctx._(
                    VOLUNTEER_STATUS_LABELS.get(data.volunteer.status, data.volunteer.status)
                ),
            )
        )
    if data.supported:
        lines.append("")
        lines.append(
            ctx.t.ngettext(
                "<b>{n} need you support (“me too”)</b>",
                "<b>{n} needs you support (“me too”)</b>",
                len(data.supported),
            )
        )
    for supporter, request in data.supported[-SHOWN_REQUESTS:]:
        status = ctx._(STATUS_LABELS.get(request.status, request.status))
        lines.append(
            f"• {request.reference} · {escape(category_label(ctx.t, request.category))} · "
            f"{escape(status)} · {format_time(supporter.created_at, ctx.zone)}"
        )
    lines.append("")
    lines.append(
        ctx._("The attached file holds all of it, with each request's history. /forget erases it.")
    )
    return "\n".join(lines)


@router.command("mydata")
async def my_data(ctx: Context) -> None:
    account = ctx.account
    if not erasable(account):
        ctx.reply(ctx._("We keep nothing about you. Send /start to begin."))
        return
    assert account is not None
    data = await personal_data(ctx.session, account)
    ctx.reply(await data_message(ctx, data))
    body = json.dumps(data_file(data), ensure_ascii=False, indent=2).encode("utf-8")
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=ctx._("📎 Your data at Huiyin, {date}", date=format_time(ctx.now, ctx.zone)),
            upload_kind="document",
            upload_name="huiyin-mydata.json",
            upload_bytes=body,
        )
    )


# /forget ------------------------------------------------------------------------------------


@router.command("forget")
async def forget(ctx: Context) -> None:
    args = ctx.inbound.args.strip()
    if ctx.staff is not None:
        await forget_for_resident(ctx, args)
        return
    if not erasable(ctx.account):
        ctx.reply(ctx._("We keep nothing about you. Send /start to begin."))
        return
    ctx.go(FLOW, "self")
    await render_forget_self(ctx)


async def render_forget_self(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "<b>Withdraw your consent and erase your data?</b>\n"
            "Your Telegram name, where you live, the family members you registered and "
            "everything you wrote in your requests are erased. Requests still open are "
            "withdrawn and their holders told. What stays, without your name: that a need of "
            "that kind was reported in that grid, and how it was handled, so that the "
            "community's figures stay right. This cannot be undone.\n"
            "/mydata first, if you want a copy."
        ),
        [
            [ctx.choice(ctx._("🗑 Yes, erase my data"), "erase")],
            [ctx.choice(ctx._("✖ Cancel"), "cancel")],
        ],
    )


async def on_forget_self(ctx: Context, value: str) -> None:
    account = ctx.account
    if value != "erase" or not erasable(account):
        return
    assert account is not None
    await ctx.end_flow()
    erasure = await erase_account(ctx.session, account, ctx.now)
    await tell_holders(ctx, erasure)
    ctx.account = None
    ctx.answer(ctx._("Erased"))
    ctx.reply(erased_text(ctx.t), remove_keyboard=True)


def erased_text(t: Translator) -> str:
    return t._(
        "Done: your data has been erased and your consent withdrawn. Huiyin will not write to "
        "you again. If you need help later, send /start to begin afresh."
    )


async def tell_holders(ctx: Context, erasure: Erasure) -> None:
    """The holder of each withdrawn request: its card shows it, and a line says why."""
    for request in erasure.withdrawn:
        holder = (
            await ctx.session.get(Staff, request.assignee_staff_id)
            if request.assignee_staff_id
            else None
        )
        if holder is None:
            continue
        await refresh_task_card(ctx.session, ctx.zone, request, holder, ctx.now)
        reference = request.reference
        await tell_staff(
            ctx.session,
            holder,
            ctx.now,
            lambda t, ref=reference: t._(
                "{ref} is withdrawn: the resident withdrew their consent and their data was "
                "erased. Nothing more needs doing.",
                ref=ref,
            ),
        )
    for request in erasure.released:
        holder = (
            await ctx.session.get(Staff, request.assignee_staff_id)
            if request.assignee_staff_id
            else None
        )
        reference = request.reference
        await tell_staff(
            ctx.session,
            holder,
            ctx.now,
            lambda t, ref=reference: t._(
                "👋 The volunteer who had claimed <b>{ref}</b> withdrew their consent and is no "
                "longer a volunteer. The need is yours alone again.",
                ref=ref,
            ),
            request=request,
        )


async def forget_for_resident(ctx: Context, args: str) -> None:
    """A coordinator erases a resident who asked by phone, found by a request's reference."""
    staff = ctx.staff
    assert staff is not None
    if staff.role not in ERASE_ROLES:
        ctx.reply(
            ctx._(
                "Your roster entry is kept by the district office; please ask them to change "
                "or remove it. Residents who ask by phone to be erased: their community "
                "coordinator can do it with /forget and a request's reference."
            )
        )
        return
    if not args:
        ctx.reply(
            ctx._(
                "When a resident asks by phone to have their data erased, send /forget and the "
                "reference of one of their requests, for example /forget HY000123 (find it "
                "with /find)."
            )
        )
        return
    request = await in_area(ctx, parse_reference(args))
    reporter = await ctx.session.get(Account, request.reporter_account_id) if request else None
    if request is None or reporter is None:
        ctx.reply(ctx._("There is no request {ref} in your area.", ref=escape(args[:20])))
        return
    if not erasable(reporter):
        ctx.reply(
            ctx._("The resident who reported {ref} has already been erased.", ref=request.reference)
        )
        return
    ctx.go(FLOW, "resident", request_id=request.id, account_id=reporter.id)
    await render_forget_resident(ctx)


async def render_forget_resident(ctx: Context) -> None:
    request = await ctx.session.get(Request, ctx.data.get("request_id"))
    reporter = await ctx.session.get(Account, ctx.data.get("account_id"))
    if request is None or reporter is None:
        await ctx.end_flow()
        show_menu(ctx)
        return
    data = await personal_data(ctx.session, reporter)
    family = sum(1 for b in data.beneficiaries if not b.is_self)
    ctx.reply(
        ctx._(
            "<b>Erase the resident who reported {ref}?</b>\n"
            "{name}: {requests} request(s), {family} family member(s). Do this only when "
            "they asked for it themselves (by phone or in person). Their open requests are "
            "withdrawn, their details and free texts erased; the figures keep counting "
            "their requests without their name. They are told, if the bot can still reach "
            "them. This cannot be undone.",
            ref=request.reference,
            name=escape(reporter.display_name or "—"),
            requests=len(data.requests),
            family=family,
        ),
        [
            [ctx.choice(ctx._("🗑 Erase their data"), "erase")],
            [ctx.choice(ctx._("✖ Cancel"), "cancel")],
        ],
    )


async def on_forget_resident(ctx: Context, value: str) -> None:
    if value != "erase" or ctx.staff is None or ctx.staff.role not in ERASE_ROLES:
        return
    request_id = ctx.data.get("request_id")
    await ctx.end_flow()
    # Checked again: the viewer's area may have changed, or someone else did it meanwhile.
    request = await in_area(ctx, request_id if isinstance(request_id, int) else None)
    reporter = await ctx.session.get(Account, request.reporter_account_id) if request else None
    if request is None or reporter is None or not erasable(reporter):
        ctx.answer(ctx._("This button is no longer active."), alert=True)
        return
    chat_id, language, reachable = reporter.chat_id, reporter.language, reporter.blocked_at is None
    erasure = await erase_account(ctx.session, reporter, ctx.now, actor_staff_id=ctx.staff.id)
    await tell_holders(ctx, erasure)
    if reachable:
        ctx.send(Outbound(chat_id=chat_id, text=erased_text(translator(language))))
    ctx.answer(ctx._("Erased"))
    show_menu(
        ctx,
        ctx._(
            "✅ The resident who reported {ref} is erased: {withdrawn} open request(s) "
            "withdrawn, {count} request(s) anonymised.",
            ref=format_reference(request.id or 0),
            withdrawn=len(erasure.withdrawn),
            count=erasure.anonymised,
        ),
    )


router.step(FLOW, "self", Step(render=render_forget_self, on_choice=on_forget_self))
router.step(FLOW, "resident", Step(render=render_forget_resident, on_choice=on_forget_resident))


# /phonelog ----------------------------------------------------------------------------------

CHANNEL_LABELS = {
    CONTACT_CARD: N_("📞 contact card"),
    EXPORT: N_("📒 ledger in the chat"),
    CLI_EXPORT: N_("📒 ledger at the terminal"),
    FOLLOW_UP_CALL: N_("📞 follow-up call"),
}


@router.command("phonelog")
async def phonelog(ctx: Context) -> None:
    if ctx.staff is None or ctx.staff.role not in PHONELOG_ROLES:
        ctx.reply(ctx._("/phonelog is for the district office."))
        return
    rows = await phone_access_log(ctx.session, limit=PHONELOG_SHOWN)
    if not rows:
        ctx.reply(ctx._("No one has opened a phone number yet."))
        return
    lines = [
        ctx._(
            "<b>Who opened phone numbers</b> (the newest {n}; each line: when, who, how, what)",
            n=len(rows),
        )
    ]
    for access, staff in rows:
        who = escape(staff.name) if staff is not None else ctx._("the terminal")
        how = ctx._(CHANNEL_LABELS.get(access.channel, access.channel))
        what = format_reference(access.request_id) if access.request_id else escape(access.detail)
        line = f"• {format_time(access.at, ctx.zone)} · {who} · {how} · {what}"
        if access.numbers != 1:
            line += " · " + ctx.t.ngettext("{n} number", "{n} numbers", access.numbers)
        lines.append(line)
    ctx.reply("\n".join(lines))
