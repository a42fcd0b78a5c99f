"""/stats: the figures of the viewer's area for a period, as text and as a chart.

    /stats                     this month so far, the viewer's whole area
    /stats today|week|month    today, this week so far, this month so far (or the same in Chinese)
    /stats 2026-10             a calendar month
    /stats [PERIOD] UNIT       one town or community inside the viewer's area (code or name)

Who sees what: a community coordinator their community, a town officer their town, a district
department the district within its remit's categories, the district admin the district
(`domain.areas`). A unit outside the viewer's area gets the same answer as one that does
not exist, so the question reveals nothing. The summary breaks the figures down one level
down (a town's communities, a community's grids) and by category; the chart shows the rates
per unit and the requests received per day. Every figure is defined in docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

from sqlalchemy import func, or_
from sqlmodel import col, select

from domain import charts
from domain.areas import Area, area_of, area_of_unit, units_below
from domain.claim_figures import ClaimantRow, Record, area_figures
from domain.i18n import Translator, translator
from domain.labels import category_label, unit_label
from domain.lifecycle import Level
from domain.messages import MAX_TEXT, Outbound
from domain.metrics import Rates
from domain.reports import Figures, Period, Report, build_report, parse_period
from domain.shared import shared_figures
from handlers.base import Context, Router, escape
from storage.models import Unit

router = Router()
LOOKS_LIKE_A_MONTH = re.compile(r"\d{4}-\d+")
MAX_UNIT_TEXT = 40


def percent(t: Translator, numerator: int, denominator: int) -> str:
    """For example "92% (46/50)"; "—" when there is nothing to measure (no denominator)."""
    if denominator == 0:
        return "—"
    return t._(
        "{percent}% ({numerator}/{denominator})",
        percent=round(100 * numerator / denominator),
        numerator=numerator,
        denominator=denominator,
    )


def rates_line(t: Translator, rates: Rates) -> str:
    return t._(
        "Response rate {response} · resolution rate {resolution} · satisfaction rate "
        "{satisfaction}",
        response=percent(t, rates.responded, rates.received),
        resolution=percent(t, rates.resolved, rates.received),
        satisfaction=percent(t, rates.satisfied, rates.rated),
    )


def counts_line(t: Translator, figures: Figures) -> str:
    return t._(
        "Received {received} · accepted {accepted} · resolved {resolved} · closed {closed} · "
        "open {open} · overdue {overdue}",
        received=figures.received,
        accepted=figures.accepted,
        resolved=figures.resolved,
        closed=figures.closed,
        open=figures.open,
        overdue=figures.overdue,
    )


def part_line(t: Translator, name: str, figures: Figures) -> str:
    rates = figures.rates
    return t._(
        "<b>{name}</b>: {received} received, {open} open · response {response} · resolution "
        "{resolution} · satisfaction {satisfaction}",
        name=escape(name),
        received=figures.received,
        open=figures.open,
        response=percent(t, rates.responded, rates.received),
        resolution=percent(t, rates.resolved, rates.received),
        satisfaction=percent(t, rates.satisfied, rates.rated),
    )


def parts_heading(t: Translator, level: Level) -> str:
    """What the area's parts are: the level below the area's own unit."""
    if level is Level.COMMUNITY:
        return t._("By grid")
    if level is Level.TOWN:
        return t._("By community")
    return t._("By town")


# /stats names this many volunteers and units by name; the ledger's "Volunteers" sheet has all.
MAX_CLAIMANTS = 10


def record_text(t: Translator, record: Record) -> str:
    return t._(
        "claims {claims} · done {done} · {hours} h · satisfaction {satisfaction}",
        claims=record.claims,
        done=record.done,
        hours=f"{record.hours:g}",
        satisfaction=percent(t, record.satisfied, record.rated),
    )


def claimants_text(t: Translator, total: Record, rows: list[ClaimantRow]) -> str:
    """The volunteers' and units' figures of the area in the period (docs/metrics.md, "Claimed
    needs"): the total, then the first MAX_CLAIMANTS, most done first."""
    lines = [t._("🙋 <b>Volunteers and units</b>: {record}", record=record_text(t, total))]
    for row in rows[:MAX_CLAIMANTS]:
        name = escape(row.name) + (" 🏢" if row.kind == "unit" else "")
        lines.append(f"• {name}: {record_text(t, row.record)}")
    if len(rows) > MAX_CLAIMANTS:
        lines.append(
            t._("… and {count} more; /export has them all.", count=len(rows) - MAX_CLAIMANTS)
        )
    return "\n".join(lines)


def shared_line(t: Translator, shared: tuple[int, int]) -> str:
    """Shared needs (共性需求) received in the period, and their supporters ("me too"); shown
    when there are any."""
    needs, supporters = shared
    return t._(
        "🤝 Shared needs {needs} · supporters {supporters}", needs=needs, supporters=supporters
    )


def summary(
    t: Translator,
    report: Report,
    unit_level: Level,
    names: dict[str, Unit],
    shared: tuple[int, int] | None = None,
) -> str:
    """The text of /stats, never over Telegram's 4096 characters (the lines of the longest
    section give way first, with a note saying so)."""
    head = [
        t._(
            "📊 <b>{area}</b> · {period}",
            area=escape(unit_label(t, names.get(report.area.unit_code))),
            period=escape(report.period.label),
        ),
        counts_line(t, report.total),
        rates_line(t, report.total.rates),
    ]
    if shared is not None and shared[0]:
        head.append(shared_line(t, shared))
    if report.area.categories is not None:
        head.append(t._("Only the categories in your remit are counted."))
    parts = [part_line(t, unit_label(t, names.get(code)), f) for code, f in report.by_part]
    categories = [part_line(t, category_label(t, code), f) for code, f in report.by_category]
    by_category = t._("By category")
    sections = [
        ["", f"<b>{escape(parts_heading(t, unit_level))}</b>", *parts],
        ["", f"<b>{escape(by_category)}</b>", *categories]
        if categories
        else ["", t._("No requests were received in this period.")],
    ]
    cut = t._("… and more; the chart and /export have everything.")
    while len("\n".join(head + sections[0] + sections[1])) > MAX_TEXT:
        longest = max(sections, key=len)
        if longest[-1] != cut:
            longest.append(cut)
        del longest[-2]
    return "\n".join(head + sections[0] + sections[1])


def chart_texts(t: Translator, report: Report, area_name: str) -> charts.ChartTexts:
    return charts.ChartTexts(
        title=t._("{area} · {period}", area=area_name, period=report.period.label),
        rates_title=t._("Response, resolution and satisfaction rates (%)"),
        days_title=t._("Requests received per day"),
        response=t._("Response rate"),
        resolution=t._("Resolution rate"),
        satisfaction=t._("Satisfaction rate"),
        requests=t._("Requests"),
        no_data=t._("No requests"),
    )


def chart_for(t: Translator, report: Report, names: dict[str, Unit]) -> charts.StatsChart:
    """The chart's words in the viewer's language when a font can write them; otherwise in
    English with the units' English names, never as boxes."""
    chart: charts.StatsChart | None = None
    for language in (t, translator("en")):
        area_name = unit_label(language, names.get(report.area.unit_code))
        parts = [(unit_label(language, names.get(code)), f.rates) for code, f in report.by_part]
        chart = charts.StatsChart(
            chart_texts(language, report, area_name), parts, report.per_day, charts.Font(None)
        )
        font = charts.font_for(chart.words())
        if font is not None:
            return replace(chart, font=font)
    assert chart is not None
    return chart


async def unit_named(ctx: Context, text: str) -> Unit | None:
    """A unit by its code, Chinese name or English name."""
    wanted = text.strip()
    rows = await ctx.session.exec(
        select(Unit).where(
            or_(
                func.upper(col(Unit.code)) == wanted.upper(),
                col(Unit.name) == wanted,
                func.lower(col(Unit.name_en)) == wanted.lower(),
            )
        )
    )
    return rows.first()


async def inside(ctx: Context, area: Area, unit: Unit) -> bool:
    if unit.code == area.unit_code:
        return True
    return unit.code in {u.code for u in await units_below(ctx.session, area.unit_code)}


def usage(ctx: Context) -> str:
    return ctx._(
        "Usage: /stats [today|week|month|YYYY-MM] [UNIT]. For example: /stats 2026-10, or "
        "/stats week QS-JB-TH (a town or community in your area, by code or name)."
    )


@router.command("stats")
async def stats_command(ctx: Context) -> None:
    viewer = await area_of(ctx.session, ctx.staff)
    if viewer is None:
        ctx.reply(
            ctx._(
                "/stats is for community coordinators, town officers, district departments "
                "and the district admin."
            )
        )
        return
    words = ctx.inbound.args.split()
    period: Period | None = parse_period("", ctx.now, ctx.zone)
    unit_text = ""
    if words:
        first = parse_period(words[0], ctx.now, ctx.zone)
        if first is not None:
            period, unit_text = first, " ".join(words[1:])
        elif (
            len(words) > 1 and await unit_named(ctx, " ".join(words)) is None
        ) or LOOKS_LIKE_A_MONTH.fullmatch(words[0]):
            ctx.reply(usage(ctx))
            return
        else:
            unit_text = " ".join(words)
    assert period is not None
    area = viewer
    if unit_text:
        unit = await unit_named(ctx, unit_text)
        if unit is None or not await inside(ctx, viewer, unit):
            ctx.reply(
                ctx._(
                    "There is no unit “{unit}” in your area. {usage}",
                    unit=escape(unit_text[:MAX_UNIT_TEXT]),
                    usage=usage(ctx),
                )
            )
            return
        narrowed = await area_of_unit(ctx.session, unit.code, viewer.categories)
        if narrowed is None:
            ctx.reply(
                ctx._(
                    "{unit} is a grid: its figures are in its community's. Ask for a community, "
                    "a town or the whole area.",
                    unit=escape(unit_label(ctx.t, unit)),
                )
            )
            return
        area = narrowed
    await show_stats(ctx, area, period)


async def show_stats(ctx: Context, area: Area, period: Period) -> None:
    report = await build_report(ctx.session, area, period, ctx.now, ctx.zone)
    codes = [area.unit_code, *(code for code, _ in report.by_part)]
    rows = await ctx.session.exec(select(Unit).where(col(Unit.code).in_(codes)))
    names = {unit.code: unit for unit in rows.all()}
    own = names.get(area.unit_code)
    unit_level = Level(own.level) if own is not None else Level.DISTRICT
    shared = await shared_figures(ctx.session, area.clause(), period.start, period.end)
    ctx.reply(summary(ctx.t, report, unit_level, names, shared))
    total, claimants = await area_figures(ctx.session, area.clause(), period.start, period.end)
    if total.claims:
        ctx.reply(claimants_text(ctx.t, total, claimants))
    chart = chart_for(ctx.t, report, names)
    # Drawing takes a few hundred milliseconds of CPU: off the event loop.
    png = await asyncio.to_thread(chart.render)
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=escape(chart.texts.title),
            upload_kind="photo",
            upload_name=f"stats-{area.unit_code}-{period.label[:10]}.png",
            upload_bytes=png,
        )
    )
