"""The `huiyin` command (also `python -m bot`).

huiyin run                      poll Telegram (no token: explains how to get one)
huiyin demo [--lang en]         the sample district and a scripted scenario, as a transcript
huiyin console --as ROLE|ID     chat with the bot in this terminal
huiyin import DIR               load units.csv and people.csv (refused whole on any bad row)
huiyin invite PHONE             a one-time link that ties a roster entry to a Telegram account
huiyin roster status [--unit CODE]   who on the roster Huiyin can reach, unit by unit
huiyin export --unit CODE --period 2026-11 --out FILE   an area's ledger as an .xlsx file
huiyin review --unit CODE --period 2026 --out FILE     the review table (分层考核) as an .xlsx file
huiyin posters --unit CODE --out FILE.pdf   an A4 poster with a QR code for each grid below CODE
huiyin db upgrade|downgrade REV migrate the database
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import unicodedata
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.settings import Settings, SettingsError, load_settings
from domain.clock import Clock, SystemClock
from storage.database import Database
from storage.models import Staff, Unit

NO_TOKEN = """\
HUIYIN_BOT_TOKEN is not set, so there is no bot to run yet.

To get a token: open Telegram, talk to @BotFather, send /newbot and follow the questions.
Then start the bot with
    HUIYIN_BOT_TOKEN=123456789:AA... huiyin run
(or put HUIYIN_BOT_TOKEN=... in a .env file here).

Meanwhile, see it work without Telegram:
    huiyin demo            a scripted scenario on the sample district
    huiyin console --as resident
"""

CONSOLE_RESIDENT_ID = 900000001


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="huiyin", description="Huiyin community service bot")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run the bot (long polling, or a webhook)")
    run.add_argument(
        "--webhook",
        metavar="URL",
        default=None,
        help="serve a webhook at this public https URL instead of polling",
    )
    run.add_argument(
        "--role",
        choices=["all", "web", "worker"],
        default="all",
        help="all: serve and run the worker; web: serve only (webhook); "
        "worker: the outbox sender and ticks only",
    )
    run.add_argument(
        "--demo-if-no-token",
        action="store_true",
        help="play the demo instead of stopping when no token is set",
    )
    demo = verbs.add_parser("demo", help="play a scripted scenario on the sample district")
    demo.add_argument("--lang", choices=["zh", "en"], default="zh")
    console = verbs.add_parser("console", help="chat with the bot in this terminal")
    console.add_argument(
        "--as",
        dest="who",
        default="resident",
        help="resident, a staff role (grid_member, coordinator, ...) or a Telegram id",
    )
    console.add_argument("--lang", choices=["zh", "en"], default="zh")
    importer = verbs.add_parser("import", help="import units.csv and people.csv from DIR")
    importer.add_argument("directory", type=Path)
    invite = verbs.add_parser("invite", help="make a one-time link for a roster entry")
    invite.add_argument("phone", help="the person's phone number as in people.csv")
    invite.add_argument(
        "--days",
        type=int,
        default=7,
        help="days a new link stays valid (an unused link still valid is given again)",
    )
    invite.add_argument("--bot-username", default="", help="your bot's username, for a t.me link")
    roster = verbs.add_parser("roster", help="the roster as Huiyin sees it")
    roster_verbs = roster.add_subparsers(dest="roster_verb", required=True)
    roster_status = roster_verbs.add_parser(
        "status",
        help="each person's name, role, unit, phone and whether Huiyin can reach them",
    )
    roster_status.add_argument(
        "--unit", default=None, help="a unit code: only the staff of that unit and below it"
    )
    export = verbs.add_parser(
        "export",
        help="write an area's ledger (one row per request, and its figures) as an .xlsx file",
    )
    export.add_argument("--unit", required=True, help="a district, town or community code")
    export.add_argument(
        "--period",
        default="month",
        help="today, week, month (so far) or YYYY-MM; month if left out",
    )
    export.add_argument("--out", type=Path, required=True, help="the .xlsx file to write")
    export.add_argument(
        "--lang", choices=["zh", "en"], default="zh", help="the headers and labels' language"
    )
    review = verbs.add_parser(
        "review",
        help="write the review table (each unit's figures, rating from below, score) as .xlsx",
    )
    review.add_argument(
        "--unit", required=True, help="a district, town, community or department code"
    )
    review.add_argument(
        "--period",
        default="year",
        help="YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD..YYYY-MM-DD, or year, quarter, month (so far)",
    )
    review.add_argument("--out", type=Path, required=True, help="the .xlsx file to write")
    review.add_argument(
        "--lang", choices=["zh", "en"], default="zh", help="the headers and labels' language"
    )
    posters = verbs.add_parser(
        "posters",
        help="print an A4 poster with a QR code for every grid below a unit (a PDF)",
    )
    posters.add_argument("--unit", help="a district, town, community or grid code")
    posters.add_argument("--out", type=Path, required=True, help="the .pdf file to write")
    posters.add_argument(
        "--bot-username", default="", help="your bot's username (else HUIYIN_BOT_USERNAME)"
    )
    posters.add_argument(
        "--link", default="", help="instead of grids: one poster for this link (a join link)"
    )
    posters.add_argument("--title", default="", help="the title of a --link poster")
    posters.add_argument(
        "--lang",
        choices=["zh", "zh-hant", "en"],
        default="zh",
        help="the posters' language (zh-hant: Traditional Chinese)",
    )
    db = verbs.add_parser("db", help="database migrations")
    db_verbs = db.add_subparsers(dest="db_verb", required=True)
    db_verbs.add_parser("upgrade", help="migrate to the newest schema")
    down = db_verbs.add_parser("downgrade", help="migrate down to REVISION")
    down.add_argument("revision")
    return parser


# A mainland mobile number (13812345678, +86 138 1234 5678, 138-1234-5678) in a log line.
MOBILE = re.compile(r"(?<!\d)((?:\+?86[ -]?)?1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")
# Loggers whose DEBUG lines carry personal data: SQLAlchemy's result rows, aiosqlite's calls
# with their parameters, the frameworks' Bot API calls and replies (message texts, contacts).
# With -v they log at INFO at most.
PERSONAL_DEBUG_LOGGERS = ("sqlalchemy.engine", "aiosqlite", "telegram", "aiogram")


class RedactPhones(logging.Filter):
    """Masks mobile numbers in every log line (138****5678), whatever logged them: a driver's
    error message, a framework's line, a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = MOBILE.sub(r"\1****\2", message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = MOBILE.sub(r"\1****\2", record.exc_text)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(verbose: bool) -> None:
    """INFO, or DEBUG with -v; either way no personal data: SQL statements are logged without
    their values (the engine's hide_parameters), result rows and Bot API payloads are not
    logged, and mobile numbers are masked in every line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactPhones) for f in handler.filters):
            handler.addFilter(RedactPhones())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if verbose:
        for name in PERSONAL_DEBUG_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
    else:
        logging.getLogger("alembic").setLevel(logging.WARNING)


def main(argv: list[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run one command; `clock` is the time it runs at (the system's; tests pass their own)."""
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"Settings are not valid:\n{error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(dispatch(args, settings, clock or SystemClock()))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        # The database or the Bot API cannot be reached (or the token is refused): one line
        # saying which and what to check; the traceback only with -v.
        from bot.app import StartupError, bot_api_problem

        problem = (
            str(error)
            if isinstance(error, StartupError)
            else bot_api_problem(error, settings.telegram_api_url)
        )
        if problem is None:
            raise
        logging.getLogger("huiyin").debug("start-up failed", exc_info=error)
        print(problem, file=sys.stderr)
        return 1


async def dispatch(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    if args.verb == "demo":
        from bot.demo import run_demo

        await run_demo(args.lang, clock=clock)
        return 0
    if args.verb == "run":
        if settings.bot_token is None:
            print(NO_TOKEN, file=sys.stderr)
            if args.demo_if_no_token:
                from bot.demo import run_demo

                await run_demo("zh", clock=clock)
                return 0
            return 1
        from bot.app import run_bot

        if args.role == "web" and not args.webhook:
            print(
                "--role web needs --webhook URL (polling has a single consumer).", file=sys.stderr
            )
            return 2
        if args.webhook and not args.webhook.startswith("https://"):
            print("--webhook must be an https:// URL: Telegram only calls https.", file=sys.stderr)
            return 2
        await run_bot(settings, clock=clock, role=args.role, webhook_url=args.webhook)
        return 0
    from bot.app import open_database

    if args.verb == "db" and args.db_verb == "downgrade":
        db = Database(settings.database_url)
    else:
        db = await open_database(settings.database_url)  # migrated to the newest schema
    try:
        if args.verb == "db":
            if args.db_verb == "upgrade":
                print("Database is at the newest schema.")
            else:
                await db.downgrade(args.revision)
                print(f"Database migrated down to {args.revision}.")
            return 0
        if args.verb == "import":
            return await import_command(db, args.directory)
        if args.verb == "invite":
            return await invite_command(
                db, args.phone, args.days, args.bot_username, clock, settings.zone
            )
        if args.verb == "roster":
            return await roster_status_command(db, args.unit)
        if args.verb == "console":
            return await console_command(db, settings, args.who, args.lang, clock)
        if args.verb == "export":
            return await export_command(
                db, settings, args.unit, args.period, args.out, args.lang, clock
            )
        if args.verb == "review":
            return await review_command(
                db, settings, args.unit, args.period, args.out, args.lang, clock
            )
        if args.verb == "posters":
            return await posters_command(db, settings, args)
    finally:
        await db.dispose()
    return 2


async def import_command(db: Database, directory: Path) -> int:
    from storage.roster import RosterRefused, import_roster

    try:
        summary = await import_roster(db, directory)
    except RosterRefused as refused:
        print(
            f"Import refused; nothing was written. {len(refused.errors)} problem(s):",
            file=sys.stderr,
        )
        for error in refused.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(f"Imported: {summary}")
    return 0


async def invite_command(
    db: Database,
    phone: str,
    days: int,
    bot_username: str,
    clock: Clock | None = None,
    zone: ZoneInfo | None = None,
) -> int:
    """A join link for the roster entry with this phone (an unused one still valid is given
    again: domain.invites)."""
    from domain.invites import invite_url, issue_invite, start_payload

    now = (clock or SystemClock()).now()
    async with db.transaction() as session:
        staff = (await session.exec(select(Staff).where(Staff.phone == phone))).first()
        if staff is None:
            print(
                f"No one with phone {phone} in the roster; import people.csv first.",
                file=sys.stderr,
            )
            return 1
        invite = await issue_invite(session, staff, now, days)
    until = invite.expires_at.astimezone(zone or ZoneInfo("Asia/Shanghai"))
    print(
        f"Invite for {staff.name} ({staff.role}, {staff.unit_code}), "
        f"valid until {until:%Y-%m-%d %H:%M}:"
    )
    start = start_payload(invite)
    if bot_username:
        print(f"  {invite_url(bot_username, invite)}")
    else:
        print(f"  https://t.me/<your bot's username>?start={start}")
    print(f"  (or send the bot: /start {start})")
    return 0


STATE_WORDS = {
    "reachable": "reachable",
    "not_opened": "not opened",
    "blocked": "blocked",
    "deactivated": "deactivated",
    "chat_not_found": "chat not found",
}


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


async def roster_status_command(db: Database, unit: str | None) -> int:
    """Every active roster entry (of `unit` and below it, or the whole roster), unit by unit:
    name, role, unit, full phone and whether Huiyin can reach them (domain.reach); then
    the totals. One query for the people, however many there are."""
    from sqlalchemy import true

    from domain.areas import units_below
    from domain.reach import Reach, reach_of

    async with db.session() as session:
        where = true()
        if unit is not None:
            top = await session.get(Unit, unit)
            if top is None:
                print(
                    f"--unit {unit!r}: no unit with that code. The codes are in units.csv.",
                    file=sys.stderr,
                )
                return 1
            codes = [top.code, *(u.code for u in await units_below(session, top.code))]
            where = col(Staff.unit_code).in_(codes)
        rows = (
            await session.exec(
                select(Staff, Unit)
                .join(Unit, col(Unit.code) == col(Staff.unit_code))
                .where(where, col(Staff.active).is_(True))
                .order_by(col(Staff.unit_code), col(Staff.name), col(Staff.id))
            )
        ).all()
    if not rows:
        print(f"No one on the roster{f' in {unit}' if unit else ''}.")
        return 0
    name_width = max(display_width(staff.name) for staff, _ in rows)
    role_width = max(len(staff.role) for staff, _ in rows)
    code_width = max(len(staff.unit_code) for staff, _ in rows)
    phone_width = max(len(staff.phone) for staff, _ in rows)
    totals = {reach: 0 for reach in Reach}
    current = None
    for staff, place in rows:
        if place.code != current:
            current = place.code
            english = f" ({place.name_en})" if place.name_en else ""
            print(f"{place.code} {place.name}{english}")
        reach = reach_of(staff)
        totals[reach] += 1
        state = reach.value if reach is not Reach.REFUSED else staff.refused_reason or "blocked"
        print(
            "  "
            + "  ".join(
                [
                    pad(staff.name, name_width),
                    staff.role.ljust(role_width),
                    staff.unit_code.ljust(code_width),
                    staff.phone.ljust(phone_width),
                    STATE_WORDS.get(state, state),
                ]
            )
        )
    print(
        f"{len(rows)} staff: {totals[Reach.REACHABLE]} reachable, "
        f"{totals[Reach.NOT_OPENED]} not opened, "
        f"{totals[Reach.REFUSED]} blocked (or deactivated, or chat not found)"
    )
    return 0


def open_private(path: Path) -> IO[bytes]:
    """Open `path` for writing, readable by its owner only (0600): the ledger holds names and
    full phone numbers. A file already there is truncated and narrowed to 0600 too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


async def export_command(
    db: Database,
    settings: Settings,
    unit: str,
    period_text: str,
    out: Path,
    language: str,
    clock: Clock,
) -> int:
    """The ledger of a unit's area, as the district office sees it: full phone numbers."""
    from domain.areas import area_of_unit
    from domain.i18n import translator
    from domain.ledger import Viewer, write_ledger
    from domain.privacy import CLI_EXPORT, full_numbers, record_phone_access
    from domain.reports import parse_period

    now = clock.now()
    period = parse_period(period_text, now, settings.zone)
    if period is None:
        print(
            f"--period {period_text!r}: use today, week, month or YYYY-MM (a month that has "
            "begun).",
            file=sys.stderr,
        )
        return 2
    async with db.session() as session:
        area = await area_of_unit(session, unit)
        if area is None:
            print(
                f"--unit {unit!r}: no district, town or community with that code. "
                "The codes are in units.csv.",
                file=sys.stderr,
            )
            return 1
        try:
            with open_private(out) as target:
                count = await write_ledger(
                    session,
                    area,
                    period,
                    target,
                    t=translator("en" if language == "en" else "zh_CN"),
                    zone=settings.zone,
                    viewer=Viewer(all_phones=True),
                    now=now,
                )
        except OSError as error:
            print(f"--out {out}: cannot write it ({error.strerror or error}).", file=sys.stderr)
            return 1
        numbers = await full_numbers(session, area, period.start, period.end, None)
    if numbers:
        async with db.transaction() as session:
            record_phone_access(
                session,
                now,
                CLI_EXPORT,
                staff_id=None,
                numbers=numbers,
                detail=f"{unit} {period.label} → {out.name}",
            )
    print(f"Wrote {out}: the ledger of {unit} for {period.label}, {count} request(s).")
    return 0


async def review_command(
    db: Database,
    settings: Settings,
    unit: str,
    period_text: str,
    out: Path,
    language: str,
    clock: Clock,
) -> int:
    """The review table of a unit (docs/metrics.md), with the district's weights; the same
    rows /review shows that unit's staff, as the district office sees them."""
    from domain.i18n import translator
    from domain.labels import unit_name
    from domain.review import build_table, parse_review_period, scope_of_unit
    from domain.review_book import row_name, write_review

    now = clock.now()
    period = parse_review_period(period_text, now, settings.zone)
    if period is None:
        print(
            f"--period {period_text!r}: use YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD..YYYY-MM-DD, "
            "or year, quarter, month (a period that has begun).",
            file=sys.stderr,
        )
        return 2
    t = translator("en" if language == "en" else "zh_CN")
    async with db.session() as session:
        scope = await scope_of_unit(session, unit)
        if scope is None:
            print(
                f"--unit {unit!r}: no district, town, community or department with that code. "
                "The codes are in units.csv.",
                file=sys.stderr,
            )
            return 1
        table = await build_table(session, scope, period, settings.weights)
        area = await unit_name(session, t, unit)
    try:
        with out.open("wb") as target:
            write_review(table, target, t, area)
    except OSError as error:
        print(f"--out {out}: cannot write it ({error.strerror or error}).", file=sys.stderr)
        return 1
    print(f"Wrote {out}: the review of {unit} for {period.label}, {len(table.rows)} row(s).")
    for row in table.rows[:1]:
        score = row.score(table.weights)
        shown = "—" if score is None else f"{score:.1f}"
        print(f"  {row_name(t, row)}: received {row.received}, score {shown}")
    return 0


async def posters_command(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    """Posters for the notice boards: a page per grid below --unit, or one for --link."""
    from domain.i18n import pick_language, translator
    from domain.posters import grid_posters, link_poster, posters_pdf

    t = translator(pick_language(args.lang))
    if args.link:
        if not args.link.startswith("https://"):
            print("--link must be an https:// link, such as a t.me join link.", file=sys.stderr)
            return 2
        posters = [link_poster(t, args.link, args.title or "Huiyin")]
    else:
        username = (args.bot_username or settings.bot_username).lstrip("@")
        if not args.unit or not username:
            print(
                "posters needs --unit CODE and the bot's username (--bot-username NAME, or "
                "HUIYIN_BOT_USERNAME), or --link URL.",
                file=sys.stderr,
            )
            return 2
        async with db.session() as session:
            posters = await grid_posters(session, t, args.unit, username)
        if not posters:
            print(
                f"--unit {args.unit!r}: no grids at or below that code. The codes are in "
                "units.csv.",
                file=sys.stderr,
            )
            return 1
    pdf = await asyncio.to_thread(posters_pdf, posters)
    try:
        args.out.write_bytes(pdf)
    except OSError as error:
        print(f"--out {args.out}: cannot write it ({error.strerror or error}).", file=sys.stderr)
        return 1
    print(f"Wrote {args.out}: {len(posters)} poster(s), {len(pdf) // 1024} KB.")
    return 0


async def console_command(
    db: Database, settings: Settings, who: str, language: str, clock: Clock | None = None
) -> int:
    from bot.channels.console import ChatDriver, run_console

    async with db.session() as session:
        if who.isdigit():
            user = int(who)
        elif who == "resident":
            user = CONSOLE_RESIDENT_ID
        else:
            staff = (
                await session.exec(
                    select(Staff)
                    .where(Staff.role == who, col(Staff.telegram_id).is_not(None))
                    .order_by(col(Staff.id))
                )
            ).first()
            if staff is None or staff.telegram_id is None:
                print(
                    f"No staff with role {who!r} and a Telegram id in the roster. "
                    "Import one with `huiyin import DIR` first.",
                    file=sys.stderr,
                )
                return 1
            user = staff.telegram_id
            print(f"Talking as {staff.name} ({staff.role}, {staff.unit_code}).")
    # Only this chat's messages: on a live database the rows of every other chat are the
    # worker's to send to Telegram, not this terminal's to show and mark sent.
    driver = ChatDriver(
        db,
        clock or SystemClock(),
        settings.zone,
        policy=settings.policy,
        only_chats=frozenset({user}),
    )
    driver.languages[user] = "en" if language == "en" else "zh-hans"
    driver.names[user] = "you"
    await run_console(driver, user)
    return 0
