"""Onboarding: welcome, consent, where the resident lives; staff recognition.

    /start ─► consent ──agree──► pick (town → community → grid) ──► main menu
       │         └─decline─► nothing stored, "send /start when ready"
       ├─ /start g_<GRID>  (poster link): consent, then placed in that grid at once
       ├─ /start i_<CODE>  (invite from `huiyin invite`): bound to the roster entry
       ├─ /start b_<CODE>  (a family member's personal link): consent, then tied to the entry
       │                   the resident made for them (placed in its grid); the resident is told
       ├─ /start v_<CODE>  (a community's volunteer link): consent, then the volunteer
       │                   application (handlers/volunteers.py) for that community
       └─ already placed: main menu, or back to the step a resident left half-way

Staff are recognised by the Telegram id in the roster, by an invite link, or by sharing their
contact (/join) when the phone number matches the roster.
"""

from __future__ import annotations

import re

from sqlmodel import col, select

from domain.areas import AREA_ROLES, area_of
from domain.family_links import START_PREFIX, Outcome, check, find_link, spend
from domain.i18n import translator
from domain.labels import ROLE_LABELS, unit_name
from domain.messages import Outbound
from domain.outbox import enqueue
from domain.privacy import ERASE_ROLES, PHONELOG_ROLES
from domain.reach import is_reachable, mark_written
from domain.volunteers import VOLUNTEER_LINK_PREFIX, bind_waiting
from handlers.base import Context, Router, Step, escape
from handlers.common import show_menu
from handlers.picker import PICK_STEP, picker_step, place_path, show_picker
from storage.models import Account, Beneficiary, BeneficiaryLink, Invite, Staff, Unit

router = Router()
FLOW = "onboarding"
CONSENT_STEP = "consent"


def ensure_account(ctx: Context) -> Account:
    if ctx.account is None:
        ctx.account = Account(
            telegram_id=ctx.inbound.user_id,
            chat_id=ctx.chat_id,
            display_name=ctx.inbound.display_name[:100],
            language=ctx.t.language,
            created_at=ctx.now,
        )
        ctx.session.add(ctx.account)
    return ctx.account


async def grid_from_link(ctx: Context, payload: str) -> str | None:
    if not payload.startswith("g_"):
        return None
    unit = await ctx.session.get(Unit, payload[2:].upper())
    return unit.code if unit is not None and unit.level == "grid" else None


@router.command("start")
async def start(ctx: Context) -> None:
    payload = ctx.inbound.args.strip()
    if payload.startswith("i_"):
        await redeem_invite(ctx, payload[2:])
        return
    if payload.startswith(START_PREFIX) and await open_family_link(ctx, payload[2:]):
        return
    if payload.startswith(VOLUNTEER_LINK_PREFIX):
        from handlers.volunteers import open_volunteer_link  # it builds on this module

        if await open_volunteer_link(ctx, payload[len(VOLUNTEER_LINK_PREFIX) :]):
            return
    preset = await grid_from_link(ctx, payload)
    if payload.startswith("g_") and preset is None:
        ctx.reply(ctx._("That grid link is not valid any more; please choose your place below."))
    if ctx.staff is not None:
        ensure_account(ctx)
    consented = ctx.account is not None and ctx.account.consent_at is not None
    if not consented and ctx.staff is None:
        ctx.go(FLOW, CONSENT_STEP, preset_grid=preset)
        await render_consent(ctx)
        return
    account = ensure_account(ctx)
    await greet_roster_volunteer(ctx, account)
    if preset is not None:
        await settle_home(ctx, preset)
        return
    if ctx.state is not None and (ctx.flow != FLOW or ctx.step == PICK_STEP):
        ctx.reply(ctx._("Welcome back! Let's continue where you left off."))
        await ctx.resume()
        return
    if ctx.staff is not None:
        await greet_staff(ctx, ctx.staff)
        return
    if account.home_grid_code is None:
        await show_picker(ctx, FLOW)
        return
    show_menu(ctx, ctx._("Welcome back to Huiyin. What would you like to do?"))


async def greet_roster_volunteer(ctx: Context, account: Account) -> None:
    """A volunteer the community imported with this Telegram id (docs/roster.md) is bound to
    the account the first time they open the bot, and told."""
    await ctx.session.flush()
    volunteer = await bind_waiting(ctx.session, account)
    if volunteer is not None:
        ctx.reply(
            ctx._(
                "🙋 Your community has registered you as a volunteer of {place}. /volunteer "
                "shows your profile.",
                place=escape(await place_path(ctx, volunteer.unit_code)),
            )
        )


CONSENT_REF = "consent"


def consent_text(ctx: Context) -> str:
    """What the resident agrees to: what is kept, who sees it, and their rights. It has to be
    true: docs/privacy.md says the same at length."""
    return ctx._(
        "👋 Welcome to <b>Huiyin</b>, your community's help line.\n\n"
        "Tell us what you or your family need, and the grid member who looks after your "
        "area will take it up. You will hear back at every step.\n\n"
        "<b>What we keep:</b> your Telegram name, where you live, the family members you "
        "register (name, relation, place, phone if you give it) and what you tell us (text, "
        "voice, photos).\n"
        "<b>Who sees it:</b> the grid member of the area; if a need is not taken up in time, "
        "or is passed up, the community or village, the street or town, the district "
        "department for that kind of need and the district office. Staff of the community, "
        "the town and the district export their area's requests as a spreadsheet. A phone "
        "number is shown in full only to whoever handles the need and to the district "
        "office, and each time is recorded.\n"
        "Health and counselling needs are sent only after you agree again.\n"
        "/mydata shows what we keep about you; /forget erases it.\n\n"
        "Do you agree?"
    )


async def render_consent(ctx: Context) -> None:
    ctx.reply(
        consent_text(ctx),
        [[ctx.choice(ctx._("✅ I agree"), "yes"), ctx.choice(ctx._("No, thanks"), "no")]],
        ref=CONSENT_REF,
    )


def settle_consent_message(ctx: Context, chosen: str) -> None:
    """The consent question loses its buttons and shows what was chosen, so an old "agree"
    cannot be pressed again and the chat reads as it happened."""
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=consent_text(ctx) + "\n\n<b>" + chosen + "</b>",
            edit_ref=CONSENT_REF,
        )
    )


async def on_consent(ctx: Context, value: str) -> None:
    if value == "no":
        settle_consent_message(ctx, ctx._("No, thanks"))
        await ctx.end_flow()
        ctx.reply(ctx._("All right, nothing has been stored. Send /start whenever you are ready."))
        return
    if value != "yes":
        return
    settle_consent_message(ctx, ctx._("✅ I agree"))
    preset = ctx.data.get("preset_grid")
    link_code = ctx.data.get("link_code")
    volunteer_unit = ctx.data.get("volunteer_unit")
    account = ensure_account(ctx)
    account.consent_at = ctx.now
    ctx.session.add(account)
    if volunteer_unit:
        from handlers.volunteers import open_volunteer_link

        await open_volunteer_link(ctx, volunteer_unit)
        return
    await greet_roster_volunteer(ctx, account)
    if link_code:
        # Linked, or refused with the menu or the place picker shown: either way, done here.
        await complete_family_link(ctx, link_code)
        return
    if preset:
        await settle_home(ctx, preset)
    else:
        ctx.reply(ctx._("Thank you. Where do you live?"))
        await show_picker(ctx, FLOW)


async def settle_home(ctx: Context, grid_code: str) -> None:
    account = ensure_account(ctx)
    account.home_grid_code = grid_code
    ctx.session.add(account)
    if ctx.flow == FLOW:
        await ctx.end_flow()
    lead = ctx._(
        "📍 You are registered in {place}.", place=escape(await place_path(ctx, grid_code))
    )
    show_menu(ctx, lead + "\n\n" + ctx._("What would you like to do?"))


router.step(FLOW, CONSENT_STEP, Step(render=render_consent, on_choice=on_consent))


# A family member's personal link ----------------------------------------------------------


async def open_family_link(ctx: Context, code: str) -> bool:
    """`/start b_<code>`: True when the link was taken up (linked, or consent asked first);
    False after a polite refusal, when the usual /start goes on."""
    found = await find_link(ctx.session, code, ctx.now)
    if found is None:
        refuse_family_link(ctx, Outcome.INVALID, None)
        return False
    link, beneficiary = found
    outcome = check(link, beneficiary, ctx.account.id if ctx.account else None)
    if outcome != Outcome.LINKED:
        refuse_family_link(ctx, outcome, beneficiary)
        return False
    proxy = await ctx.session.get(Account, link.created_by_account_id)
    ctx.reply(
        ctx._(
            "👋 {proxy} registered you on Huiyin as a family member and sent you this link. "
            "Once you are linked, you will be asked yourself whether the requests made for "
            "you were solved.",
            proxy=escape(proxy.display_name if proxy and proxy.display_name else "?"),
        )
    )
    consented = ctx.account is not None and ctx.account.consent_at is not None
    if not consented and ctx.staff is None:
        ctx.go(FLOW, CONSENT_STEP, preset_grid=None, link_code=code)
        await render_consent(ctx)
        return True
    return await complete_family_link(ctx, code)


def refuse_family_link(ctx: Context, outcome: Outcome, beneficiary: Beneficiary | None) -> None:
    if outcome == Outcome.OWN_ENTRY:
        text = ctx._(
            "This is the link you made for {name}. Please forward it to them: it links their "
            "own Telegram account, not yours.",
            name=escape(beneficiary.name if beneficiary else "?"),
        )
    elif outcome == Outcome.ALREADY:
        text = ctx._("You are already linked; nothing more is needed.")
    elif outcome == Outcome.TAKEN:
        text = ctx._(
            "This family entry is already linked to another Telegram account. If that is "
            "wrong, please ask the family member who sent the link."
        )
    else:
        text = ctx._(
            "This family link is not valid (it may have been used or expired). Please ask "
            "the family member who sent it for a new one."
        )
    ctx.reply(text)


async def complete_family_link(ctx: Context, code: str) -> bool:
    """Tie the entry to this account, checking the link again (it may have been spent while
    the consent question was open). False after a refusal."""
    account = ensure_account(ctx)
    await ctx.session.flush()
    found = await find_link(ctx.session, code, ctx.now)
    outcome = check(found[0], found[1], account.id) if found else Outcome.INVALID
    if found is None or outcome != Outcome.LINKED:
        if ctx.flow == FLOW:
            await ctx.end_flow()
        refuse_family_link(ctx, outcome, found[1] if found else None)
        if account.home_grid_code is None:
            ctx.reply(ctx._("First, tell us where you live."))
            await show_picker(ctx, FLOW)
        else:
            show_menu(ctx)
        return False
    link, beneficiary = found
    spend(ctx.session, link, beneficiary, account, ctx.now)
    if ctx.flow == FLOW:
        await ctx.end_flow()
    await tell_proxy_linked(ctx, link, beneficiary)
    lead = ctx._(
        "✅ You are linked. You will hear how the requests made for you go and find them "
        "under “My requests”; when one is done, you will be asked whether it is solved. "
        "You or your family may answer."
    )
    place = ctx._(
        "📍 You are registered in {place}.",
        place=escape(await place_path(ctx, account.home_grid_code or beneficiary.grid_code)),
    )
    show_menu(ctx, lead + "\n" + place)
    return True


async def tell_proxy_linked(ctx: Context, link: BeneficiaryLink, beneficiary: Beneficiary) -> None:
    """The resident who sent the link hears once that it was taken up (the link is spent)."""
    proxy = await ctx.session.get(Account, link.created_by_account_id)
    if proxy is None:
        return
    t = translator(proxy.language)
    enqueue(
        ctx.session,
        Outbound(
            chat_id=proxy.chat_id,
            text=t._(
                "✅ {name} opened your link and is now linked on Huiyin: they hear how your "
                "requests for them go. When one is done, both of you are asked; the first "
                "answer counts.",
                name=escape(beneficiary.name),
            ),
        ),
        ctx.now,
        not_before=ctx.policy.quiet_hours.release(ctx.now, ctx.zone),
    )


router.step(FLOW, PICK_STEP, picker_step(settle_home))


async def greet_staff(ctx: Context, staff: Staff) -> None:
    if ctx.flow == FLOW:  # e.g. the consent question shown before they were recognised
        await ctx.end_flow()
    role = ctx._(ROLE_LABELS.get(staff.role, staff.role))
    unit = await unit_name(ctx.session, ctx.t, staff.unit_code)
    show_menu(
        ctx,
        ctx._(
            "Welcome, {name}. You are registered as {role} of {unit}. "
            "New tasks will arrive here; /tasks lists the open ones.",
            name=escape(staff.name),
            role=role,
            unit=escape(unit),
        ),
    )


async def bind_staff(ctx: Context, staff: Staff) -> bool:
    """Tie a roster entry to this Telegram account; refuse if either is already tied elsewhere."""
    user_id = ctx.inbound.user_id
    if staff.telegram_id not in (None, user_id):
        ctx.reply(
            ctx._(
                "This roster entry is already linked to another Telegram account. "
                "Please ask your district administrator for help."
            ),
            remove_keyboard=True,
        )
        return False
    if ctx.staff is not None and ctx.staff.id != staff.id:
        ctx.reply(
            ctx._(
                "Your Telegram account is already linked to {name} in the roster.",
                name=escape(ctx.staff.name),
            ),
            remove_keyboard=True,
        )
        return False
    if not is_reachable(staff) or staff.telegram_id != user_id:
        ctx.came_within_reach = True
    staff.telegram_id = user_id
    mark_written(staff, None, ctx.now)
    ctx.session.add(staff)
    ctx.staff = staff
    ensure_account(ctx)
    return True


async def redeem_invite(ctx: Context, code: str) -> None:
    invite = (
        await ctx.session.get(Invite, code) if re.fullmatch(r"[A-Za-z0-9_-]{4,32}", code) else None
    )
    if invite is None or invite.used_at is not None or invite.expires_at <= ctx.now:
        ctx.reply(
            ctx._(
                "This invite link is not valid (it may have been used or expired). "
                "Please ask your administrator for a new one."
            )
        )
        return
    staff = await ctx.session.get(Staff, invite.staff_id)
    if staff is None or not await bind_staff(ctx, staff):
        return
    invite.used_at = ctx.now
    invite.used_by_telegram_id = ctx.inbound.user_id
    ctx.session.add(invite)
    await greet_staff(ctx, staff)


@router.command("join")
async def join(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "Staff members: tap the button below to share your phone number. If it matches "
            "the roster, your tasks will come to this chat."
        ),
        request_contact=ctx._("📱 Share my phone number"),
    )


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def phone_spellings(phone: str) -> list[str]:
    """The ways the roster may write a shared number: the roster keeps "+8613800000013" or
    "13800000013" as typed, while Telegram shares "8613800000013" or "+86 138 0000 0013"."""
    digits = re.sub(r"\D", "", phone)
    if not digits:
        return []
    national = normalise_phone(phone)
    spellings = {digits, "+" + digits, national}
    if len(national) == 11:  # a mainland mobile number
        spellings |= {"86" + national, "+86" + national}
    return sorted(spellings)


@router.input("contact")
async def on_contact(ctx: Context) -> None:
    if ctx.inbound.contact_user_id != ctx.inbound.user_id:
        ctx.reply(
            ctx._("Please share your own number with the button, not someone else's contact."),
            request_contact=ctx._("📱 Share my phone number"),
        )
        return
    spellings = phone_spellings(ctx.inbound.contact_phone)
    staff = (await ctx.session.exec(select(Staff).where(col(Staff.phone).in_(spellings)))).first()
    if staff is None and ctx.account is not None and ctx.account.consent_at is not None:
        volunteer = await bind_waiting(ctx.session, ctx.account, spellings)
        if volunteer is not None:
            if ctx.flow == "volunteer":  # applying, when the roster knew them already
                await ctx.end_flow()
            ctx.reply(
                ctx._(
                    "✅ Your number matches the volunteer roster of {place}: you are a "
                    "volunteer. /volunteer shows your profile.",
                    place=escape(await place_path(ctx, volunteer.unit_code)),
                ),
                remove_keyboard=True,
            )
            return
    if staff is None:
        ctx.reply(
            ctx._(
                "This number is not in the staff roster. Residents do not need to share "
                "their number: just use the menu."
            ),
            remove_keyboard=True,
        )
        return
    if await bind_staff(ctx, staff):
        ctx.reply(ctx._("✅ Thank you, your number matches the roster."), remove_keyboard=True)
        await greet_staff(ctx, staff)


@router.command("help")
async def show_help(ctx: Context) -> None:
    parts = [
        ctx._(
            "<b>How Huiyin works</b>\n"
            "• Tap “Report a need”, choose what it is about, describe it by text, voice or "
            "photo, and confirm.\n"
            "• Family far away can report for a parent at home with “Report for a family "
            "member”.\n"
            "• The grid member for the area gets your request at once; you are told when it "
            "is accepted and when it is done.\n"
            "• “My requests” shows where each request stands.\n\n"
            "Commands: /start menu · /cancel stop what you are doing · /help this text"
        )
    ]
    parts.append(
        ctx._(
            "Your data: /mydata what Huiyin keeps about you · /forget withdraw consent and erase it"
        )
    )
    parts.append(ctx._("Volunteers: /volunteer offer your help, or see your volunteer profile"))
    if ctx.staff is None:
        parts.append(ctx._("Staff: /join links your roster entry"))
    else:
        parts.append(ctx._("Staff: /tasks your open tasks"))
    # Only those with an area are shown the commands that work on one (domain.areas).
    if await area_of(ctx.session, ctx.staff) is not None:
        parts.append(
            ctx._(
                "Your area: /status REF a request and its history · /overdue what is late · "
                "/find TEXT search requests · /stats [period] [unit] figures and a chart · "
                "/export [period] the ledger as a spreadsheet · /reassign move a request"
            )
        )
        parts.append(ctx._("Your team: /team who Huiyin can reach, and join links for the others"))
        parts.append(
            ctx._("Review: /review [period] each unit's figures, rating from below and score")
        )
        parts.append(
            ctx._("Floods: /nuisance REF to review a person's new needs before anyone else")
        )
        parts.append(
            ctx._(
                "Shared needs: /shared REF mark a need shared · /merge REF REF merge a later "
                "duplicate into it"
            )
        )
        if ctx.staff is not None and ctx.staff.role in ERASE_ROLES:
            parts.append(
                ctx._(
                    "A resident who asks by phone to be erased: /forget and one of their references"
                )
            )
        if ctx.staff is not None and ctx.staff.role in PHONELOG_ROLES:
            parts.append(ctx._("/phonelog who opened a full phone number"))
    if ctx.staff is not None and ctx.staff.role in ("grid_member", *AREA_ROLES):
        parts.append(ctx._("Posters: /poster QR posters of your grids for the notice boards"))
    if ctx.staff is not None and ctx.staff.role in ("coordinator", "town_officer", "admin"):
        parts.append(
            ctx._("/volunteers the volunteers of your area, their approval and the join link")
        )
    ctx.reply("\n".join(parts))
    if ctx.account is not None or ctx.staff is not None:
        show_menu(ctx)
