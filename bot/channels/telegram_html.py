"""Fitting HTML texts into Telegram's limits, shared by every Telegram channel.

Telegram counts a message's length after parsing its entities: tags do not count, and each
character entity (`&amp;`) counts as one character.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
MEDIA_KINDS = ("photo", "voice")

_HTML_TOKEN = re.compile(
    r"(?P<tag><[^>]*>)|(?P<entity>&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);)|(?P<char>.)",
    re.DOTALL,
)
_TAG_NAME = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9-]*)")


def visible_length(html_text: str) -> int:
    """Characters Telegram counts: tags removed, each character entity one character."""
    return sum(1 for match in _HTML_TOKEN.finditer(html_text) if match.lastgroup != "tag")


def fit_html(html_text: str, limit: int) -> str:
    """`html_text` unchanged when it fits, else cut to `limit - 1` visible characters + "…".

    The cut never splits a tag or a character entity, and the tags left open are closed.
    """
    if visible_length(html_text) <= limit:
        return html_text
    kept: list[str] = []
    open_tags: list[str] = []
    visible = 0
    for match in _HTML_TOKEN.finditer(html_text):
        token = match.group()
        if match.lastgroup == "tag":
            name_match = _TAG_NAME.match(token)
            name = name_match.group(1).lower() if name_match else ""
            if token.startswith("</"):
                if open_tags and open_tags[-1] == name:
                    open_tags.pop()
            elif not token.endswith("/>"):
                open_tags.append(name)
            kept.append(token)
            continue
        if visible == limit - 1:
            break
        kept.append(token)
        visible += 1
    kept.extend(f"</{name}>" for name in reversed(open_tags))
    kept.append(ELLIPSIS)
    return "".join(kept)


def fit_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
