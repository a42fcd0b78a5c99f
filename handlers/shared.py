"""Shared needs (共性需求) in the conversations: "Is it one of these? ➕ Me too" while reporting,
and staff marking a need shared or merging a duplicate into it (domain/shared.py).

    report: category ──► "Is it one of these?" (the village's 3 newest open needs of the
            category: what, the first words, how many support it, when; never who)
              ├─ ➕ Me too (`mt:<request>:<beneficiary>`) ──► a supporter; told the reference
              └─ No, mine is different / typed words ──► describe (handlers/intake.py)
    /shared HY000123, or 🤝 (`sh:<id>`) on /status ──► marked shared
    /merge HY000124 HY000123 ──► HY000124 merged into HY000123; its reporter is told

"Me too" is not a step button: it is checked when pressed (the presser's own beneficiary, the
need still open and in that beneficiary's village), so a second tap, a stale or a forged one is
answered politely and changes nothing. Staff need the area permission of /reassign
(`handlers.coordinator.may_reassign`) over every need they mark or merge.
"""

from __future__ import annotations

from domain.i18n import N_, Translator
from domain.labels import category_label, format_time, staff_label
from domain.lifecycle import OPEN_STATUSES, Level
from domain.messages import Button
from domain.privacy import is_sensitive
from domain.shared import (
    MergeRefused,
    add_supporter,
    in_village_of,
    merge,
    share,
    similar_open,
    snippet,
    supporter_of,
)
from handlers.base import Context, Router, escape, parse_id
from handlers.cards import notify_reporter, refresh_task_card, tell_staff
from handlers.common import show_menu
from handlers.coordinator import LEVEL_OF_ROLE, holder, may_reassign
from storage.models import Beneficiary, Request, parse_reference

router = Router()
ME_TOO_PREFIX = "mt"
SHARE_PREFIX = "sh"
REPORT_FLOW = "report"  # handlers/intake.py's flow, ended by a "me too"


def similar_ref(chat_id: int) -> str:
    """The name of the "Is it one of these?" message, whose buttons go once one is used."""
    return f"similar:{chat_id}"


# "Is it one of these?" ---------------------------------------------------------------------


async def similar_offer(
    ctx: Context, beneficiary: Beneficiary, category: str
) -> tuple[str, list[list[Button]]] | None:
    """The village's open needs like this one, with a "➕ Me too" for each; None when there
    are none. What they are, never who reported them; never a health or counselling need
    (sensitive personal information, for staff's eyes only)."""
    if is_sensitive(category):
        return None
    found = await similar_open(ctx.session, beneficiary, category)
    if not found:
        return None
    lines = [
        ctx._(
            "<b>Is it one of these?</b> Others in your village have already asked for this. "
            "Tap ➕ Me too on the same need and you will be told of every step, as they are. "
            "If yours is different, tap “No, mine is different”, or simply describe it."
        ),
        "",
    ]
    rows: list[list[Button]] = []
    for number, request in enumerate(found, start=1):
        parts = [f"{number}. <b>{escape(category_label(ctx.t, request.category))}</b>"]
        if request.description:
            parts.append(escape(snippet(request)))
        if request.supporter_count:
            parts.append(
                ctx.t.ngettext(
                    "{n} more resident has it",
                    "{n} more residents have it",
                    request.supporter_count,
                )
            )
        parts.append(
            ctx._("since {time}", time=format_time(request.created_at, ctx.zone)),
        )
        lines.append(" · ".join(parts))
        rows.append(
            [
                Button(
                    ctx._("➕ Me too ({number})", number=number),
                    data=f"{ME_TOO_PREFIX}:{request.id}:{beneficiary.id}",
                )
            ]
        )
    return "\n".join(lines), rows


@router.button(ME_TOO_PREFIX)
async def on_me_too(ctx: Context) -> None:
    parts = ctx.inbound.button_data.split(":")
    request_id = parse_id(parts[1]) if len(parts) == 3 else None
    beneficiary_id = parse_id(parts[2]) if len(parts) == 3 else None
    account = ctx.account
    beneficiary = (
        await ctx.session.get(Beneficiary, beneficiary_id) if beneficiary_id is not None else None
    )
    # Locked: two taps at once are one after the other (one supporter, one count).
    request = (
        await ctx.session.get(Request, request_id, with_for_update=True)
        if request_id is not None
        else None
    )
    if (
        account is None
        or account.id is None
        or beneficiary is None
        or beneficiary.owner_account_id != account.id
        or request is None
        or request.id is None
        or not await in_village_of(ctx.session, request, beneficiary)
    ):
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    if request.beneficiary_id == beneficiary.id:
        ctx.answer(ctx._("This is your own request already."), alert=True)
        return
    if await supporter_of(ctx.session, request.id, beneficiary.id) is not None:
        ctx.answer(
            ctx._(
                "You have already said “me too” to {ref}; you will be told of every step.",
                ref=request.reference,
            ),
            alert=True,
        )
        return
    if request.status not in OPEN_STATUSES or request.merged_into_id is not None:
        ctx.answer(
            ctx._("{ref} is no longer open; please describe your need.", ref=request.reference),
            alert=True,
        )
        return
    await add_supporter(ctx.session, request, account, beneficiary, ctx.now)
    owner = await holder(ctx.session, request)
    if owner is not None:
        # The holder's card shows how many more residents have it (never who).
        await refresh_task_card(ctx.session, ctx.zone, request, owner, ctx.now)
    if ctx.flow == REPORT_FLOW:
        await ctx.end_flow()
    await ctx.retire_pressed(similar_ref(ctx.chat_id), ctx._("➕ Me too"))
    ctx.answer(ctx._("Added"))
    lead = ""
    if not beneficiary.is_self:
        lead = ctx._("For {name}.", name=escape(beneficiary.name)) + " "
    show_menu(
        ctx,
        lead
        + ctx._(
            "✅ You said “me too” to <b>{ref}</b>: no new request is needed. You will be told "
            "of every step, and asked whether it was solved.",
            ref=request.reference,
        ),
    )


# Staff: /shared and /merge -------------------------------------------------------------------


def may_manage(ctx: Context) -> bool:
    """Coordinators, town officers, departments and the admin (as for /reassign)."""
    staff = ctx.staff
    return staff is not None and LEVEL_OF_ROLE.get(staff.role) not in (None, Level.GRID)


async def managed_request(ctx: Context, text: str, *, lock: bool = True) -> Request | None:
    """The request a reference names, when the viewer may act on it; None otherwise (a
    request outside the area answers exactly like one that does not exist)."""
    request_id = parse_reference(text)
    request = (
        await ctx.session.get(Request, request_id, with_for_update=lock)
        if request_id is not None
        else None
    )
    if request is None or ctx.staff is None:
        return None
    if not await may_reassign(ctx.session, ctx.staff, request):
        return None
    return request


@router.command("shared")
async def shared_command(ctx: Context) -> None:
    if not may_manage(ctx):
        ctx.reply(ctx._("/shared and /merge are for coordinators and the levels above them."))
        return
    reference = ctx.inbound.args.strip()
    if not reference:
        ctx.reply(ctx._("Send /shared and a reference, for example /shared HY000123."))
        return
    request = await managed_request(ctx, reference)
    if request is None:
        ctx.reply(ctx._("There is no request {ref} in your area.", ref=escape(reference[:20])))
        return
    await mark(ctx, request)


@router.button(SHARE_PREFIX)
async def on_share_button(ctx: Context) -> None:
    _, _, raw_id = ctx.inbound.button_data.partition(":")
    request_id = parse_id(raw_id)
    request = (
        await managed_request(ctx, str(request_id)) if request_id and may_manage(ctx) else None
    )
    if request is None:
        ctx.answer(ctx._("This request is not available."), alert=True)
        return
    await mark(ctx, request)


async def mark(ctx: Context, request: Request) -> None:
    assert ctx.staff is not None and ctx.staff.id is not None
    if request.shared_at is not None:
        ctx.answer(ctx._("Already marked shared."))
        ctx.reply(ctx._("{ref} is already marked as a shared need.", ref=request.reference))
        return
    if not await share(ctx.session, request, ctx.now, ctx.staff.id):
        ctx.answer(ctx._("No longer open."))
        ctx.reply(ctx._("{ref} is no longer open.", ref=request.reference))
        return
    ctx.answer(ctx._("Marked shared"))
    ctx.reply(
        ctx._(
            "🤝 {ref} is marked as a shared need of the village: a unit may claim it, and "
            "later duplicates can be merged into it with /merge.",
            ref=request.reference,
        )
    )
    owner = await holder(ctx.session, request)
    if owner is not None:
        await refresh_task_card(ctx.session, ctx.zone, request, owner, ctx.now)


MERGE_REFUSALS: dict[str, str] = {
    "same": N_("A request cannot be merged into itself."),
    "duplicate_not_open": N_("{duplicate} is no longer open; only an open request can be merged."),
    "target_not_open": N_("{target} is no longer open; merge into an open request."),
}


@router.command("merge")
async def merge_command(ctx: Context) -> None:
    if not may_manage(ctx):
        ctx.reply(ctx._("/shared and /merge are for coordinators and the levels above them."))
        return
    words = ctx.inbound.args.split()
    if len(words) != 2:
        ctx.reply(
            ctx._(
                "Send /merge, the later duplicate and the request to keep, for example "
                "/merge HY000124 HY000123."
            )
        )
        return
    duplicate = await managed_request(ctx, words[0])
    target = await managed_request(ctx, words[1])
    for text, found in ((words[0], duplicate), (words[1], target)):
        if found is None:
            ctx.reply(ctx._("There is no request {ref} in your area.", ref=escape(text[:20])))
            return
    assert duplicate is not None and target is not None and ctx.staff is not None
    staff = ctx.staff
    assert staff.id is not None
    try:
        merged = await merge(ctx.session, duplicate, target, ctx.now, staff.id)
    except MergeRefused as refused:
        ctx.reply(
            ctx._(
                MERGE_REFUSALS[refused.reason],
                duplicate=duplicate.reference,
                target=target.reference,
            )
        )
        return
    ctx.reply(
        ctx._(
            "🔗 {duplicate} is merged into {target}: its reporter now supports {target} and "
            "was told. Both timelines are kept.",
            duplicate=duplicate.reference,
            target=target.reference,
        )
    )

    def told(t: Translator) -> str:
        return t._(
            "🔗 Your request <b>{duplicate}</b> is the same need as <b>{target}</b>, which is "
            "already being handled, so the two were joined. You now support {target}: you "
            "will be told of every step, and asked whether it was solved.",
            duplicate=duplicate.reference,
            target=target.reference,
        )

    await notify_reporter(ctx.session, merged.duplicate, ctx.now, told, zone=ctx.zone)
    duplicate_owner = await holder(ctx.session, duplicate)
    target_owner = await holder(ctx.session, target)
    for owner, request in ((duplicate_owner, duplicate), (target_owner, target)):
        if owner is not None:
            await refresh_task_card(ctx.session, ctx.zone, request, owner, ctx.now)
    if duplicate_owner is not None and duplicate_owner.id != staff.id:
        await tell_staff(
            ctx.session,
            duplicate_owner,
            ctx.now,
            lambda t: t._(
                "🔗 {duplicate} was merged into {target} by {who}; nothing more to do on it.",
                duplicate=duplicate.reference,
                target=target.reference,
                who=escape(staff_label(t, staff)),
            ),
        )
    if target_owner is not None and target_owner.id != staff.id:
        await tell_staff(
            ctx.session,
            target_owner,
            ctx.now,
            lambda t: t._(
                "🔗 {duplicate}, the same need, was merged into your {target} by {who}.",
                duplicate=duplicate.reference,
                target=target.reference,
                who=escape(staff_label(t, staff)),
            ),
            request=target,
        )


async def may_share(ctx: Context, request: Request) -> bool:
    """Whether /status shows the 🤝 button for the viewer."""
    staff = ctx.staff
    return (
        staff is not None
        and request.shared_at is None
        and request.status in OPEN_STATUSES
        and await may_reassign(ctx.session, staff, request)
    )
