"""Pieces every conversation shares: the main menu and typed notes. (The words for codes, and
time, place and phone formatting, are in domain/labels.py: the ledger prints them too.)"""

from __future__ import annotations

from domain.messages import Button
from handlers.base import Context

MENU_PREFIX = "m"


def menu_buttons(ctx: Context) -> list[list[Button]]:
    rows = [
        [Button(ctx._("📝 Report a need"), data=f"{MENU_PREFIX}:report")],
        [Button(ctx._("👨‍👩‍👧 Report for a family member"), data=f"{MENU_PREFIX}:family")],
        [
            Button(ctx._("📋 My requests"), data=f"{MENU_PREFIX}:mine"),
            Button(ctx._("❓ Help"), data=f"{MENU_PREFIX}:help"),
        ],
    ]
    if ctx.staff is not None:
        rows.insert(0, [Button(ctx._("🗂 My tasks"), data=f"{MENU_PREFIX}:tasks")])
    return rows


def show_menu(ctx: Context, lead: str | None = None) -> None:
    text = lead or ctx._("What would you like to do?")
    ctx.reply(text, menu_buttons(ctx))


MAX_NOTE = 500


def typed_note(ctx: Context, kinds: tuple[str, ...], refusal: str) -> str | None:
    """The note the user sent (its text or caption, "" for a bare voice message or photo), or
    None after telling them why it cannot be taken: a kind outside `kinds` or an empty text
    (`refusal`, already translated), or a text over MAX_NOTE characters."""
    inbound = ctx.inbound
    text = inbound.text.strip()
    if inbound.kind not in kinds or (inbound.kind == "text" and not text):
        ctx.reply(refusal)
        return None
    if len(text) > MAX_NOTE:
        ctx.reply(
            ctx._(
                "Please keep the note under {limit} characters (it is {length}).",
                limit=MAX_NOTE,
                length=len(text),
            )
        )
        return None
    return text
