"""/team: the staff below the viewer, and whether Huiyin can reach each of them.

    /team               the viewer's team, 10 a page: those Huiyin cannot reach first, then by
                        unit and name, each marked ✅ reachable, ⏳ not opened yet or 🚫 refused
                        (blocked, Telegram account deleted, chat not found)
    ◀ ▶ (tm:<offset>)   another page
    🔗 (tl:<staff id>)  the person's join link (an invite, domain.invites), as a message the
                        viewer forwards to them

The team (`team_clause`) is, for a community coordinator, the grid members of the community;
for a town officer, the coordinators and grid members of the town; for a district department,
the department's other staff; for the district admin, everyone else on the roster. Only active
roster entries count. Who may use it is who has an area (`domain.areas.area_of`), as for
/status and /stats; anyone else gets the same kind of polite refusal.

Every button is checked again when pressed: a page is a multiple of the page size, and a link
is made only for someone who is in the viewer's team now and cannot be reached, so a forged or
stale button makes nothing.

The morning digest (schedules.digest) counts who cannot be reached with `not_opened_clause` and
`refused_clause` over the same team, per unit and role for the whole district at once, so the
digest and /team count the same people; `out_of_reach_lines` words it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, false, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import Area, area_of, units_below
from domain.i18n import N_, Translator
from domain.invites import invite_url, issue_invite, start_payload
from domain.labels import ROLE_LABELS, format_time, unit_label
from domain.lifecycle import Level
from domain.messages import Button
from domain.reach import (
    Reach,
    is_reachable,
    reach_of,
    reachable_clause,
    refused_clause,
)
from handlers.base import Context, Router, escape, parse_id
from handlers.lookup import PAGE, Page, clamp, heading, page_offset, pager
from storage.models import Staff, Unit

router = Router()
PAGE_PREFIX = "tm"
LINK_PREFIX = "tl"
MAX_NAMES = 5  # names shown in the digest's line before "and N more"

REACH_ICONS: dict[Reach, str] = {
    Reach.REACHABLE: "✅",
    Reach.NOT_OPENED: "⏳",
    Reach.REFUSED: "🚫",
}
# Why Telegram refused (Staff.refused_reason, domain.reach.Refusal), in words.
REFUSAL_LABELS: dict[str, str] = {
    "blocked": N_("blocked Huiyin"),
    "deactivated": N_("Telegram account deleted"),
    "chat_not_found": N_("Telegram cannot find the chat"),
}


# Who is in the team, and whom Huiyin cannot reach -------------------------------------------


async def team_clause(
    session: AsyncSession, viewer: Staff | None, area: Area | None = None
) -> ColumnElement[bool] | None:
    """SQL: the active staff below `viewer` (whose `area` the caller may have found already);
    None for someone with no area."""
    area = area or await area_of(session, viewer)
    if viewer is None or area is None:
        return None
    active = col(Staff.active).is_(True)
    grids = sorted(area.grid_codes or ())
    grid_members = and_(col(Staff.role) == "grid_member", col(Staff.unit_code).in_(grids))
    if viewer.role == "coordinator":
        return and_(active, grid_members) if grids else false()
    if viewer.role == "town_officer":
        communities = [
            u.code
            for u in await units_below(session, viewer.unit_code)
            if u.level == Level.COMMUNITY.value
        ]
        coordinators = and_(col(Staff.role) == "coordinator", col(Staff.unit_code).in_(communities))
        return and_(active, or_(grid_members, coordinators))
    if viewer.role == "department":
        return and_(active, col(Staff.unit_code) == viewer.unit_code, col(Staff.id) != viewer.id)
    return and_(active, col(Staff.id) != viewer.id)  # the district admin: everyone


@dataclass(frozen=True, slots=True)
class Names:
    """How many, and the names of the first few (by unit, then name)."""

    total: int
    names: list[str]


@dataclass(frozen=True, slots=True)
class OutOfReach:
    not_opened: Names
    refused: Names

    @property
    def empty(self) -> bool:
        return not (self.not_opened.total or self.refused.total)


def names_text(t: Translator, part: Names) -> str:
    shown = ", ".join(escape(name) for name in part.names)
    more = part.total - len(part.names)
    if more > 0:
        shown += " " + t.ngettext("and {n} other", "and {n} others", more)
    return shown


def out_of_reach_lines(t: Translator, found: OutOfReach) -> list[str]:
    """The digest's lines on who cannot be reached (none when everyone can)."""
    lines: list[str] = []
    if found.not_opened.total:
        lines.append(
            t.ngettext(
                "📵 {n} of your staff has not opened Huiyin yet: {names}; send /team for "
                "their join links.",
                "📵 {n} of your staff have not opened Huiyin yet: {names}; send /team for "
                "their join links.",
                found.not_opened.total,
                names=names_text(t, found.not_opened),
            )
        )
    if found.refused.total:
        lines.append(
            t.ngettext(
                "🚫 {n} of your staff has blocked Huiyin or left Telegram: {names}; /team "
                "says which.",
                "🚫 {n} of your staff have blocked Huiyin or left Telegram: {names}; /team "
                "says which.",
                found.refused.total,
                names=names_text(t, found.refused),
            )
        )
    return lines


@dataclass(frozen=True, slots=True)
class Tally:
    total: int
    reachable: int
    refused: int

    @property
    def not_opened(self) -> int:
        return self.total - self.reachable - self.refused


async def tally(session: AsyncSession, team: ColumnElement[bool]) -> Tally:
    row = (
        await session.exec(
            select(
                func.count(),
                func.sum(case((reachable_clause(), 1), else_=0)),
                func.sum(case((refused_clause(), 1), else_=0)),
            )
            .select_from(Staff)
            .where(team)
        )
    ).one()
    total, reachable, refused = row
    return Tally(int(total or 0), int(reachable or 0), int(refused or 0))


def team_order() -> list[ColumnElement[object]]:
    """Those Huiyin cannot reach first, then by unit and name."""
    return [
        case((reachable_clause(), 1), else_=0),
        col(Staff.unit_code),
        col(Staff.name),
        col(Staff.id),
    ]


# /team ----------------------------------------------------------------------------------------


def refuse(ctx: Context) -> None:
    ctx.reply(
        ctx._(
            "/team is for community coordinators, town officers, district departments and the "
            "district admin."
        )
    )


def state_label(t: Translator, person: Staff) -> str:
    reach = reach_of(person)
    if reach is Reach.REACHABLE:
        return t._("reachable")
    if reach is Reach.NOT_OPENED:
        return t._("has not opened Huiyin yet")
    reason = REFUSAL_LABELS.get(person.refused_reason or "")
    return t._(reason) if reason else t._("Telegram refuses messages to them")


def person_line(t: Translator, person: Staff, unit: Unit | None) -> str:
    role = t._(ROLE_LABELS.get(person.role, person.role))
    line = (
        f"{REACH_ICONS[reach_of(person)]} <b>{escape(person.name)}</b> · {escape(role)}"
        f" · {escape(unit_label(t, unit))}"
    )
    if not is_reachable(person):
        line += " — " + escape(state_label(t, person))
    return line


@router.command("team")
async def team_command(ctx: Context) -> None:
    team = await team_clause(ctx.session, ctx.staff)
    if team is None:
        refuse(ctx)
        return
    await show_team(ctx, team, 0)


@router.button(PAGE_PREFIX)
async def on_team_page(ctx: Context) -> None:
    _, _, raw = ctx.inbound.button_data.partition(":")
    team = await team_clause(ctx.session, ctx.staff)
    offset = page_offset(raw)
    if team is None or offset is None:
        ctx.answer(ctx._("This button is no longer active."))
        return
    await show_team(ctx, team, offset)


async def show_team(ctx: Context, team: ColumnElement[bool], offset: int) -> None:
    counts = await tally(ctx.session, team)
    if counts.total == 0:
        ctx.reply(ctx._("There is nobody on the roster below you yet."))
        return
    offset = clamp(offset, counts.total)
    people = list(
        (
            await ctx.session.exec(
                select(Staff).where(team).order_by(*team_order()).offset(offset).limit(PAGE)
            )
        ).all()
    )
    codes = sorted({p.unit_code for p in people})
    units = {
        u.code: u for u in (await ctx.session.exec(select(Unit).where(col(Unit.code).in_(codes))))
    }
    page = Page([], counts.total, offset, {})
    title = ctx.t.ngettext(
        "<b>Your team: {n} person</b>", "<b>Your team: {n} people</b>", counts.total
    )
    lines = [
        heading(ctx, title, page),
        ctx._(
            "✅ {reachable} reachable · ⏳ {not_opened} not opened yet · 🚫 {refused} blocked "
            "or gone",
            reachable=counts.reachable,
            not_opened=counts.not_opened,
            refused=counts.refused,
        ),
        "",
    ]
    buttons: list[list[Button]] = []
    for person in people:
        lines.append(person_line(ctx.t, person, units.get(person.unit_code)))
        if not is_reachable(person):
            buttons.append(
                [
                    Button(
                        ctx._("🔗 Link for {name}", name=person.name),
                        data=f"{LINK_PREFIX}:{person.id}",
                    )
                ]
            )
    if counts.reachable < counts.total:
        lines += [
            "",
            ctx._(
                "Huiyin can write only to people who have opened it. Tap 🔗 for a person's "
                "join link and forward it to them."
            ),
        ]
    buttons.extend(pager(ctx, page, lambda label, at: Button(label, data=f"{PAGE_PREFIX}:{at}")))
    ctx.reply("\n".join(lines), buttons)


# A join link -----------------------------------------------------------------------------------


@router.button(LINK_PREFIX)
async def on_link_button(ctx: Context) -> None:
    """The join link of someone in the viewer's team who cannot be reached (checked on press)."""
    _, _, raw = ctx.inbound.button_data.partition(":")
    team = await team_clause(ctx.session, ctx.staff)
    staff_id = parse_id(raw)
    person = None
    if team is not None and staff_id is not None:
        person = (
            await ctx.session.exec(select(Staff).where(team, col(Staff.id) == staff_id))
        ).first()
    if person is None or ctx.staff is None:
        ctx.answer(ctx._("This person is not in your team."), alert=True)
        return
    if is_reachable(person):
        ctx.answer(
            ctx._("{name} has opened Huiyin already: no link is needed.", name=person.name),
            alert=True,
        )
        return
    invite = await issue_invite(ctx.session, person, ctx.now)
    role = ctx._(ROLE_LABELS.get(person.role, person.role))
    unit = unit_label(ctx.t, await ctx.session.get(Unit, person.unit_code))
    ctx.reply(
        ctx._(
            "🔗 The join link for {name}. Forward the next message to them: it works once, for "
            "them only, until {time}. Once they open it, Huiyin can reach them.",
            name=escape(person.name),
            time=format_time(invite.expires_at, ctx.zone),
        )
    )
    how = ctx._(
        "Huiyin, the community service bot: {viewer} asks you to join as {role} of {unit}. "
        "Your tasks will come to you there.",
        viewer=escape(ctx.staff.name),
        role=escape(role),
        unit=escape(unit),
    )
    if ctx.bot_username:
        url = invite_url(ctx.bot_username, invite)
        ctx.reply(
            how + "\n" + ctx._("Open this link to join: {url}", url=url),
            [[Button(ctx._("Open Huiyin"), url=url)]],
        )
    else:
        command = "<code>/start " + start_payload(invite) + "</code>"
        ctx.reply(
            how
            + "\n"
            + ctx._(
                "Open the Huiyin bot in Telegram and send it this line: {command}", command=command
            )
        )
