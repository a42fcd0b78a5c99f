"""The channel-neutral types every conversation is written against.

`Inbound` is one thing a user did (a text, a command, a button press, a shared contact, a photo
or a voice message). `Outbound` is one message to show, or one card to change in place. The
`Sender` protocol is what a channel implements to deliver them; its errors are the three
exceptions below, so the outbox can decide between retrying and giving up without knowing the
framework.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

InboundKind = Literal[
    "text", "command", "button", "contact", "location", "photo", "voice", "unsupported"
]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200

UploadKind = Literal["photo", "document"]
UPLOAD_KINDS: tuple[UploadKind, ...] = ("photo", "document")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One user action, as every channel reports it."""

    kind: InboundKind
    user_id: int
    chat_id: int
    chat_type: str = "private"
    language: str | None = None
    display_name: str = ""
    text: str = ""
    command: str = ""
    args: str = ""
    button_data: str = ""
    callback_id: str = ""
    message_id: int | None = None
    contact_phone: str = ""
    contact_user_id: int | None = None
    file_id: str = ""
    latitude: float | None = None  # a shared location
    longitude: float | None = None
    update_id: int | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button: `data` comes back as a button press; `url` opens a link instead."""

    text: str
    data: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        if bool(self.data) == bool(self.url):
            raise ValueError("a button has exactly one of data or url")
        if self.data and len(self.data.encode()) > MAX_CALLBACK_DATA:
            raise ValueError(f"button data over {MAX_CALLBACK_DATA} bytes: {self.data!r}")


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to send, or (with `edit_ref`) the new content of a card already sent.

    `ref` names the message so a later `edit_ref` can change it in place; `media_kind` and
    `media_file_id` attach a photo or voice message the user sent earlier (the text becomes
    its caption when it fits). `upload_kind` ("photo" or "document"), `upload_name` and
    `upload_bytes` send a file the bot made itself (a chart, a spreadsheet), uploaded as
    `upload_name`, the text again its caption when it fits. With `contact_phone` the message
    is a phone contact card (the text is not shown): Telegram refuses `tel:` links on buttons,
    and a contact card is what a phone can dial with one tap. Texts are HTML; user-supplied
    parts must be escaped.
    """

    chat_id: int
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    request_contact: str = ""
    request_location: str = ""
    remove_keyboard: bool = False
    media_kind: str | None = None
    media_file_id: str | None = None
    contact_phone: str = ""
    contact_name: str = ""
    ref: str | None = None
    edit_ref: str | None = None
    # Edit this very message (a pressed one, named by Telegram's message id) rather than the
    # latest message `edit_ref` names.
    edit_message_id: int | None = None
    upload_kind: UploadKind | None = None
    upload_name: str = ""
    upload_bytes: bytes = b""

    def __post_init__(self) -> None:
        if self.upload_kind is not None:
            if self.upload_kind not in UPLOAD_KINDS:
                raise ValueError(f"unknown upload kind {self.upload_kind!r}")
            if not self.upload_name or not self.upload_bytes:
                raise ValueError("an upload needs a file name and some bytes")

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "text": self.text,
            "buttons": [
                [{"text": b.text, "data": b.data, "url": b.url} for b in row]
                for row in self.buttons
            ],
            "request_contact": self.request_contact,
            "request_location": self.request_location,
            "remove_keyboard": self.remove_keyboard,
            "media_kind": self.media_kind,
            "media_file_id": self.media_file_id,
            "contact_phone": self.contact_phone,
            "contact_name": self.contact_name,
            "edit_ref": self.edit_ref,
        }
        if self.edit_message_id is not None:
            payload["edit_message_id"] = self.edit_message_id
        if self.upload_kind is not None:
            # The outbox stores JSON, so the file travels base64-encoded (a chart is ~100 KB).
            payload["upload_kind"] = self.upload_kind
            payload["upload_name"] = self.upload_name
            payload["upload_b64"] = base64.b64encode(self.upload_bytes).decode("ascii")
        return payload

    @classmethod
    def from_payload(cls, chat_id: int, payload: dict[str, Any], ref: str | None) -> Outbound:
        return cls(
            chat_id=chat_id,
            text=payload["text"],
            buttons=tuple(
                tuple(Button(b["text"], data=b.get("data", ""), url=b.get("url", "")) for b in row)
                for row in payload.get("buttons", [])
            ),
            request_contact=payload.get("request_contact", ""),
            request_location=payload.get("request_location", ""),
            remove_keyboard=payload.get("remove_keyboard", False),
            media_kind=payload.get("media_kind"),
            media_file_id=payload.get("media_file_id"),
            contact_phone=payload.get("contact_phone", ""),
            contact_name=payload.get("contact_name", ""),
            ref=ref,
            edit_ref=payload.get("edit_ref"),
            edit_message_id=payload.get("edit_message_id"),
            upload_kind=payload.get("upload_kind"),
            upload_name=payload.get("upload_name", ""),
            upload_bytes=base64.b64decode(payload.get("upload_b64") or ""),
        )


@dataclass(slots=True)
class HandleResult:
    """What a channel must do right away, outside the outbox (Telegram waits on it)."""

    callback_answer: str | None = None
    callback_alert: bool = False
    notices: list[str] = field(default_factory=list)


class DeliveryRetry(Exception):
    """A temporary failure (network, 5xx, 429): try again after `after` seconds, or by backoff."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class DeliveryRefused(Exception):
    """A permanent refusal (bad request, blocked by the user): do not try again."""

    def __init__(self, reason: str, blocked: bool = False) -> None:
        super().__init__(reason)
        self.blocked = blocked


class NotModified(Exception):
    """An edit whose content equals what the user already sees: nothing to do."""


class Sender(Protocol):
    """What a channel provides to deliver messages."""

    async def send(self, message: Outbound) -> int:
        """Send a new message; return its message id."""
        ...

    async def edit(self, message: Outbound, message_id: int) -> None:
        """Replace the text and buttons of a message sent earlier."""
        ...

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        """Stop the spinner on a pressed button, optionally with a short notice."""
        ...
