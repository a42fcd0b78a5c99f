"""What every conversation works with: the `Context` of one update and the `Router`.

A conversation's position lives in the `conversation_states` table (flow, step, data), not in
a framework, so it survives a restart and any replica can take the next message. Buttons that
belong to a step carry the step's nonce (`c:<nonce>:<value>`): a button from an earlier step, a
second tap, or a forged one finds a different nonce and is refused without changing anything.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from domain.claims import DEFAULT_OFFER_RULES, OfferRules
from domain.clock import Clock
from domain.deadlines import DEFAULT_POLICY, Policy
from domain.floods import NO_LIMITS, Limits
from domain.i18n import Translator
from domain.messages import Button, HandleResult, Inbound, Outbound
from domain.outbox import enqueue, retire_keyboard
from domain.places import DEFAULT_RADIUS_M
from domain.review import DEFAULT_WEIGHTS, Weights
from storage.models import MAX_ROW_ID, Account, ConversationState, Staff

STEP_PREFIX = "c"
# How long a volunteer's reported work waits for the holder before it counts as done
# (settings: HUIYIN_CLAIM_CONFIRM_HOURS).
CLAIM_CONFIRM_AFTER = timedelta(hours=48)

Handler = Callable[["Context"], Awaitable[None]]
ChoiceHandler = Callable[["Context", str], Awaitable[None]]
# Takes typed input that no step waits for, when it answers a question the bot asked outside a
# conversation (the verdict, a staff member's question, a follow-up call); False to pass.
IdleHandler = Callable[["Context"], Awaitable[bool]]


def escape(text: str | None) -> str:
    return html.escape(text or "", quote=False)


def parse_id(text: str) -> int | None:
    """A row id (or a page offset) from button data, or None for anything else: a forged or
    garbled button, or a number beyond what an id column holds (`MAX_ROW_ID`), which
    PostgreSQL would refuse rather than find nothing."""
    if text.isascii() and text.isdigit() and len(text) <= 12:
        number = int(text)
        return number if number <= MAX_ROW_ID else None
    return None


@dataclass(slots=True)
class Step:
    """One step of a flow: how to show it, and what to do with a button or with typed input."""

    render: Handler
    on_choice: ChoiceHandler | None = None
    on_input: Handler | None = None


@dataclass(slots=True)
class Context:
    inbound: Inbound
    session: AsyncSession
    clock: Clock
    zone: ZoneInfo
    t: Translator
    account: Account | None
    staff: Staff | None
    state: ConversationState | None
    policy: Policy = DEFAULT_POLICY
    limits: Limits = NO_LIMITS
    steps: dict[tuple[str, str], Step] = field(default_factory=dict)
    # For t.me links the bot hands out; "" when unknown (the console, tests).
    bot_username: str = ""
    # The district's weights for the review table's score (HUIYIN_REVIEW_WEIGHTS).
    review_weights: Weights = DEFAULT_WEIGHTS
    # How far a shared location may be from a grid's point (settings: HUIYIN_PLACE_RADIUS_M).
    place_radius_m: float = DEFAULT_RADIUS_M
    # Offers to volunteers (settings: HUIYIN_OFFER_WIDEN_HOURS, HUIYIN_AUTO_OFFER).
    offer_rules: OfferRules = DEFAULT_OFFER_RULES
    # How long reported work waits for the holder's confirmation (HUIYIN_CLAIM_CONFIRM_HOURS).
    claim_confirm_after: timedelta = CLAIM_CONFIRM_AFTER
    result: HandleResult = field(default_factory=HandleResult)
    now: datetime = field(init=False)
    # Set when this update made a roster entry reachable again (its first message, or the
    # first since Telegram refused us): what waits for them is shown after the reply.
    came_within_reach: bool = False

    def __post_init__(self) -> None:
        self.now = self.clock.now()

    def _(self, message: str, **values: object) -> str:
        return self.t._(message, **values)

    @property
    def chat_id(self) -> int:
        return self.inbound.chat_id

    def send(self, message: Outbound) -> None:
        enqueue(self.session, message, self.now)

    def reply(
        self,
        text: str,
        buttons: tuple[tuple[Button, ...], ...] | list[list[Button]] = (),
        **options: Any,
    ) -> None:
        rows = tuple(tuple(row) for row in buttons)
        self.send(Outbound(chat_id=self.chat_id, text=text, buttons=rows, **options))

    async def retire_pressed(self, ref_key: str, chosen: str = "") -> None:
        """The pressed message (named `ref_key` when it was sent) loses its buttons, its text
        kept with `chosen` below: the choice is made, nothing there is left to tap."""
        await retire_keyboard(
            self.session, self.chat_id, self.inbound.message_id, ref_key, self.now, chosen
        )

    @property
    def step_ref(self) -> str:
        """The name of a step's message whose buttons go once one is pressed (e.g. confirm)."""
        return f"step:{self.chat_id}"

    def answer(self, text: str, *, alert: bool = False) -> None:
        """The short notice on a pressed button (answerCallbackQuery)."""
        self.result.callback_answer = text
        self.result.callback_alert = alert

    # Conversation state -------------------------------------------------------------------

    @property
    def flow(self) -> str | None:
        return self.state.flow if self.state else None

    @property
    def step(self) -> str | None:
        return self.state.step if self.state else None

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.state.data) if self.state else {}

    def go(self, flow: str, step: str, **data: Any) -> None:
        """Move to a step, keeping the flow's data and adding `data`."""
        merged = self.data if self.state and self.state.flow == flow else {}
        merged.update(data)
        if self.state is None:
            self.state = ConversationState(
                chat_id=self.chat_id, flow=flow, step=step, data=merged, updated_at=self.now
            )
        self.state.flow = flow
        self.state.step = step
        self.state.data = merged
        self.state.nonce = secrets.randbelow(1_000_000)
        self.state.updated_at = self.now
        self.session.add(self.state)

    def update_data(self, **data: Any) -> None:
        assert self.state is not None
        merged = self.data
        merged.update(data)
        self.state.data = merged
        self.state.updated_at = self.now
        self.session.add(self.state)

    async def end_flow(self) -> None:
        if self.state is not None:
            await self.session.delete(self.state)
            self.state = None

    async def resume(self) -> bool:
        """Show the current step again (after /start, a restart, or stray input)."""
        step = self.steps.get((self.state.flow, self.state.step)) if self.state else None
        if step is None:
            return False
        await step.render(self)
        return True

    def choice(self, label: str, value: str) -> Button:
        """A button that belongs to the current step."""
        assert self.state is not None, "choice buttons need a current step"
        return Button(label, data=f"{STEP_PREFIX}:{self.state.nonce}:{value}")


@dataclass(slots=True)
class Router:
    """The entry points one conversation module offers."""

    commands: dict[str, Handler] = field(default_factory=dict)
    buttons: dict[str, Handler] = field(default_factory=dict)
    inputs: dict[str, Handler] = field(default_factory=dict)
    steps: dict[tuple[str, str], Step] = field(default_factory=dict)
    idle: list[IdleHandler] = field(default_factory=list)

    def command(self, *names: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for name in names:
                self.commands[name] = handler
            return handler

        return register

    def button(self, prefix: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.buttons[prefix] = handler
            return handler

        return register

    def input(self, kind: str) -> Callable[[Handler], Handler]:
        """Handle a kind of input (e.g. "contact") wherever the user is, unless a step takes it."""

        def register(handler: Handler) -> Handler:
            self.inputs[kind] = handler
            return handler

        return register

    def when_idle(self, handler: IdleHandler) -> IdleHandler:
        """Offer typed input outside any step to `handler` (in the order registered)."""
        self.idle.append(handler)
        return handler

    def step(self, flow: str, name: str, step: Step) -> None:
        self.steps[(flow, name)] = step

    def include(self, other: Router) -> None:
        for table, incoming in (
            (self.commands, other.commands),
            (self.buttons, other.buttons),
            (self.inputs, other.inputs),
            (self.steps, other.steps),
        ):
            clash = set(table) & set(incoming)
            if clash:
                raise ValueError(f"registered twice: {sorted(map(str, clash))}")
            table.update(incoming)  # type: ignore[attr-defined]
        self.idle.extend(other.idle)
