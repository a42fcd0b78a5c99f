"""The main menu's buttons (`m:<item>`): each starts its conversation afresh; and the command
list Telegram shows behind the chat's menu button (`command_menus`, set when the bot starts)."""

from __future__ import annotations

from domain.i18n import DEFAULT_LANGUAGE, Translator, translator
from handlers.base import Context, Router, parse_id
from handlers.common import MENU_PREFIX, show_menu
from handlers.intake import start_family, start_report
from handlers.my_requests import show_my_requests
from handlers.onboarding import show_help
from handlers.tasks import list_tasks

router = Router()


@router.button(MENU_PREFIX)
async def on_menu(ctx: Context) -> None:
    _, _, rest = ctx.inbound.button_data.partition(":")
    item, _, arg = rest.partition(":")
    if item != "help" and ctx.flow is not None:
        await ctx.end_flow()
    if item == "report":
        await start_report(ctx)
    elif item == "family":
        await start_family(ctx)
    elif item == "mine":
        await show_my_requests(ctx, parse_id(arg) or 0)
    elif item == "tasks":
        await list_tasks(ctx)
    elif item == "help":
        await show_help(ctx)
    else:
        show_menu(ctx)


@router.command("menu")
async def menu(ctx: Context) -> None:
    show_menu(ctx)


@router.command("my")
async def my(ctx: Context) -> None:
    await show_my_requests(ctx)


def command_menu(t: Translator) -> list[tuple[str, str]]:
    return [
        ("start", t._("Open the main menu")),
        ("my", t._("My requests and where they stand")),
        ("volunteer", t._("Volunteer: offer your help, or my volunteer profile")),
        ("help", t._("How Huiyin works")),
        ("mydata", t._("What Huiyin keeps about me")),
        ("forget", t._("Withdraw consent and erase my data")),
        ("cancel", t._("Stop what you are doing")),
    ]


def command_menus() -> dict[str | None, list[tuple[str, str]]]:
    """The command list per Telegram language: English for English-speaking users, and the
    district's language (Simplified Chinese) for everyone else (None)."""
    return {None: command_menu(translator(DEFAULT_LANGUAGE)), "en": command_menu(translator("en"))}
