"""/review: the review table (分层考核) of the viewer's area for a period — the top and bottom
five in the chat, the whole table as an .xlsx document.

    /review                    this year so far
    /review 2026 | 2026-Q4 | 2026-11 | 2026-01-01..2026-06-30
    /review year|quarter|month|week|today  (今年, 本季度, 本月 … too)

Who sees what (domain/review.py, `scope_of`): a community coordinator their community's row and
its grid members; a town officer their town, its communities and grid members; a department its
own row; the district admin every row. The ranking is of the level just below the viewer's own
(grid members, communities, towns and departments); a department sees its own row. Every
figure and the score are defined in docs/metrics.md; the weights are the district's
(HUIYIN_REVIEW_WEIGHTS).
"""

from __future__ import annotations

import asyncio
import io
import re

from domain.i18n import Translator
from domain.labels import unit_name
from domain.messages import Outbound
from domain.review import Row, Table, build_table, parse_review_period, scope_of
from domain.review_book import row_name, weights_text, write_review
from handlers.base import Context, Router, escape
from handlers.stats import percent

router = Router()
SHOWN = 5
MAX_PERIOD_TEXT = 40


def file_name(unit_code: str, label: str) -> str:
    safe = re.sub(r"[^0-9A-Za-z-]+", "_", label.replace(" – ", "_to_")).strip("_")
    return f"huiyin-review-{unit_code}-{safe}.xlsx"


def row_line(t: Translator, table: Table, row: Row, place: int | None = None) -> str:
    score = row.score(table.weights)
    shown = "—" if score is None else format(score, ".1f")
    head = "" if place is None else str(place) + ". "
    return head + t._(
        "<b>{name}</b>: score {score} · satisfaction {satisfaction} · from below {below} · "
        "on time {on_time} · received {received}, passed up {passed_up}",
        name=escape(row_name(t, row)),
        score=shown,
        satisfaction=percent(t, row.satisfied, row.rated),
        below=percent(t, row.below_satisfied, row.below_rated),
        on_time=percent(t, row.on_time, row.resolved),
        received=row.received,
        passed_up=row.passed_up,
    )


def summary(t: Translator, table: Table, area: str) -> str:
    lines = [
        t._("📋 <b>Review of {area}</b> · {period}", area=escape(area), period=table.period.label),
        t._("Weights: {weights}", weights=escape(weights_text(t, table.weights))),
    ]
    own = table.own()
    if own is not None:
        lines += ["", row_line(t, table, own)]
    ranked = [r for r in table.ranked() if r is not own]
    if ranked:
        if len(ranked) <= 2 * SHOWN:
            lines += ["", t._("<b>Ranking</b>")]
            lines += [row_line(t, table, r, n) for n, r in enumerate(ranked, start=1)]
        else:
            lines += ["", t._("<b>Top five</b>")]
            lines += [row_line(t, table, r, n) for n, r in enumerate(ranked[:SHOWN], start=1)]
            lines += ["", t._("<b>Bottom five</b>")]
            first = len(ranked) - SHOWN + 1
            lines += [row_line(t, table, r, n) for n, r in enumerate(ranked[-SHOWN:], start=first)]
    elif own is None or own.score(table.weights) is None:
        lines += ["", t._("Nothing to score yet in this period.")]
    lines += ["", t._("Every figure and each part of the score are in the file.")]
    return "\n".join(lines)


@router.command("review")
async def review_command(ctx: Context) -> None:
    scope = await scope_of(ctx.session, ctx.staff)
    if scope is None:
        ctx.reply(
            ctx._(
                "/review is for community coordinators, town officers, district departments "
                "and the district admin."
            )
        )
        return
    text = ctx.inbound.args.strip()
    period = parse_review_period(text, ctx.now, ctx.zone) if len(text) <= MAX_PERIOD_TEXT else None
    if period is None:
        ctx.reply(
            ctx._(
                "Usage: /review [PERIOD]: a year (2026), a quarter (2026-Q4), a month (2026-11), "
                "days (2026-01-01..2026-06-30), or year, quarter, month, week, today. Without "
                "one: this year so far."
            )
        )
        return
    table = await build_table(ctx.session, scope, period, ctx.review_weights)
    area = await unit_name(ctx.session, ctx.t, scope.unit_code)
    ctx.reply(summary(ctx.t, table, area))
    buffer = io.BytesIO()
    # Writing cells is CPU work: off the event loop.
    await asyncio.to_thread(write_review, table, buffer, ctx.t, area)
    ctx.send(
        Outbound(
            chat_id=ctx.chat_id,
            text=ctx._(
                "📋 Review of {area}, {period}: every unit's figures and score.",
                area=escape(area),
                period=escape(period.label),
            ),
            upload_kind="document",
            upload_name=file_name(scope.unit_code, period.label),
            upload_bytes=buffer.getvalue(),
        )
    )
