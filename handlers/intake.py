"""Reporting a need, for oneself or for a family member far from home.

    report:  kind ──► category ──► describe (text | voice | photo+caption) ──► confirm ──► submitted
               ◄─back─┘   ◄──back──┘                  ◄──────edit──────────┘   │
             category ──► the village has open needs like it: "Is it one of these?"
                          (handlers/shared.py) ──► ➕ Me too: a supporter, no new need
                          └─ "No, mine is different", or words typed ──► describe
             health or counselling: confirm ──► "send it?" (a separate yes) ──► submitted
    family:  saved members? ──► choose one ──────────────────────────────────────────► report: kind
                 ├─ add ─► name ─► relation ─► grid ─► phone (or skip) ─► told them? ─► saved ─┘
                 └─ link ─► the members: a "personal link" button for each one not linked,
                            "remove the link" (`bu:<id>`) for each linked one
    `bl:<id>` (on "saved", and in that list): a personal link for the member to forward to
              them (`/start b_<code>`, a t.me link when the bot's username is known); when
              they open it, their own account is tied to the entry (handlers/onboarding.py)

Cancel (button or /cancel) leaves any step without submitting; a /start mid-way resumes the step.
"""

from __future__ import annotations

import re

from sqlmodel import col, select

from domain.catalog import CATEGORY_BY_CODE, KINDS, categories_of
from domain.family_links import START_PREFIX, create_link
from domain.floods import next_submission_at
from domain.i18n import translator
from domain.labels import (
    RELATIONS,
    category_label,
    format_time,
    kind_label,
    relation_label,
    staff_label,
)
from domain.messages import Button, Outbound
from domain.privacy import is_sensitive
from domain.reach import account_reachable
from domain.requests import held_for_screening, submit_request
from handlers.base import Context, Router, Step, escape, parse_id
from handlers.cards import send_task_card
from handlers.common import MENU_PREFIX, show_menu
from handlers.offers import auto_offer
from handlers.picker import PICK_STEP, picker_step, place_path, show_picker
from handlers.screening import send_screen_card
from handlers.shared import similar_offer, similar_ref
from storage.models import Account, Beneficiary

router = Router()
REPORT = "report"
FAMILY = "family"
LINK_PREFIX = "bl"
UNLINK_PREFIX = "bu"
MAX_DESCRIPTION = 1000
MAX_NAME = 30
MAX_STORED_NAME = 50  # the width of `beneficiaries.name`; a Telegram name can be longer
MAX_PHONE = 20  # the width of `beneficiaries.phone`


# Report ----------------------------------------------------------------------------------


async def self_beneficiary(ctx: Context) -> Beneficiary | None:
    account = ctx.account
    if account is None or account.id is None or account.home_grid_code is None:
        return None
    existing = (
        await ctx.session.exec(
            select(Beneficiary).where(
                Beneficiary.owner_account_id == account.id, col(Beneficiary.is_self).is_(True)
            )
        )
    ).first()
    if existing is None:
        existing = Beneficiary(
            owner_account_id=account.id,
            is_self=True,
            name=(account.display_name or "—")[:MAX_STORED_NAME],
            grid_code=account.home_grid_code,
            created_at=ctx.now,
        )
    existing.grid_code = account.home_grid_code
    ctx.session.add(existing)
    await ctx.session.flush()
    return existing


async def start_report(ctx: Context, beneficiary: Beneficiary | None = None) -> None:
    if beneficiary is None:
        beneficiary = await self_beneficiary(ctx)
        if beneficiary is None:
            ctx.reply(ctx._("First, tell us where you live."))
            await show_picker(ctx, "onboarding")
            return
    ctx.go(REPORT, "kind", beneficiary_id=beneficiary.id)
    await render_kind(ctx)


async def render_kind(ctx: Context) -> None:
    beneficiary = await ctx.session.get(Beneficiary, ctx.data.get("beneficiary_id"))
    lead = ""
    if beneficiary is not None and not beneficiary.is_self:
        lead = ctx._("For {name}.", name=escape(beneficiary.name)) + " "
    ctx.reply(
        lead + ctx._("What kind of help is needed?"),
        [[ctx.choice(kind_label(ctx.t, code), code)] for code in KINDS]
        + [[ctx.choice(ctx._("✖ Cancel"), "cancel")]],
    )


async def on_kind(ctx: Context, value: str) -> None:
    if value not in KINDS:
        await render_kind(ctx)
        return
    ctx.go(REPORT, "category", kind=value)
    await render_category(ctx)


async def render_category(ctx: Context) -> None:
    options = [ctx.choice(ctx._(c.label), c.code) for c in categories_of(ctx.data["kind"])]
    rows = [options[i : i + 2] for i in range(0, len(options), 2)]
    rows.append([ctx.choice(ctx._("◀ Back"), "back"), ctx.choice(ctx._("✖ Cancel"), "cancel")])
    ctx.reply(ctx._("Which of these is closest?"), rows)


async def on_category(ctx: Context, value: str) -> None:
    if value == "back":
        ctx.go(REPORT, "kind")
        await render_kind(ctx)
        return
    if value not in {c.code for c in categories_of(ctx.data["kind"])}:
        await render_category(ctx)
        return
    # The village's open needs like it first, if any (render_similar goes on to describe
    # when there are none). Its reads ask nothing of the step just set: without autoflush the
    # conversation state is written once, at commit, not once for each step it passes.
    ctx.go(REPORT, "similar", category=value)
    with ctx.session.no_autoflush:
        await render_similar(ctx)


async def render_similar(ctx: Context) -> None:
    """The village's open needs of this category, each with "➕ Me too" (handlers/shared.py),
    before the resident describes theirs; words typed here are their description."""
    beneficiary = await ctx.session.get(Beneficiary, ctx.data.get("beneficiary_id"))
    offer = (
        await similar_offer(ctx, beneficiary, ctx.data["category"])
        if beneficiary is not None
        else None
    )
    if offer is None:
        ctx.go(REPORT, "describe")
        await render_describe(ctx)
        return
    text, rows = offer
    rows.append([ctx.choice(ctx._("No, mine is different"), "different")])
    rows.append([ctx.choice(ctx._("◀ Back"), "back"), ctx.choice(ctx._("✖ Cancel"), "cancel")])
    ctx.reply(text, rows, ref=similar_ref(ctx.chat_id))


async def on_similar(ctx: Context, value: str) -> None:
    if value == "back":
        await ctx.retire_pressed(similar_ref(ctx.chat_id))
        ctx.go(REPORT, "category")
        await render_category(ctx)
    elif value == "different":
        await ctx.retire_pressed(similar_ref(ctx.chat_id), ctx._("No, mine is different"))
        ctx.go(REPORT, "describe")
        await render_describe(ctx)


async def on_similar_input(ctx: Context) -> None:
    await on_describe_input(ctx)


async def render_describe(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "<b>{category}</b>\nPlease describe what is needed: type a few words, "
            "send a voice message, or send a photo with a caption.",
            category=escape(category_label(ctx.t, ctx.data["category"])),
        ),
        [[ctx.choice(ctx._("◀ Back"), "back"), ctx.choice(ctx._("✖ Cancel"), "cancel")]],
    )


async def on_describe_choice(ctx: Context, value: str) -> None:
    if value == "back":
        ctx.go(REPORT, "category")
        await render_category(ctx)


async def on_describe_input(ctx: Context) -> None:
    inbound = ctx.inbound
    text = inbound.text.strip()
    if len(text) > MAX_DESCRIPTION:
        ctx.reply(
            ctx._(
                "That is {length} characters; please keep it under {limit}. "
                "You can also send a voice message instead.",
                length=len(text),
                limit=MAX_DESCRIPTION,
            )
        )
        return
    if inbound.kind == "text" and text:
        ctx.go(REPORT, "confirm", description=text, media_kind=None, media_file_id=None)
    elif inbound.kind in ("photo", "voice"):
        ctx.go(
            REPORT,
            "confirm",
            description=text,
            media_kind=inbound.kind,
            media_file_id=inbound.file_id,
        )
    else:
        ctx.reply(ctx._("I can take text, a voice message or a photo here. Please try again."))
        return
    await render_confirm(ctx)


async def render_confirm(ctx: Context) -> None:
    data = ctx.data
    beneficiary = await ctx.session.get(Beneficiary, data.get("beneficiary_id"))
    lines = [ctx._("<b>Please check your request</b>")]
    if beneficiary is not None:
        who = escape(beneficiary.name) if not beneficiary.is_self else ctx._("yourself")
        lines.append(ctx._("For: {who}", who=who))
        lines.append(
            ctx._("Where: {place}", place=escape(await place_path(ctx, beneficiary.grid_code)))
        )
    lines.append(
        ctx._("Need: {category}", category=escape(category_label(ctx.t, data["category"])))
    )
    if data.get("description"):
        lines.append(ctx._("Details: {text}", text=escape(data["description"])))
    if data.get("media_kind") == "voice":
        lines.append(ctx._("🎤 with your voice message"))
    elif data.get("media_kind") == "photo":
        lines.append(ctx._("🖼 with your photo"))
    ctx.reply(
        "\n".join(lines),
        [
            [ctx.choice(ctx._("✅ Submit"), "submit")],
            [
                ctx.choice(ctx._("✏ Change the details"), "edit"),
                ctx.choice(ctx._("✖ Cancel"), "cancel"),
            ],
        ],
        ref=ctx.step_ref,
    )


async def on_confirm(ctx: Context, value: str) -> None:
    if value == "edit":
        await ctx.retire_pressed(ctx.step_ref, ctx._("✏ Change the details"))
        ctx.go(REPORT, "describe")
        await render_describe(ctx)
        return
    if value != "submit" or ctx.account is None:
        return
    if is_sensitive(ctx.data.get("category", "")):
        ctx.go(REPORT, "sensitive")
        await render_sensitive(ctx)
        return
    await submit(ctx)


async def render_sensitive(ctx: Context) -> None:
    """A health or counselling need is sent only after a second, separate "yes" (PIPL:
    sensitive personal information), saying who will read it."""
    ctx.reply(
        ctx._(
            "<b>{category}</b> is sensitive personal information. If you send it, the grid "
            "member of the area will read it and, if it is not met in time, the community or "
            "village, the street or town, the district's department for it and the district "
            "office. Do you agree to send it?",
            category=escape(category_label(ctx.t, ctx.data["category"])),
        ),
        [
            [ctx.choice(ctx._("✅ Yes, send it"), "send")],
            [ctx.choice(ctx._("◀ Back"), "back"), ctx.choice(ctx._("✖ Cancel"), "cancel")],
        ],
    )


async def on_sensitive(ctx: Context, value: str) -> None:
    if value == "back":
        ctx.go(REPORT, "confirm")
        await render_confirm(ctx)
        return
    if value != "send" or ctx.account is None:
        return
    await submit(ctx, sensitive_consent=True)


async def submit(ctx: Context, *, sensitive_consent: bool = False) -> None:
    assert ctx.account is not None
    data = ctx.data
    beneficiary = await ctx.session.get(Beneficiary, data.get("beneficiary_id"))
    if beneficiary is None or beneficiary.owner_account_id != ctx.account.id:
        await ctx.end_flow()
        show_menu(ctx, ctx._("Sorry, that request could not be completed. Please start again."))
        return
    if ctx.staff is None:
        allowed_at = await next_submission_at(
            ctx.session, ctx.account, ctx.now, ctx.limits.submissions_per_hour
        )
        if allowed_at is not None:
            # Over the hourly limit: nothing is submitted, and the request stays on this step,
            # so what they wrote is still here when they may send it.
            ctx.answer(ctx._("Not sent yet"))
            ctx.reply(
                ctx.t.ngettext(
                    "You have sent {n} request in the last hour, as many as one person "
                    "can send in an hour. This one is kept: tap ✅ Submit again after {time}. "
                    "If it is an emergency, please call your community office or 110/120.",
                    "You have sent {n} requests in the last hour, as many as one person "
                    "can send in an hour. This one is kept: tap ✅ Submit again after {time}. "
                    "If it is an emergency, please call your community office or 110/120.",
                    ctx.limits.submissions_per_hour,
                    time=format_time(allowed_at, ctx.zone)[-5:],
                ),
                [
                    [ctx.choice(ctx._("✅ Submit"), "submit")],
                    [ctx.choice(ctx._("✖ Cancel"), "cancel")],
                ],
            )
            return
    request, route = await submit_request(
        ctx.session,
        reporter=ctx.account,
        beneficiary=beneficiary,
        kind=CATEGORY_BY_CODE[data["category"]].kind or data["kind"],
        category=data["category"],
        description=data.get("description") or "",
        media_kind=data.get("media_kind"),
        media_file_id=data.get("media_file_id"),
        now=ctx.now,
        zone=ctx.zone,
        policy=ctx.policy,
    )
    if sensitive_consent:
        request.sensitive_consent_at = ctx.now
        ctx.session.add(request)
    await ctx.end_flow()
    await ctx.retire_pressed(ctx.step_ref, ctx._("✅ Submitted"))
    ctx.answer(ctx._("Submitted"))
    if route is None:
        show_menu(
            ctx,
            ctx._(
                "✅ Received. Your reference number is <b>{ref}</b>. No staff member is "
                "connected to Huiyin yet, so please also call your community office.",
                ref=request.reference,
            ),
        )
        return
    if held_for_screening(request):
        await send_screen_card(ctx.session, ctx.zone, request, route.staff, ctx.now)
        show_menu(
            ctx,
            ctx._(
                "✅ Received. Your reference number is <b>{ref}</b>. You will hear from us "
                "when someone takes it on.",
                ref=request.reference,
            ),
        )
        return
    await auto_offer(ctx, request)  # categories offered to volunteers at once (offers.py)
    await send_task_card(
        ctx.session,
        ctx.zone,
        request,
        route.staff,
        ctx.now,
        burst_window=ctx.limits.burst_window,
    )
    show_menu(
        ctx,
        ctx._(
            "✅ Submitted. Your reference number is <b>{ref}</b>.\n"
            "{who} will handle it. You will hear from us when it is accepted.",
            ref=request.reference,
            who=escape(staff_label(ctx.t, route.staff)),
        ),
    )


router.step(REPORT, "kind", Step(render=render_kind, on_choice=on_kind))
router.step(REPORT, "category", Step(render=render_category, on_choice=on_category))
router.step(
    REPORT, "similar", Step(render=render_similar, on_choice=on_similar, on_input=on_similar_input)
)
router.step(
    REPORT,
    "describe",
    Step(render=render_describe, on_choice=on_describe_choice, on_input=on_describe_input),
)
router.step(REPORT, "confirm", Step(render=render_confirm, on_choice=on_confirm))
router.step(REPORT, "sensitive", Step(render=render_sensitive, on_choice=on_sensitive))


# Family -----------------------------------------------------------------------------------


async def family_members(ctx: Context) -> list[Beneficiary]:
    if ctx.account is None or ctx.account.id is None:
        return []
    rows = await ctx.session.exec(
        select(Beneficiary)
        .where(Beneficiary.owner_account_id == ctx.account.id, col(Beneficiary.is_self).is_(False))
        .order_by(col(Beneficiary.id))
    )
    return list(rows.all())


async def start_family(ctx: Context) -> None:
    if await family_members(ctx):
        ctx.go(FAMILY, "choose")
        await render_choose(ctx)
    else:
        ctx.go(FAMILY, "name")
        await render_name(ctx)


async def render_choose(ctx: Context) -> None:
    rows = [
        [ctx.choice(f"{b.name} ({relation_label(ctx.t, b.relation)})", f"b{b.id}")]
        for b in await family_members(ctx)
    ]
    rows.append([ctx.choice(ctx._("➕ Add a family member"), "add")])
    rows.append([ctx.choice(ctx._("🔗 Let them answer on their own phone"), "link")])
    rows.append([ctx.choice(ctx._("✖ Cancel"), "cancel")])
    ctx.reply(ctx._("Who is the request for?"), rows)


async def on_choose(ctx: Context, value: str) -> None:
    if value == "add":
        ctx.go(FAMILY, "name")
        await render_name(ctx)
        return
    if value == "link":
        await ctx.end_flow()
        await show_link_choices(ctx)
        return
    chosen = next((b for b in await family_members(ctx) if f"b{b.id}" == value), None)
    if chosen is None:
        await render_choose(ctx)
        return
    await start_report(ctx, chosen)


async def render_name(ctx: Context) -> None:
    ctx.reply(
        ctx._("What is your family member's name?"), [[ctx.choice(ctx._("✖ Cancel"), "cancel")]]
    )


async def on_name(ctx: Context) -> None:
    name = ctx.inbound.text.strip()
    if ctx.inbound.kind != "text" or not name:
        ctx.reply(ctx._("Please type the name."))
        return
    if len(name) > MAX_NAME:
        ctx.reply(ctx._("Please keep the name under {limit} characters.", limit=MAX_NAME))
        return
    ctx.go(FAMILY, "relation", name=name)
    await render_relation(ctx)


async def render_relation(ctx: Context) -> None:
    options = [ctx.choice(ctx._(label), code) for code, label in RELATIONS.items()]
    rows = [options[i : i + 3] for i in range(0, len(options), 3)]
    rows.append([ctx.choice(ctx._("✖ Cancel"), "cancel")])
    ctx.reply(ctx._("How is {name} related to you?", name=escape(ctx.data["name"])), rows)


async def on_relation(ctx: Context, value: str) -> None:
    if value not in RELATIONS:
        await render_relation(ctx)
        return
    await on_relation_value(ctx, value)


async def on_relation_typed(ctx: Context) -> None:
    text = ctx.inbound.text.strip()
    if ctx.inbound.kind == "text" and 0 < len(text) <= 20:
        await on_relation_value(ctx, text)
    else:
        ctx.reply(ctx._("Please tap one of the buttons, or type a short word such as “aunt”."))


async def on_relation_value(ctx: Context, relation: str) -> None:
    ctx.update_data(relation=relation)
    ctx.reply(ctx._("Where does {name} live?", name=escape(ctx.data["name"])))
    await show_picker(ctx, FAMILY, whom={"relation": relation, "name": ctx.data["name"]})


async def on_family_grid(ctx: Context, grid_code: str) -> None:
    ctx.go(FAMILY, "phone", grid_code=grid_code)
    await render_phone(ctx)


async def render_phone(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "A phone number for {name}, so the grid member can call? (optional)",
            name=escape(ctx.data["name"]),
        ),
        [[ctx.choice(ctx._("Skip"), "skip"), ctx.choice(ctx._("✖ Cancel"), "cancel")]],
    )


PHONE_PATTERN = re.compile(r"^\+?\d{5,20}$")


async def on_phone_typed(ctx: Context) -> None:
    phone = re.sub(r"[\s-]", "", ctx.inbound.text)
    if ctx.inbound.kind != "text" or not PHONE_PATTERN.match(phone) or len(phone) > MAX_PHONE:
        ctx.reply(ctx._("That does not look like a phone number. Type digits only, or tap Skip."))
        return
    ctx.go(FAMILY, "informed", phone=phone)
    await render_informed(ctx)


async def on_phone_choice(ctx: Context, value: str) -> None:
    if value == "skip":
        ctx.go(FAMILY, "informed", phone=None)
        await render_informed(ctx)


async def render_informed(ctx: Context) -> None:
    """The family member is not here to agree: the resident ticks that they told them (PIPL:
    the person whose details are kept is informed), and the tick is kept with its date."""
    ctx.reply(
        ctx._(
            "Before we keep {name}'s details: have you told {name} that Huiyin keeps their "
            "name, relation, place and phone number, and that the staff handling their needs "
            "will see them?",
            name=escape(ctx.data["name"]),
        ),
        [
            [ctx.choice(ctx._("☑ Yes, I have told them"), "told")],
            [ctx.choice(ctx._("✖ Cancel"), "cancel")],
        ],
    )


async def on_informed(ctx: Context, value: str) -> None:
    if value == "told":
        await save_family_member(ctx, ctx.data.get("phone"))


async def save_family_member(ctx: Context, phone: str | None) -> None:
    assert ctx.account is not None and ctx.account.id is not None
    data = ctx.data
    member = Beneficiary(
        owner_account_id=ctx.account.id,
        is_self=False,
        name=data["name"],
        relation=data.get("relation", ""),
        grid_code=data["grid_code"],
        phone=phone,
        created_at=ctx.now,
        informed_at=ctx.now,
    )
    ctx.session.add(member)
    await ctx.session.flush()
    ctx.reply(
        ctx._(
            "Saved {name}. Next time you can choose them straight away.", name=escape(member.name)
        ),
        [[link_button(ctx, member)]],
    )
    await start_report(ctx, member)


# A family member's personal link ----------------------------------------------------------


def link_button(ctx: Context, member: Beneficiary) -> Button:
    return Button(
        ctx._("🔗 A link for {name}'s own Telegram", name=member.name),
        data=f"{LINK_PREFIX}:{member.id}",
    )


def links_ref(ctx: Context) -> str:
    return f"links:{ctx.chat_id}"


async def show_link_choices(ctx: Context, lead: str | None = None) -> None:
    """The resident's family members: who is linked (by their Telegram name), each with a
    button to remove the link; the others with a link button."""
    members = await family_members(ctx)
    lines = [lead] if lead else []
    lines.append(
        ctx._(
            "A family member who uses Telegram can be linked to their entry: they then hear "
            "how the requests you file for them go, see them under “My requests”, and are "
            "asked too whether each was solved. Choose whom to send a personal link."
        )
    )
    rows: list[list[Button]] = []
    for member in members:
        if member.account_id is not None:
            linked = await ctx.session.get(Account, member.account_id)
            lines.append(
                ctx._(
                    "✅ {name} is linked (Telegram: {account}).",
                    name=escape(member.name),
                    account=escape((linked.display_name if linked else "") or "?"),
                )
            )
            rows.append(
                [
                    Button(
                        ctx._("✂ Remove the link for {name}", name=member.name),
                        data=f"{UNLINK_PREFIX}:{member.id}",
                    )
                ]
            )
        else:
            rows.append([link_button(ctx, member)])
    rows.append([Button(ctx._("🏠 Menu"), data=f"{MENU_PREFIX}:home")])
    ctx.reply("\n".join(lines), rows, ref=links_ref(ctx))


@router.button(UNLINK_PREFIX)
async def on_unlink_button(ctx: Context) -> None:
    """Remove a family member's link (checked on press): their account no longer hears about
    the entry's requests, sees them, or rates them; they are told once."""
    _, _, raw_id = ctx.inbound.button_data.partition(":")
    member_id = parse_id(raw_id)
    member = (
        await ctx.session.get(Beneficiary, member_id, with_for_update=True)
        if member_id is not None
        else None
    )
    account = ctx.account
    if (
        member is None
        or account is None
        or account.id is None
        or member.owner_account_id != account.id
        or member.is_self
    ):
        ctx.answer(ctx._("This family member is not in your list."), alert=True)
        return
    if member.account_id is None:
        ctx.answer(ctx._("{name} is not linked any more.", name=member.name), alert=True)
        await ctx.retire_pressed(links_ref(ctx))
        return
    unlinked = await ctx.session.get(Account, member.account_id)
    member.account_id = None
    ctx.session.add(member)
    if unlinked is not None and account_reachable(unlinked):
        t = translator(unlinked.language)
        ctx.send(
            Outbound(
                chat_id=unlinked.chat_id,
                text=t._(
                    "{proxy} removed your link to the family entry “{name}” on Huiyin: you "
                    "will no longer hear about the requests filed for it.",
                    proxy=escape(account.display_name or "?"),
                    name=escape(member.name),
                ),
            )
        )
    ctx.answer(ctx._("Link removed"))
    await ctx.retire_pressed(links_ref(ctx))
    await show_link_choices(
        ctx, ctx._("The link for {name} was removed.", name=escape(member.name))
    )


@router.button(LINK_PREFIX)
async def on_link_button(ctx: Context) -> None:
    """Make a personal link for one of the presser's own family members (checked on press)."""
    _, _, raw_id = ctx.inbound.button_data.partition(":")
    member_id = parse_id(raw_id)
    member = await ctx.session.get(Beneficiary, member_id) if member_id is not None else None
    account = ctx.account
    if (
        member is None
        or account is None
        or account.id is None
        or member.owner_account_id != account.id
        or member.is_self
    ):
        ctx.answer(ctx._("This family member is not in your list."), alert=True)
        return
    if member.account_id is not None:
        ctx.answer(ctx._("{name} is already linked.", name=member.name), alert=True)
        return
    link = await create_link(ctx.session, member, account.id, ctx.now)
    start = START_PREFIX + link.code
    ctx.reply(
        ctx._(
            "Here is a personal link for {name}. Forward the next message to them. It works "
            "once, for them only, until {time}.",
            name=escape(member.name),
            time=format_time(link.expires_at, ctx.zone),
        )
    )
    how = ctx._(
        "Huiyin, the community help line: {proxy} registered you as a family member.",
        proxy=escape(account.display_name or "?"),
    )
    if ctx.bot_username:
        url = f"https://t.me/{ctx.bot_username}?start={start}"
        ctx.reply(
            how + "\n" + ctx._("Open this link to be linked: {url}", url=url),
            [[Button(ctx._("Open Huiyin"), url=url)]],
        )
    else:
        command = "<code>/start " + start + "</code>"
        ctx.reply(
            how
            + "\n"
            + ctx._(
                "Open the Huiyin bot in Telegram and send it this line: {command}", command=command
            )
        )


router.step(FAMILY, "choose", Step(render=render_choose, on_choice=on_choose))
router.step(FAMILY, "name", Step(render=render_name, on_input=on_name))
router.step(
    FAMILY,
    "relation",
    Step(render=render_relation, on_choice=on_relation, on_input=on_relation_typed),
)
router.step(FAMILY, PICK_STEP, picker_step(on_family_grid))
router.step(
    FAMILY, "phone", Step(render=render_phone, on_choice=on_phone_choice, on_input=on_phone_typed)
)
router.step(FAMILY, "informed", Step(render=render_informed, on_choice=on_informed))
