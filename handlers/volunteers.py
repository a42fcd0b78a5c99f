"""Volunteers (志愿者) and in-service party members who report to their community (报到): joining,
the coordinator's approval, the volunteer's own profile, and the coordinators' list.

    /volunteer ─► where (home community, or the place picker up to a community)
    /start v_<COMMUNITY> ─► (consent first, if new) ─┐
                                                     ▼
        categories (toggles, ✔ Done) ─► party member? ─► organisation (paged, or none) ─► pending
    pending ──✅ Approve / ✖ Decline (va:<id>:yes|no, a card to each reachable coordinator of the
              community, else the town's officers; the first tap decides, the other cards are
              edited to say who did) ──► approved | declined; the applicant is told
    /volunteer when approved or paused: the profile, with ⏸ pause / ▶ resume, 🧰 categories,
              👋 leave (confirmed; what they hold goes back to its holder, who is told)
    /volunteers [CODE]: the area's volunteers, 10 a page, pending first with their buttons, the
              counts by status, and the community's volunteer link to forward

Every button is checked again when pressed: the volunteer's status (a second tap, a stale
profile), who may decide (the community's coordinator, the town's officer, the admin).
"""

from __future__ import annotations

from sqlalchemy import case, func
from sqlmodel import col, select

from domain.catalog import CATEGORIES
from domain.claims import held_by, release_all_of
from domain.i18n import Translator, translator
from domain.labels import category_label, unit_label
from domain.lifecycle import Action
from domain.messages import Button, Outbound
from domain.outbox import enqueue, enqueue_edit
from domain.reach import account_reachable, reachable_chat
from domain.requests import add_event
from domain.volunteers import (
    NEVER_OFFERED,
    STATUS_LABELS,
    STATUS_ORDER,
    VOLUNTEER_LINK_PREFIX,
    VolunteerStatus,
    bind_waiting,
    decide,
    deciders,
    may_decide,
    move,
    organisations_for,
    served_units,
    valid_categories,
    volunteer_of,
)
from handlers import onboarding
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import staff_translator, tell_staff
from handlers.lookup import PAGE, clamp, page_offset
from handlers.picker import PICK_STEP, picker_step, place_path, show_picker
from storage.models import Account, Organisation, OutboxMessage, Request, Staff, Unit, Volunteer

router = Router()
FLOW = "volunteer"
WHERE_STEP = "where"
CATS_STEP = "cats"
PARTY_STEP = "party"
ORG_STEP = "org"
LEAVE_STEP = "leave"
DECIDE_PREFIX = "va"
PROFILE_PREFIX = "vp"
LIST_PREFIX = "vl"
CATS_REF = "volcats"
PROFILE_REF = "volprofile"
ORG_PAGE = 8
MAX_CODE = 32
# The categories a volunteer may offer, in catalog order.
OFFERABLE: tuple[str, ...] = tuple(c.code for c in CATEGORIES if c.code not in NEVER_OFFERED)


def card_ref(volunteer_id: int, staff_id: int) -> str:
    return f"vol:{volunteer_id}:{staff_id}"


def volunteer_url(bot_username: str, unit_code: str) -> str:
    return f"https://t.me/{bot_username.lstrip('@')}?start={VOLUNTEER_LINK_PREFIX}{unit_code}"


def categories_text(t: Translator, codes: list[str]) -> str:
    return "、".join(category_label(t, c) for c in codes) if codes else "—"


async def profile_lines(t: Translator, ctx: Context, volunteer: Volunteer) -> list[str]:
    """Who the volunteer is, for their own profile and for the coordinator's card."""
    unit = await ctx.session.get(Unit, volunteer.unit_code)
    organisation = (
        await ctx.session.get(Organisation, volunteer.organisation_id)
        if volunteer.organisation_id
        else None
    )
    org = "—"
    if organisation is not None:
        org = organisation.name
        if t.language == "en" and organisation.name_en:
            org = organisation.name_en
        if volunteer.is_contact:
            org += " · " + t._("contact person")
    return [
        "📍 " + escape(unit_label(t, unit)),
        "🧰 " + escape(categories_text(t, volunteer.category_list)),
        "🎖 " + (t._("Party member") if volunteer.party_member else t._("Not a party member")),
        "🏢 " + escape(org),
    ]


# Joining --------------------------------------------------------------------------------------


def ensure_account(ctx: Context) -> Account:
    return onboarding.ensure_account(ctx)


@router.command("volunteer")
async def volunteer_command(ctx: Context) -> None:
    account = ensure_account(ctx)
    await ctx.session.flush()
    if ctx.flow is not None:
        await ctx.end_flow()
    volunteer = await bind_waiting(ctx.session, account) or await volunteer_of(
        ctx.session, account.id
    )
    if volunteer is not None and await answered_as_volunteer(ctx, volunteer):
        return
    await begin_application(ctx, None)


async def answered_as_volunteer(ctx: Context, volunteer: Volunteer) -> bool:
    """Someone who is a volunteer already sees their profile, or hears that their application
    waits; True when so answered (False: declined or left, they may apply again)."""
    if volunteer.status in (VolunteerStatus.APPROVED, VolunteerStatus.PAUSED):
        await show_profile(ctx, volunteer)
        return True
    if volunteer.status == VolunteerStatus.PENDING:
        place = escape(await place_path(ctx, volunteer.unit_code))
        ctx.reply(
            ctx._(
                "⏳ Your application to volunteer in {place} is waiting for the coordinator. "
                "You will hear here when it is decided.",
                place=place,
            )
        )
        return True
    return False


async def open_volunteer_link(ctx: Context, code: str) -> bool:
    """`/start v_<CODE>`: True when taken up (the application begins, consent first for a
    newcomer); False after a polite word about an unknown code (the usual /start goes on)."""
    code = code.strip().upper()[:MAX_CODE]
    unit = await ctx.session.get(Unit, code) if code else None
    if unit is None or unit.level not in ("community", "town"):
        ctx.reply(
            ctx._(
                "That volunteer link is not valid (the community may have changed its code). "
                "You can still offer your help with /volunteer."
            )
        )
        return False
    consented = ctx.account is not None and ctx.account.consent_at is not None
    if not consented and ctx.staff is None:
        ctx.go(onboarding.FLOW, onboarding.CONSENT_STEP, preset_grid=None, volunteer_unit=code)
        await onboarding.render_consent(ctx)
        return True
    if ctx.flow == onboarding.FLOW:  # the consent question just answered
        await ctx.end_flow()
    account = ensure_account(ctx)
    await ctx.session.flush()
    volunteer = await bind_waiting(ctx.session, account) or await volunteer_of(
        ctx.session, account.id
    )
    if volunteer is not None and await answered_as_volunteer(ctx, volunteer):
        return True
    await begin_application(ctx, code)
    return True


async def home_community(ctx: Context) -> str | None:
    grid = ctx.account.home_grid_code if ctx.account else None
    unit = await ctx.session.get(Unit, grid) if grid else None
    return unit.parent_code if unit is not None else None


async def begin_application(ctx: Context, unit_code: str | None) -> None:
    """Start the application, at the community when it is known (a volunteer link)."""
    account = ensure_account(ctx)
    await ctx.session.flush()
    previous = await volunteer_of(ctx.session, account.id)
    chosen = valid_categories(previous.category_list) if previous else []
    if unit_code is not None:
        ctx.go(FLOW, CATS_STEP, unit=unit_code, cats=chosen, editing=False)
        await render_cats(ctx)
        return
    if await waiting_roster_entries(ctx):
        ctx.reply(
            ctx._(
                "Did your community register you as a volunteer already? Share your phone "
                "number with the button below and you are recognised at once."
            ),
            request_contact=ctx._("📱 Share my phone number"),
        )
    ctx.go(FLOW, WHERE_STEP, home=await home_community(ctx), cats=chosen, editing=False)
    await render_where(ctx)


async def waiting_roster_entries(ctx: Context) -> bool:
    row = await ctx.session.exec(
        select(Volunteer.id).where(col(Volunteer.account_id).is_(None)).limit(1)
    )
    return row.first() is not None


async def render_where(ctx: Context) -> None:
    rows: list[list[Button]] = []
    home = ctx.data.get("home")
    if home:
        unit = await ctx.session.get(Unit, home)
        rows.append([ctx.choice("📍 " + unit_label(ctx.t, unit), "home")])
    rows.append([ctx.choice(ctx._("Choose another community"), "pick")])
    rows.append([ctx.choice(ctx._("✖ Cancel"), "cancel")])
    ctx.reply(
        ctx._(
            "🙋 Thank you for offering your help! Volunteers and party members reporting to "
            "their community (报到) are offered needs they can take on, and claim them here.\n\n"
            "Which community or village will you serve?"
        ),
        rows,
        ref=ctx.step_ref,
    )


async def on_where(ctx: Context, value: str) -> None:
    if value == "home" and ctx.data.get("home"):
        unit = await ctx.session.get(Unit, ctx.data["home"])
        await ctx.retire_pressed(ctx.step_ref, "✔ " + escape(unit_label(ctx.t, unit)))
        ctx.go(FLOW, CATS_STEP, unit=ctx.data["home"])
        await render_cats(ctx)
    elif value == "pick":
        await ctx.retire_pressed(ctx.step_ref)
        await show_picker(ctx, FLOW)
    else:
        ctx.answer(ctx._("This button is no longer active."))


async def on_picked(ctx: Context, code: str) -> None:
    unit = await ctx.session.get(Unit, code)
    if unit is not None and unit.level == "grid":
        unit = await ctx.session.get(Unit, unit.parent_code) if unit.parent_code else None
    if unit is None:
        await show_picker(ctx, FLOW)
        return
    ctx.go(FLOW, CATS_STEP, unit=unit.code)
    await render_cats(ctx)


def cats_view(ctx: Context) -> tuple[str, list[list[Button]]]:
    chosen: list[str] = ctx.data.get("cats") or []
    labels = [
        ctx.choice(("✅ " if code in chosen else "") + category_label(ctx.t, code), code)
        for code in OFFERABLE
    ]
    rows = [labels[i : i + 2] for i in range(0, len(labels), 2)]
    rows.append([ctx.choice(ctx._("✔ Done"), "done"), ctx.choice(ctx._("✖ Cancel"), "cancel")])
    text = ctx._(
        "🧰 Which kinds of help will you offer? Tap each one you can do (tap again to remove), "
        "then ✔ Done. Safety hazards stay with staff."
    )
    return text, rows


async def render_cats(ctx: Context, *, in_place: bool = False) -> None:
    text, rows = cats_view(ctx)
    if in_place:
        ctx.reply(text, rows, edit_ref=CATS_REF)
    else:
        ctx.reply(text, rows, ref=CATS_REF)


async def on_cats(ctx: Context, value: str) -> None:
    chosen: list[str] = list(ctx.data.get("cats") or [])
    if value in OFFERABLE:
        if value in chosen:
            chosen.remove(value)
        else:
            chosen.append(value)
        ctx.update_data(cats=[c for c in OFFERABLE if c in chosen])
        await render_cats(ctx, in_place=True)
        return
    if value != "done":
        ctx.answer(ctx._("This button is no longer active."))
        return
    if not chosen:
        ctx.answer(ctx._("Please choose at least one kind of help."), alert=True)
        return
    text, _ = cats_view(ctx)
    summary = escape(categories_text(ctx.t, chosen))
    ctx.reply(text + "\n\n✔ <b>" + summary + "</b>", edit_ref=CATS_REF)
    if ctx.data.get("editing"):
        await save_categories(ctx, chosen)
        return
    ctx.go(FLOW, PARTY_STEP)
    await render_party(ctx)


async def save_categories(ctx: Context, chosen: list[str]) -> None:
    volunteer = await volunteer_of(ctx.session, ctx.account.id if ctx.account else None)
    await ctx.end_flow()
    if volunteer is None or volunteer.status not in (
        VolunteerStatus.APPROVED,
        VolunteerStatus.PAUSED,
    ):
        ctx.reply(ctx._("You are not a volunteer now; /volunteer to apply."))
        return
    volunteer.categories = ";".join(chosen)
    ctx.session.add(volunteer)
    ctx.reply(ctx._("✅ Your categories are saved."))
    await show_profile(ctx, volunteer)


async def render_party(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "🎖 Are you a member of the Communist Party of China? In-service party members "
            "report to their community (报到) this way."
        ),
        [
            [ctx.choice(ctx._("Yes, a party member"), "yes"), ctx.choice(ctx._("No"), "no")],
            [ctx.choice(ctx._("✖ Cancel"), "cancel")],
        ],
        ref=ctx.step_ref,
    )


async def on_party(ctx: Context, value: str) -> None:
    if value not in ("yes", "no"):
        ctx.answer(ctx._("This button is no longer active."))
        return
    chosen = ctx._("Yes, a party member") if value == "yes" else ctx._("No")
    await ctx.retire_pressed(ctx.step_ref, "✔ " + chosen)
    ctx.update_data(party=value == "yes")
    if await organisations_for(ctx.session, ctx.data["unit"]):
        ctx.go(FLOW, ORG_STEP, org_page=0)
        await render_org(ctx)
        return
    await submit(ctx, None)


async def render_org(ctx: Context, *, in_place: bool = False) -> None:
    organisations = await organisations_for(ctx.session, ctx.data["unit"])
    pages = max(1, (len(organisations) + ORG_PAGE - 1) // ORG_PAGE)
    page = min(int(ctx.data.get("org_page") or 0), pages - 1)
    shown = organisations[page * ORG_PAGE : (page + 1) * ORG_PAGE]
    rows: list[list[Button]] = [
        [ctx.choice(o.name_en if ctx.t.language == "en" and o.name_en else o.name, str(o.id))]
        for o in shown
    ]
    turns: list[Button] = []
    if page > 0:
        turns.append(ctx.choice(ctx._("◀ Previous"), "prev"))
    if page < pages - 1:
        turns.append(ctx.choice(ctx._("Next ▶"), "next"))
    if turns:
        rows.append(turns)
    rows.append(
        [ctx.choice(ctx._("None of these"), "none"), ctx.choice(ctx._("✖ Cancel"), "cancel")]
    )
    text = ctx._(
        "🏢 Do you come from one of these units (a department, an enterprise or a social "
        "organisation)? Units can also claim needs as a body."
    )
    if pages > 1:
        text += "\n" + ctx._("Page {page} of {pages}", page=page + 1, pages=pages)
    if in_place:
        ctx.reply(text, rows, edit_ref=ctx.step_ref)
    else:
        ctx.reply(text, rows, ref=ctx.step_ref)


async def on_org(ctx: Context, value: str) -> None:
    if value in ("prev", "next"):
        page = int(ctx.data.get("org_page") or 0) + (1 if value == "next" else -1)
        ctx.update_data(org_page=max(page, 0))
        await render_org(ctx, in_place=True)
        return
    if value == "none":
        await ctx.retire_pressed(ctx.step_ref, "✔ " + ctx._("None of these"))
        await submit(ctx, None)
        return
    wanted = parse_id(value)
    organisations = {o.id: o for o in await organisations_for(ctx.session, ctx.data["unit"])}
    organisation = organisations.get(wanted) if wanted is not None else None
    if organisation is None:
        ctx.answer(ctx._("That choice is no longer available. Please choose again."))
        return
    await ctx.retire_pressed(ctx.step_ref, "✔ " + escape(organisation.name))
    await submit(ctx, organisation.id)


async def submit(ctx: Context, organisation_id: int | None) -> None:
    """The application is stored (pending) and goes to whoever approves it."""
    account = ensure_account(ctx)
    data = ctx.data
    await ctx.end_flow()
    volunteer = await volunteer_of(ctx.session, account.id)
    if volunteer is not None and volunteer.status not in (
        VolunteerStatus.DECLINED,
        VolunteerStatus.LEFT,
    ):
        await answered_as_volunteer(ctx, volunteer)  # applied twice from two open flows
        return
    if volunteer is None:
        volunteer = Volunteer(
            account_id=account.id, name="", unit_code=data["unit"], status="", created_at=ctx.now
        )
    volunteer.name = (account.display_name or ctx.inbound.display_name or "?")[:50]
    volunteer.telegram_id = account.telegram_id
    volunteer.unit_code = data["unit"]
    volunteer.categories = ";".join(valid_categories(data.get("cats") or []))
    volunteer.party_member = bool(data.get("party"))
    volunteer.organisation_id = organisation_id
    volunteer.is_contact = False
    volunteer.status = VolunteerStatus.PENDING.value
    volunteer.source = "chat"
    volunteer.decided_at = volunteer.paused_at = volunteer.left_at = None
    volunteer.decided_by_staff_id = None
    ctx.session.add(volunteer)
    await ctx.session.flush()
    staff = await deciders(ctx.session, volunteer.unit_code)
    for person in staff:
        await send_card(ctx, person, volunteer)
    place = escape(await place_path(ctx, volunteer.unit_code))
    if staff:
        ctx.reply(
            ctx._(
                "📨 Thank you! Your application to volunteer in {place} has gone to the "
                "coordinator. You will hear here when it is decided.",
                place=place,
            )
        )
    else:
        ctx.reply(
            ctx._(
                "📨 Thank you! Your application to volunteer in {place} is stored; the "
                "coordinator will find it in their list of volunteers. You will hear here when "
                "it is decided.",
                place=place,
            )
        )


router.step(FLOW, WHERE_STEP, Step(render=render_where, on_choice=on_where))
router.step(FLOW, PICK_STEP, picker_step(on_picked, upto="community"))
router.step(FLOW, CATS_STEP, Step(render=render_cats, on_choice=on_cats))
router.step(FLOW, PARTY_STEP, Step(render=render_party, on_choice=on_party))
router.step(FLOW, ORG_STEP, Step(render=render_org, on_choice=on_org))


# Approval (报到审核) -----------------------------------------------------------------------------


async def card_text(ctx: Context, t: Translator, volunteer: Volunteer) -> str:
    lines = [t._("🙋 <b>A volunteer applies</b> (报到)"), "👤 " + escape(volunteer.name)]
    lines += await profile_lines(t, ctx, volunteer)
    return "\n".join(lines)


async def send_card(ctx: Context, staff: Staff, volunteer: Volunteer) -> None:
    chat_id = reachable_chat(staff)
    if chat_id is None or staff.id is None or volunteer.id is None:
        return
    t = await staff_translator(ctx.session, staff)
    buttons = (
        (
            Button(t._("✅ Approve"), data=f"{DECIDE_PREFIX}:{volunteer.id}:yes"),
            Button(t._("✖ Decline"), data=f"{DECIDE_PREFIX}:{volunteer.id}:no"),
        ),
    )
    ctx.send(
        Outbound(
            chat_id=chat_id,
            text=await card_text(ctx, t, volunteer),
            buttons=buttons,
            ref=card_ref(volunteer.id, staff.id),
        )
    )


def decision_line(t: Translator, volunteer: Volunteer, who: Staff | None) -> str:
    name = escape(who.name) if who is not None else "?"
    if volunteer.status == VolunteerStatus.DECLINED:
        return t._("✖ Declined by {name}", name=name)
    return t._("✅ Approved by {name}", name=name)


@router.button(DECIDE_PREFIX)
async def on_decide(ctx: Context) -> None:
    _, _, rest = ctx.inbound.button_data.partition(":")
    raw_id, _, verb = rest.partition(":")
    volunteer_id = parse_id(raw_id)
    volunteer = await ctx.session.get(Volunteer, volunteer_id) if volunteer_id else None
    if volunteer is None or verb not in ("yes", "no"):
        ctx.answer(ctx._("This button is no longer active."))
        return
    if not await may_decide(ctx.session, ctx.staff, volunteer):
        ctx.answer(
            ctx._("Only the community's coordinator or the town's officer decides this."),
            alert=True,
        )
        return
    assert ctx.staff is not None and ctx.staff.id is not None and volunteer.id is not None
    if not await decide(ctx.session, volunteer.id, verb == "yes", ctx.staff.id, ctx.now):
        who = (
            await ctx.session.get(Staff, volunteer.decided_by_staff_id)
            if volunteer.decided_by_staff_id
            else None
        )
        if volunteer.status in (VolunteerStatus.APPROVED, VolunteerStatus.DECLINED) and who:
            ctx.answer(decision_line(ctx.t, volunteer, who)[:200])
        else:
            ctx.answer(ctx._("This application was decided already."))
        return
    await edit_cards(ctx, volunteer)
    tell_applicant(ctx, volunteer, await volunteer_account(ctx, volunteer))
    approved = volunteer.status == VolunteerStatus.APPROVED
    ctx.answer(ctx._("Approved") if approved else ctx._("Declined"))
    if not await card_was_pressed(ctx, volunteer):
        ctx.reply(decision_line(ctx.t, volunteer, ctx.staff) + " · " + escape(volunteer.name))


async def card_was_pressed(ctx: Context, volunteer: Volunteer) -> bool:
    """Whether the tap came from an approval card (else from /volunteers, which gets a line)."""
    rows = await ctx.session.exec(
        select(OutboxMessage.sent_message_id).where(
            OutboxMessage.chat_id == ctx.chat_id,
            OutboxMessage.ref_key == card_ref(volunteer.id or 0, ctx.staff.id if ctx.staff else 0),
        )
    )
    return ctx.inbound.message_id is not None and ctx.inbound.message_id in set(rows.all())


async def edit_cards(ctx: Context, volunteer: Volunteer) -> None:
    """Every coordinator's copy of the card loses its buttons and says who decided."""
    assert volunteer.id is not None
    rows = await ctx.session.exec(
        select(OutboxMessage.chat_id, OutboxMessage.ref_key)
        .where(col(OutboxMessage.ref_key).startswith(f"vol:{volunteer.id}:"))
        .distinct()
    )
    for chat_id, ref in rows.all():
        assert ref is not None
        staff = await ctx.session.get(Staff, parse_id(ref.rsplit(":", 1)[-1]) or 0)
        t = await staff_translator(ctx.session, staff) if staff else ctx.t
        text = await card_text(ctx, t, volunteer) + "\n\n" + decision_line(t, volunteer, ctx.staff)
        await enqueue_edit(ctx.session, Outbound(chat_id=chat_id, text=text, edit_ref=ref), ctx.now)


async def volunteer_account(ctx: Context, volunteer: Volunteer) -> Account | None:
    return await ctx.session.get(Account, volunteer.account_id) if volunteer.account_id else None


def tell_applicant(ctx: Context, volunteer: Volunteer, account: Account | None) -> None:
    if account is None or not account_reachable(account):
        return
    t = translator(account.language)
    if volunteer.status == VolunteerStatus.APPROVED:
        text = t._(
            "✅ Welcome! You are now a volunteer. Needs in the kinds of help you offer will be "
            "offered to you here to claim. /volunteer shows your profile."
        )
    else:
        text = t._(
            "Your application to volunteer was not approved this time. The community office "
            "can tell you why; you may apply again later with /volunteer."
        )
    enqueue(ctx.session, Outbound(chat_id=account.chat_id, text=text), ctx.now)


# The volunteer's profile ----------------------------------------------------------------------


async def profile_view(ctx: Context, volunteer: Volunteer) -> tuple[str, list[list[Button]]]:
    status = ctx._(STATUS_LABELS.get(volunteer.status, volunteer.status))
    lines = [ctx._("🙋 <b>Your volunteer profile</b>")]
    lines += await profile_lines(ctx.t, ctx, volunteer)
    lines.append(ctx._("Status: {status}", status=status))
    if volunteer.status == VolunteerStatus.PAUSED:
        lines.append(ctx._("⏸ Away for a while: no needs are offered to you until you resume."))
    if volunteer.status in (VolunteerStatus.APPROVED, VolunteerStatus.PAUSED):
        lines.append(ctx._("/board needs on offer near you · /mine what you hold and have done"))
    rows: list[list[Button]] = []
    if volunteer.status == VolunteerStatus.APPROVED:
        rows.append([Button(ctx._("⏸ Away for a while"), data=f"{PROFILE_PREFIX}:pause")])
    elif volunteer.status == VolunteerStatus.PAUSED:
        rows.append([Button(ctx._("▶ Resume"), data=f"{PROFILE_PREFIX}:resume")])
    if volunteer.status in (VolunteerStatus.APPROVED, VolunteerStatus.PAUSED):
        rows.append(
            [
                Button(ctx._("🧰 Edit categories"), data=f"{PROFILE_PREFIX}:cats"),
                Button(ctx._("👋 Leave"), data=f"{PROFILE_PREFIX}:leave"),
            ]
        )
    return "\n".join(lines), rows


async def show_profile(ctx: Context, volunteer: Volunteer, *, in_place: bool = False) -> None:
    text, rows = await profile_view(ctx, volunteer)
    if in_place:
        ctx.reply(text, rows, edit_ref=PROFILE_REF)
    else:
        ctx.reply(text, rows, ref=PROFILE_REF)


@router.button(PROFILE_PREFIX)
async def on_profile(ctx: Context) -> None:
    action = ctx.inbound.button_data.partition(":")[2]
    volunteer = await volunteer_of(ctx.session, ctx.account.id if ctx.account else None)
    active = (VolunteerStatus.APPROVED, VolunteerStatus.PAUSED)
    if volunteer is None or volunteer.status not in active:
        ctx.answer(ctx._("This button is no longer active."))
        return
    if action in ("pause", "resume"):
        to = VolunteerStatus.PAUSED if action == "pause" else VolunteerStatus.APPROVED
        if not move(volunteer, to, ctx.now):
            ctx.answer(ctx._("This button is no longer active."))
            return
        ctx.session.add(volunteer)
        await show_profile(ctx, volunteer, in_place=True)
        if to is VolunteerStatus.PAUSED:
            ctx.answer(ctx._("Paused"))
            ctx.reply(
                ctx._(
                    "⏸ You are away for a while: no needs are offered to you. What you have "
                    "claimed stays yours. Tap ▶ Resume when you are back."
                )
            )
        else:
            ctx.answer(ctx._("Welcome back"))
            ctx.reply(ctx._("▶ Welcome back: needs are offered to you again."))
        return
    if action == "cats":
        if ctx.flow is not None:
            await ctx.end_flow()
        ctx.go(
            FLOW, CATS_STEP, unit=volunteer.unit_code, cats=volunteer.category_list, editing=True
        )
        await render_cats(ctx)
        return
    if action == "leave":
        if ctx.flow is not None:
            await ctx.end_flow()
        ctx.go(FLOW, LEAVE_STEP)
        await render_leave(ctx)
        return
    ctx.answer(ctx._("This button is no longer active."))


async def render_leave(ctx: Context) -> None:
    volunteer = await volunteer_of(ctx.session, ctx.account.id if ctx.account else None)
    held = len(await held_by(ctx.session, volunteer.id)) if volunteer and volunteer.id else 0
    text = ctx._("👋 Leave the volunteers?")
    if held:
        text += "\n" + ctx.t.ngettext(
            "{n} need you hold goes back to the staff member who holds it.",
            "{n} needs you hold go back to the staff who hold them.",
            held,
        )
    ctx.reply(
        text,
        [[ctx.choice(ctx._("Yes, leave"), "yes"), ctx.choice(ctx._("No, stay"), "no")]],
        ref=ctx.step_ref,
    )


async def on_leave(ctx: Context, value: str) -> None:
    if value not in ("yes", "no"):
        ctx.answer(ctx._("This button is no longer active."))
        return
    await ctx.retire_pressed(
        ctx.step_ref, "✔ " + (ctx._("Yes, leave") if value == "yes" else ctx._("No, stay"))
    )
    await ctx.end_flow()
    volunteer = await volunteer_of(ctx.session, ctx.account.id if ctx.account else None)
    if value == "no" or volunteer is None:
        if volunteer is not None:
            await show_profile(ctx, volunteer)
        return
    if not move(volunteer, VolunteerStatus.LEFT, ctx.now):
        ctx.reply(ctx._("You are not a volunteer now; /volunteer to apply."))
        return
    ctx.session.add(volunteer)
    released = await release_all_of(ctx.session, volunteer, ctx.now)
    for _claim, request in released:
        add_event(
            ctx.session,
            request,
            Action.RELEASE,
            ctx.now,
            from_status=request.status,
            from_level=request.level,
            actor_account_id=volunteer.account_id,
            note="left",
        )
        await tell_holder(ctx, volunteer, request)
    await show_profile(ctx, volunteer, in_place=True)
    ctx.reply(
        ctx._(
            "You have left the volunteers. Thank you for all your help! Send /volunteer if you "
            "want to join again."
        )
    )


async def tell_holder(ctx: Context, volunteer: Volunteer, request: Request) -> None:
    holder = (
        await ctx.session.get(Staff, request.assignee_staff_id)
        if request.assignee_staff_id
        else None
    )
    await tell_staff(
        ctx.session,
        holder,
        ctx.now,
        lambda t: t._(
            "👋 {name}, the volunteer who had claimed <b>{ref}</b>, has left the volunteers. "
            "The need is yours alone again.",
            name=escape(volunteer.name),
            ref=request.reference,
        ),
        request=request,
    )


router.step(FLOW, LEAVE_STEP, Step(render=render_leave, on_choice=on_leave))


# /volunteers: the coordinators' list -----------------------------------------------------------


async def list_scope(ctx: Context, code: str) -> tuple[list[str] | None, str | None] | None:
    """The units whose volunteers are listed, and the community whose link is shown; None when
    `code` is not in the viewer's area."""
    served = await served_units(ctx.session, ctx.staff)
    if code:
        unit = await ctx.session.get(Unit, code)
        if unit is None or unit.level not in ("community", "town"):
            return None
        if served is not None and code not in served:
            return None
        if unit.level == "town":
            rows = await ctx.session.exec(
                select(Unit.code).where(Unit.parent_code == code, Unit.level == "community")
            )
            return [code, *rows.all()], None
        return [code], code
    link = ctx.staff.unit_code if ctx.staff and ctx.staff.role == "coordinator" else None
    return served, link


@router.command("volunteers")
async def volunteers_command(ctx: Context) -> None:
    await show_list(ctx, ctx.inbound.args.strip().upper()[:MAX_CODE], 0)


@router.button(LIST_PREFIX)
async def on_list_page(ctx: Context) -> None:
    _, _, rest = ctx.inbound.button_data.partition(":")
    raw, _, code = rest.partition(":")
    offset = page_offset(raw)
    if offset is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    ctx.answer("")
    await show_list(ctx, code[:MAX_CODE], offset, in_place=True)


async def show_list(ctx: Context, code: str, offset: int, *, in_place: bool = False) -> None:
    served = await served_units(ctx.session, ctx.staff)
    if served == []:
        ctx.reply(
            ctx._(
                "/volunteers is for community coordinators, town officers and the district office."
            )
        )
        return
    scope = await list_scope(ctx, code)
    if scope is None:
        ctx.reply(
            ctx._(
                "There is no community {code} in your area. Send /volunteers alone for your "
                "whole area.",
                code=escape(code),
            )
        )
        return
    units, link_unit = scope
    where = col(Volunteer.unit_code).in_(units) if units is not None else None
    counted = select(Volunteer.status, func.count()).group_by(col(Volunteer.status))
    if where is not None:
        counted = counted.where(where)
    counts = dict((await ctx.session.exec(counted)).all())
    total = sum(counts.values())
    offset = clamp(offset, total)
    order = case(
        {status.value: index for index, status in enumerate(STATUS_ORDER)},
        value=col(Volunteer.status),
        else_=len(STATUS_ORDER),
    )
    listed = select(Volunteer).order_by(
        order, col(Volunteer.unit_code), col(Volunteer.name), col(Volunteer.id)
    )
    if where is not None:
        listed = listed.where(where)
    volunteers = list((await ctx.session.exec(listed.offset(offset).limit(PAGE))).all())

    pages = (total + PAGE - 1) // PAGE
    title = ctx._("🙋 <b>Volunteers</b>")
    if pages > 1:
        title += " · " + ctx._("page {page} of {pages}", page=offset // PAGE + 1, pages=pages)
    lines = [title]
    summary = [
        f"{ctx._(STATUS_LABELS[s])}: {counts[s.value]}" for s in STATUS_ORDER if counts.get(s.value)
    ]
    lines.append(" · ".join(summary) if summary else ctx._("No volunteers yet."))
    rows: list[list[Button]] = []
    for volunteer in volunteers:
        unit = await ctx.session.get(Unit, volunteer.unit_code)
        mark = "🎖" if volunteer.party_member else ""
        status = ctx._(STATUS_LABELS.get(volunteer.status, volunteer.status))
        lines.append(
            f"• {escape(volunteer.name)}{mark} — {escape(unit_label(ctx.t, unit))} · "
            f"{escape(categories_text(ctx.t, volunteer.category_list))} · {status}"
        )
        if volunteer.status == VolunteerStatus.PENDING:
            name = volunteer.name[:20]
            rows.append(
                [
                    Button("✅ " + name, data=f"{DECIDE_PREFIX}:{volunteer.id}:yes"),
                    Button("✖ " + name, data=f"{DECIDE_PREFIX}:{volunteer.id}:no"),
                ]
            )
    turns: list[Button] = []
    if offset > 0:
        turns.append(Button(ctx._("◀ Previous"), data=f"{LIST_PREFIX}:{offset - PAGE}:{code}"))
    if offset + PAGE < total:
        turns.append(Button(ctx._("Next ▶"), data=f"{LIST_PREFIX}:{offset + PAGE}:{code}"))
    if turns:
        rows.append(turns)
    if link_unit is not None and ctx.bot_username:
        lines.append(
            ctx._(
                "🔗 Forward this link to people who want to volunteer here: {url}",
                url=volunteer_url(ctx.bot_username, link_unit),
            )
        )
    elif link_unit is None:
        lines.append(ctx._("For a community's volunteer link: /volunteers CODE"))
    text = "\n".join(lines)
    if in_place:
        ctx.reply(text, rows, edit_message_id=ctx.inbound.message_id)
    else:
        ctx.reply(text, rows)
