"""The review table (分层考核): for a period and an area, one row per unit at each level — grid
members, communities/villages, towns, departments (and the district) — with what each did
with the needs it held, the residents' three rates on its own work, the rating from below, and
a weighted score anyone can recompute from the parts shown beside it.

Definitions (docs/metrics.md, "The review table"). The cohort is the requests received
(`created_at`) in the period, as for /stats. Cancelled and merged requests are not counted.
A unit's figures come from its part in each request's timeline:

    received    the unit held it at some time (routed, escalated, passed or reassigned to it)
    claimed     someone of the unit accepted it
    responded   the unit accepted it with no deadline of its own passing first
    resolved    it stands resolved or closed now, and its latest resolution was the unit's
    on time     resolved by the unit with no deadline of its own passing while it held it
    passed up   it left the unit upwards: passed up by hand, or escalated on a missed deadline
    rated / satisfied   the residents' verdict on the unit's own resolution (the verdict that
                followed it; a reopened round keeps its verdict for the unit that did it)
    from below  ratings by the units below that passed it up (domain/upward.py): rated, and
                satisfied or fairly satisfied

A grid member is a row of their own (the person); every other level is its unit. A deadline
"passing while it held it" is what the sweep records: an escalation away (then the unit no
longer has it) or an "overdue" entry when no one above could take it.

The parts a district can weight (`HUIYIN_REVIEW_WEIGHTS`): response, resolution and
satisfaction rates, the on-time rate (on time ÷ resolved) and the from-below rate. The score is
Σ weight × part ÷ Σ weight over the parts that have a value (a part with no denominator is left
out, not counted as 0), shown as 0–100.

The table reads the cohort's requests and their timelines in batches (keyset on the id), so
memory holds one batch of timelines at a time, not the period's.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import units_below
from domain.lifecycle import LADDER, Action, Level
from domain.metrics import DONE, NOT_COUNTED
from domain.reports import Period, local_midnight, parse_period
from domain.upward import RATED
from domain.verdicts import FAIRLY, SATISFIED
from storage.models import Request, RequestEvent, Staff, Unit, UpwardRating

BATCH = 1000
PARTS: tuple[str, ...] = ("response", "resolution", "satisfaction", "on_time", "from_below")
DEFAULT_WEIGHTS_TEXT = "satisfaction=50,from_below=30,on_time=20"
YEAR = re.compile(r"(\d{4})")
QUARTER = re.compile(r"(\d{4})-?[qQ]([1-4])")
SPAN = re.compile(r"(\d{4}-\d{1,2}-\d{1,2})\s*(?:\.\.|~|～|至|to)\s*(\d{4}-\d{1,2}-\d{1,2})")
YEAR_WORDS = frozenset({"", "year", "今年", "本年"})
QUARTER_WORDS = frozenset({"quarter", "本季度", "本季"})
ASSIGNING = frozenset(
    {
        Action.ROUTE.value,
        Action.ESCALATE.value,
        Action.DECLINE.value,
        Action.REASSIGN.value,
        Action.REOPEN.value,
    }
)
SATISFIED_ANSWERS = (SATISFIED, FAIRLY)


# Weights ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each part counts in the score: (part, weight) pairs, weights > 0."""

    parts: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> Weights:
        """ "satisfaction=50,from_below=30,on_time=20" (any of PARTS, any positive numbers;
        they need not add up to 100: each counts in proportion)."""
        found: dict[str, float] = {}
        for item in (p.strip() for p in text.split(",")):
            if not item:
                continue
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in PARTS:
                raise ValueError(f"unknown part {name!r} (the parts: {', '.join(PARTS)})")
            if name in found:
                raise ValueError(f"{name} is given twice")
            try:
                weight = float(value.strip().removesuffix("%"))
            except ValueError:
                raise ValueError(f"{item!r}: write it as {name}=30") from None
            if not weight > 0 or weight == float("inf"):
                raise ValueError(f"{item!r}: a weight must be a number above 0")
            found[name] = weight
        if not found:
            raise ValueError("no parts given; for example satisfaction=50,from_below=30,on_time=20")
        return cls(tuple((name, found[name]) for name in PARTS if name in found))

    def share(self, part: str) -> float:
        """The weight of `part` as a fraction of all the weights (for display)."""
        total = sum(w for _, w in self.parts)
        return dict(self.parts).get(part, 0.0) / total


DEFAULT_WEIGHTS = Weights.parse(DEFAULT_WEIGHTS_TEXT)


# Periods ------------------------------------------------------------------------------------


def _period(
    first: date, following: date, label: str, now: datetime, zone: ZoneInfo
) -> Period | None:
    tomorrow = local_midnight(now.astimezone(zone).date() + timedelta(days=1), zone)
    start = local_midnight(first, zone)
    end = min(local_midnight(following, zone), tomorrow)
    return Period(start, end, label) if start < end else None


def parse_review_period(text: str, now: datetime, zone: ZoneInfo) -> Period | None:
    """A year ("2026", or "year"/今年: this year so far, the default), a quarter ("2026-Q4",
    "2026Q4", or "quarter"/本季度), a span of days ("2026-01-01..2026-06-30", ends included),
    or what /stats takes (today, week, month, YYYY-MM). Ends with today at the latest."""
    word = text.strip().lower()
    today = now.astimezone(zone).date()
    if word in YEAR_WORDS:
        word = str(today.year)
    if word in QUARTER_WORDS:
        word = f"{today.year}-q{(today.month - 1) // 3 + 1}"
    if (year := YEAR.fullmatch(word)) is not None:
        number = int(year.group(1))
        if number < 2000:
            return None
        return _period(date(number, 1, 1), date(number + 1, 1, 1), str(number), now, zone)
    if (quarter := QUARTER.fullmatch(word)) is not None:
        number, q = int(quarter.group(1)), int(quarter.group(2))
        if number < 2000:
            return None
        first = date(number, 3 * q - 2, 1)
        following = date(number + 1, 1, 1) if q == 4 else date(number, 3 * q + 1, 1)
        return _period(first, following, f"{number}-Q{q}", now, zone)
    if (span := SPAN.fullmatch(word)) is not None:
        try:
            first, last = (date.fromisoformat(_padded(d)) for d in span.groups())
        except ValueError:
            return None
        if last < first or first.year < 2000:
            return None
        return _period(first, last + timedelta(days=1), f"{first} – {last}", now, zone)
    return parse_period(word, now, zone)


def _padded(day: str) -> str:
    year, month, dom = day.split("-")
    return f"{year}-{int(month):02d}-{int(dom):02d}"


# Scope --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose rows a review shows: the unit's own, the units below it, and the grid members of
    its grids (a department: its own row only)."""

    unit_code: str
    level: Level
    unit_codes: tuple[str, ...]  # unit rows, the scope's own first
    grid_codes: frozenset[str]  # grid member rows: members of these grids
    whole_district: bool

    def requests(self) -> ColumnElement[bool]:
        """The requests the rows can have held (a department's or the district's: any)."""
        if self.whole_district or self.level is Level.DEPARTMENT:
            return true()
        return col(Request.grid_code).in_(sorted(self.grid_codes))


async def scope_of_unit(session: AsyncSession, code: str) -> Scope | None:
    unit = await session.get(Unit, code)
    if unit is None or unit.level == Level.GRID.value:
        return None
    if unit.level == Level.DEPARTMENT.value:
        return Scope(code, Level.DEPARTMENT, (code,), frozenset(), whole_district=False)
    below = await units_below(session, code)
    level_order = {level.value: index for index, level in enumerate(reversed(LADDER))}
    units = sorted(
        (u for u in below if u.level != Level.GRID.value),
        key=lambda u: (level_order.get(u.level, 99), u.code),
    )
    return Scope(
        unit_code=code,
        level=Level(unit.level),
        unit_codes=(code, *(u.code for u in units)),
        grid_codes=frozenset(u.code for u in below if u.level == Level.GRID.value),
        whole_district=unit.level == Level.DISTRICT.value,
    )


async def scope_of(session: AsyncSession, staff: Staff | None) -> Scope | None:
    """A coordinator: their community and its grid members; a town officer: their town, its
    communities and grid members; a department: its own row; an admin: the whole district."""
    if staff is None or not staff.active:
        return None
    if staff.role in ("coordinator", "town_officer", "department"):
        return await scope_of_unit(session, staff.unit_code)
    if staff.role == "admin":
        district = (
            await session.exec(select(Unit.code).where(Unit.level == Level.DISTRICT.value))
        ).first()
        return await scope_of_unit(session, district) if district else None
    return None


# Rows ---------------------------------------------------------------------------------------

Key = tuple[str, str]  # ("staff", "<id>") for a grid member, ("unit", "<code>") otherwise


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(slots=True)
class Row:
    key: Key
    level: str  # grid, community, town, department, district
    name: str
    name_en: str
    unit_code: str  # the unit's code; a grid member's grid
    received: int = 0
    claimed: int = 0
    responded: int = 0
    resolved: int = 0
    on_time: int = 0
    passed_up: int = 0
    rated: int = 0  # residents' verdicts on the unit's own resolutions
    satisfied: int = 0
    below_rated: int = 0  # ratings from the units below
    below_satisfied: int = 0

    def part(self, name: str) -> float | None:
        return {
            "response": ratio(self.responded, self.received),
            "resolution": ratio(self.resolved, self.received),
            "satisfaction": ratio(self.satisfied, self.rated),
            "on_time": ratio(self.on_time, self.resolved),
            "from_below": ratio(self.below_satisfied, self.below_rated),
        }[name]

    def score(self, weights: Weights) -> float | None:
        """Σ weight × part ÷ Σ weight over the parts with a value, as 0–100; None if none has."""
        known = [(w, p) for name, w in weights.parts if (p := self.part(name)) is not None]
        if not known:
            return None
        return 100 * sum(w * p for w, p in known) / sum(w for w, _ in known)


@dataclass(slots=True)
class Table:
    scope: Scope
    period: Period
    weights: Weights
    rows: list[Row] = field(default_factory=list)

    def ranked(self) -> list[Row]:
        """The rows one level below the scope's own (a community's grid members, a town's
        communities, the district's towns and departments), best score first; rows with no
        score are left out."""
        below = {
            Level.COMMUNITY: ("grid",),
            Level.TOWN: ("community",),
            Level.DISTRICT: ("town", "department"),
        }.get(self.scope.level)
        candidates = (
            [r for r in self.rows if r.level in below]
            if below is not None
            else [r for r in self.rows if r.key == ("unit", self.scope.unit_code)]
        )
        scored = [(r.score(self.weights), r) for r in candidates]
        return [
            r
            for s, r in sorted(scored, key=lambda sr: (-(sr[0] or 0), sr[1].name))
            if s is not None
        ]

    def own(self) -> Row | None:
        return next((r for r in self.rows if r.key == ("unit", self.scope.unit_code)), None)


@dataclass(slots=True)
class _Tally:
    received: set[int] = field(default_factory=set)
    claimed: set[int] = field(default_factory=set)
    responded: set[int] = field(default_factory=set)
    resolved: set[int] = field(default_factory=set)
    on_time: set[int] = field(default_factory=set)
    passed_up: set[int] = field(default_factory=set)
    verdicts: dict[int, str] = field(default_factory=dict)  # request → satisfaction
    below: dict[int, list[str]] = field(default_factory=dict)  # request → ratings from below


def _rank(level: str | None) -> int:
    try:
        return LADDER.index(Level(level or ""))
    except ValueError:
        return -1


class Step(NamedTuple):
    """What the table reads of one timeline entry (plain columns: building ORM objects for a
    year of timelines would cost more than the rest of the work)."""

    action: str
    actor_staff_id: int | None
    assignee_staff_id: int | None
    from_level: str | None
    to_level: str | None
    note: str | None


STEP_COLUMNS = (
    col(RequestEvent.action),
    col(RequestEvent.actor_staff_id),
    col(RequestEvent.assignee_staff_id),
    col(RequestEvent.from_level),
    col(RequestEvent.to_level),
    col(RequestEvent.note),
)


def walk(
    rid: int,
    status: str,
    events: Sequence[Step],
    key_of: dict[int, Key],
    tallies: defaultdict[Key, _Tally],
) -> None:
    """One request's timeline, into the tallies of the units that held it."""
    holder: Key | None = None
    late = False  # a deadline of the current holding passed
    last_resolver: Key | None = None
    resolved_on_time = False
    for event in events:
        action = event.action
        if action in ASSIGNING and event.assignee_staff_id is not None:
            new = key_of.get(event.assignee_staff_id)
            if (
                action in (Action.DECLINE.value, Action.ESCALATE.value)
                and holder is not None
                and _rank(event.to_level) > _rank(event.from_level)
            ):
                tallies[holder].passed_up.add(rid)
            holder, late = new, False
            if new is not None:
                tallies[new].received.add(rid)
        elif action == Action.OVERDUE.value:
            late = True
        elif action == Action.ACCEPT.value:
            who = key_of.get(event.actor_staff_id or 0) or holder
            if who is not None:
                tallies[who].claimed.add(rid)
                if not late:
                    tallies[who].responded.add(rid)
        elif action == Action.RESOLVE.value:
            last_resolver = key_of.get(event.actor_staff_id or 0) or holder
            resolved_on_time = not late
        elif action == Action.VERDICT.value and last_resolver is not None:
            for line in (event.note or "").split("\n"):
                if line.startswith("satisfaction:"):
                    tallies[last_resolver].verdicts[rid] = line.removeprefix("satisfaction:")
    if status in DONE and last_resolver is not None:
        tallies[last_resolver].resolved.add(rid)
        if resolved_on_time:
            tallies[last_resolver].on_time.add(rid)


async def build_table(
    session: AsyncSession, scope: Scope, period: Period, weights: Weights
) -> Table:
    staff_rows = (await session.exec(select(Staff))).all()
    key_of: dict[int, Key] = {
        s.id: (("staff", str(s.id)) if s.role == "grid_member" else ("unit", s.unit_code))
        for s in staff_rows
        if s.id is not None
    }
    tallies: defaultdict[Key, _Tally] = defaultdict(_Tally)
    cohort = and_(
        scope.requests(),
        col(Request.status).not_in(sorted(NOT_COUNTED)),
        col(Request.created_at) >= period.start,
        col(Request.created_at) < period.end,
    )
    last_id = 0
    while True:
        batch = list(
            (
                await session.exec(
                    select(col(Request.id), col(Request.status))
                    .where(cohort, col(Request.id) > last_id)
                    .order_by(col(Request.id))
                    .limit(BATCH)
                )
            ).all()
        )
        if not batch:
            break
        ids = [rid for rid, _ in batch]
        events: dict[int, list[Step]] = defaultdict(list)
        rows = await session.exec(
            select(col(RequestEvent.request_id), *STEP_COLUMNS)
            .where(col(RequestEvent.request_id).in_(ids))
            .order_by(col(RequestEvent.request_id), col(RequestEvent.at), col(RequestEvent.id))
        )
        for request_id, *step in rows.all():
            events[request_id].append(Step(*step))
        for rid, status in batch:
            walk(rid, status, events.get(rid, []), key_of, tallies)
        ratings = await session.exec(
            select(
                col(UpwardRating.request_id),
                col(UpwardRating.rated_unit_code),
                col(UpwardRating.rating),
            )
            .where(col(UpwardRating.request_id).in_(ids))
            .where(UpwardRating.state == RATED)
        )
        for request_id, rated_unit, rating in ratings.all():
            tallies[("unit", rated_unit)].below.setdefault(request_id, []).append(rating or "")
        last_id = ids[-1]
        if len(batch) < BATCH:
            break
    return Table(scope, period, weights, await _rows(session, scope, tallies, staff_rows))


async def _rows(
    session: AsyncSession,
    scope: Scope,
    tallies: dict[Key, _Tally],
    staff_rows: Iterable[Staff],
) -> list[Row]:
    units = {
        u.code: u
        for u in (
            await session.exec(select(Unit).where(col(Unit.code).in_(list(scope.unit_codes))))
        ).all()
    }
    rows: list[Row] = []
    for code in scope.unit_codes:
        unit = units.get(code)
        if unit is not None:
            rows.append(Row(("unit", code), unit.level, unit.name, unit.name_en, code))
    members = sorted(
        (
            s
            for s in staff_rows
            if s.role == "grid_member"
            and s.unit_code in scope.grid_codes
            and (s.active or ("staff", str(s.id)) in tallies)
        ),
        key=lambda s: (s.unit_code, s.id or 0),
    )
    for member in members:
        rows.append(
            Row(("staff", str(member.id)), Level.GRID.value, member.name, "", member.unit_code)
        )
    for row in rows:
        tally = tallies.get(row.key)
        if tally is None:
            continue
        row.received = len(tally.received)
        row.claimed = len(tally.claimed)
        row.responded = len(tally.responded)
        row.resolved = len(tally.resolved)
        row.on_time = len(tally.on_time)
        row.passed_up = len(tally.passed_up)
        row.rated = len(tally.verdicts)
        row.satisfied = sum(1 for v in tally.verdicts.values() if v in SATISFIED_ANSWERS)
        ratings = [r for rs in tally.below.values() for r in rs]
        row.below_rated = len(ratings)
        row.below_satisfied = sum(1 for r in ratings if r in SATISFIED_ANSWERS)
    return rows
