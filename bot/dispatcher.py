"""The dispatcher: one inbound update in, one database transaction, outbox rows out.

It loads who is speaking (account, roster entry) and where their conversation stands, picks the
handler (a command, a button, the current step, or a polite fallback), and commits the state
change, the timeline events and every outgoing message together. After the commit it wakes the
outbox sender. When the database stays busy, it retries, and if that fails it tells the user to
send again rather than dropping the message silently.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, bindparam, cast, exists
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from domain.claims import DEFAULT_OFFER_RULES, OfferRules
from domain.clock import Clock
from domain.deadlines import DEFAULT_POLICY, Policy
from domain.floods import NO_LIMITS, Limits, count_update
from domain.i18n import pick_language, translator
from domain.messages import HandleResult, Inbound, Outbound, Sender
from domain.outbox import enqueue
from domain.places import DEFAULT_RADIUS_M
from domain.reach import is_reachable, mark_written
from domain.review import DEFAULT_WEIGHTS, Weights
from handlers import (
    claimed_work,
    coordinator,
    export,
    intake,
    lookup,
    menu,
    my_requests,
    offers,
    onboarding,
    posters,
    privacy,
    rate_above,
    review,
    screening,
    shared,
    stats,
    tasks,
    team,
    verdict,
    volunteers,
)
from handlers.base import CLAIM_CONFIRM_AFTER, STEP_PREFIX, Context, Router, escape
from handlers.cards import held_notices, release_held
from handlers.common import show_menu
from storage.database import ACCOUNTS_BY_TELEGRAM, Database
from storage.inbox import claim_in_transaction, handled_here
from storage.models import Account, ConversationState, Staff
from storage.outbox import notify_outbox

log = logging.getLogger(__name__)

BUSY_RETRIES = 4
OPEN_TO_NEWCOMERS = frozenset({"start", "help", "join", "cancel"})


def build_router() -> Router:
    router = Router()
    for module in (onboarding, menu, intake, my_requests, tasks, verdict, coordinator, lookup):
        router.include(module.router)
    router.include(stats.router)
    router.include(export.router)
    router.include(team.router)
    router.include(rate_above.router)
    router.include(review.router)
    router.include(screening.router)
    router.include(privacy.router)
    router.include(posters.router)
    router.include(offers.router)
    router.include(claimed_work.router)
    router.include(volunteers.router)
    router.include(shared.router)
    return router


def is_busy(error: OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


@functools.cache
def _speaker_query() -> Select[tuple[Account | None, Staff | None, ConversationState | None, bool]]:
    """`Dispatcher._speaker`'s statement, built once with its values as parameters (telegram_id,
    chat_id, now): built afresh for every update, its construction and cache key were a
    visible share of the update's CPU in a profile (issue 14)."""
    chat_id = bindparam("chat_id", type_=BigInteger)
    sender = select(
        cast(bindparam("telegram_id", type_=BigInteger), BigInteger).label("telegram_id")
    ).subquery("sender")
    held = exists(held_notices(chat_id, bindparam("now")))
    active = col(Staff.active).is_(True)
    return (
        select(Account, Staff, ConversationState, held)
        .select_from(sender)
        .outerjoin(Account, col(Account.telegram_id) == sender.c.telegram_id)
        .outerjoin(Staff, and_(col(Staff.telegram_id) == sender.c.telegram_id, active))
        .outerjoin(ConversationState, col(ConversationState.chat_id) == chat_id)
    )  # type: ignore[return-value]


class Dispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        zone: ZoneInfo,
        *,
        on_commit: Callable[[], None] | None = None,
        direct_sender: Sender | None = None,
        use_inbox: bool = False,
        policy: Policy = DEFAULT_POLICY,
        bot_username: str = "",
        review_weights: Weights = DEFAULT_WEIGHTS,
        limits: Limits = NO_LIMITS,
        place_radius_m: float = DEFAULT_RADIUS_M,
        offer_rules: OfferRules = DEFAULT_OFFER_RULES,
        claim_confirm_after: timedelta = CLAIM_CONFIRM_AFTER,
    ) -> None:
        self.db = db
        self.clock = clock
        self.zone = zone
        self.router = build_router()
        self.on_commit = on_commit
        # Used only to say "please send again" when the database cannot take the message.
        self.direct_sender = direct_sender
        # Webhook replicas take updates in through the inbox; marking the row handled in the
        # same transaction as the change makes a second delivery of the update a no-op.
        self.use_inbox = use_inbox
        self.policy = policy
        self.bot_username = bot_username
        self.review_weights = review_weights
        # Per-person limits and burst summaries (domain/floods.py), from the settings.
        self.limits = limits
        self.place_radius_m = place_radius_m
        self.offer_rules = offer_rules
        self.claim_confirm_after = claim_confirm_after
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def handle(self, inbound: Inbound) -> HandleResult:
        for attempt in range(BUSY_RETRIES):
            try:
                async with self.db.transaction() as session:
                    if self.use_inbox and not await self._claim_inbox(session, inbound):
                        return HandleResult()
                    ctx = await self._context(inbound, session)
                    if not await self._flooding(ctx):
                        await self._route(ctx)
                    if ctx.came_within_reach:
                        await tasks.show_waiting(ctx)
                    await notify_outbox(session)
                if self.use_inbox and inbound.update_id is not None:
                    handled_here(self.db, inbound.update_id)  # drain_chat need not mark it
                if self.on_commit is not None:
                    self.on_commit()
                return ctx.result
            except OperationalError as error:
                if not is_busy(error):
                    log.exception("update %s failed", inbound.update_id)
                    return await self._apologise(inbound, busy=False)
                log.warning("database busy (attempt %s): %s", attempt + 1, error)
                await self.sleep(0.2 * 2**attempt)
            except Exception:
                log.exception("update %s failed", inbound.update_id)
                return await self._apologise(inbound, busy=False)
        return await self._apologise(inbound, busy=True)

    async def _claim_inbox(self, session: AsyncSession, inbound: Inbound) -> bool:
        """Mark the update handled; False if another delivery of it got there first."""
        if inbound.update_id is None:
            return True
        return await claim_in_transaction(session, inbound.update_id, self.clock.now())

    async def _apologise(self, inbound: Inbound, *, busy: bool) -> HandleResult:
        """Tell the user their message was not taken, so they know to send it again."""
        t = translator(pick_language(inbound.language))
        if busy:
            text = t._("Sorry, the system is busy right now. Please send that again in a minute.")
        else:
            text = t._(
                "Sorry, something went wrong on our side. Please try again; if it keeps "
                "happening, send /start."
            )
        message = Outbound(chat_id=inbound.chat_id, text=text)
        try:
            if busy:
                raise OperationalError("apology", {}, Exception("database busy"))
            async with self.db.transaction() as session:
                enqueue(session, message, self.clock.now())
            if self.on_commit is not None:
                self.on_commit()
        except Exception:
            if self.direct_sender is not None:
                try:
                    await self.direct_sender.send(message)
                except Exception:
                    log.exception("could not even apologise to chat %s", inbound.chat_id)
        return HandleResult(callback_answer=text[:200], callback_alert=True)

    async def _context(self, inbound: Inbound, session: AsyncSession) -> Context:
        account, staff, state, any_held = await self._speaker(session, inbound)
        # A card or notice to this person in this update needs their account again.
        session.info.setdefault(ACCOUNTS_BY_TELEGRAM, {})[inbound.user_id] = account
        returning = staff is not None and not is_reachable(staff)
        if inbound.chat_type == "private":
            mark_written(staff, account, self.clock.now())
        # They are here: notices that waited for the end of quiet hours go out before the reply.
        await release_held(session, inbound.chat_id, self.clock.now(), any_held=any_held)
        language = (
            pick_language(inbound.language)
            if inbound.language
            else (account.language if account else pick_language(None))
        )
        if account is not None and account.language != language:
            account.language = language
            session.add(account)
        ctx = Context(
            inbound=inbound,
            session=session,
            clock=self.clock,
            zone=self.zone,
            t=translator(language),
            account=account,
            staff=staff,
            state=state,
            policy=self.policy,
            limits=self.limits,
            steps=self.router.steps,
            bot_username=self.bot_username,
            review_weights=self.review_weights,
            place_radius_m=self.place_radius_m,
            offer_rules=self.offer_rules,
            claim_confirm_after=self.claim_confirm_after,
        )
        ctx.came_within_reach = returning and inbound.chat_type == "private"
        return ctx

    async def _speaker(
        self, session: AsyncSession, inbound: Inbound
    ) -> tuple[Account | None, Staff | None, ConversationState | None, bool]:
        """Who is speaking and where their chat stands, in one statement: the sender's account,
        their active roster entry, the chat's conversation state, and whether notices wait in
        the outbox for the end of quiet hours. Every update needs all four; read one by one
        they were four statements of the nine a plain update ran (issue 14).

        Any of the three rows may be missing (a newcomer has none; a staff member who never
        wrote has no account), so the query starts from a one-row table holding the sender's
        Telegram id and LEFT JOINs each row to it."""
        params = {"telegram_id": inbound.user_id, "chat_id": inbound.chat_id}
        params["now"] = self.clock.now()
        row = (await session.exec(_speaker_query(), params=params)).first()
        assert row is not None  # the one-row table always gives one row
        account, staff, state, any_held = row
        return account, staff, state, bool(any_held)

    async def _flooding(self, ctx: Context) -> bool:
        """Count the update against the resident's per-minute limit; over it, nothing is acted
        on, and the first update over the limit gets one polite answer (a button press is
        always answered, so its spinner stops). Staff and group chats are not counted."""
        if ctx.inbound.chat_type != "private" or ctx.account is None or ctx.staff is not None:
            return False
        count = await count_update(
            ctx.session, ctx.account, ctx.now, self.limits.updates_per_minute
        )
        if count is None or not count.over:
            return False
        text = ctx._(
            "You are sending messages faster than I can take them, so I did not act on "
            "that one. Please wait a minute, then send it again; where you were is kept."
        )
        if ctx.inbound.kind == "button":
            ctx.answer(text[:200], alert=count.first_over)
        if count.first_over:
            ctx.reply(text)
        log.info(
            "flood: update %s from account %s not taken", ctx.inbound.update_id, ctx.account.id
        )
        return True

    async def _route(self, ctx: Context) -> None:
        inbound = ctx.inbound
        if inbound.chat_type != "private":
            await self._group(ctx)
            return
        known = ctx.staff is not None or (
            ctx.account is not None and ctx.account.consent_at is not None
        )
        if inbound.kind == "command":
            await self._command(ctx, known)
        elif inbound.kind == "button":
            await self._button(ctx, known)
        elif inbound.kind in self.router.inputs and not self._step_takes_input(ctx):
            await self.router.inputs[inbound.kind](ctx)
        elif not known and ctx.flow != onboarding.FLOW:
            ctx.reply(ctx._("Welcome! Please send /start to begin."))
        else:
            await self._input(ctx)

    async def _group(self, ctx: Context) -> None:
        if ctx.inbound.kind == "button":
            ctx.answer(ctx._("Please talk to me in a private chat."), alert=True)
        elif ctx.inbound.kind == "command":
            enqueue(
                ctx.session,
                Outbound(
                    chat_id=ctx.chat_id,
                    text=ctx._(
                        "I work in private chats only, to keep residents' details private. "
                        "Please open a chat with me and send /start."
                    ),
                ),
                ctx.now,
            )

    async def _command(self, ctx: Context, known: bool) -> None:
        name = ctx.inbound.command
        if name == "cancel":
            had_flow = ctx.state is not None
            await ctx.end_flow()
            if known:
                show_menu(ctx, ctx._("Cancelled; nothing was submitted.") if had_flow else None)
            else:
                ctx.reply(ctx._("Cancelled. Send /start whenever you are ready."))
            return
        handler = self.router.commands.get(name)
        if handler is None:
            ctx.reply(
                ctx._(
                    "Sorry, I don't know the command /{name}. Send /help to see what I can do.",
                    name=escape(name[:32]),
                )
            )
            return
        if not known and name not in OPEN_TO_NEWCOMERS:
            ctx.reply(ctx._("Welcome! Please send /start to begin."))
            return
        await handler(ctx)

    async def _button(self, ctx: Context, known: bool) -> None:
        prefix, _, rest = ctx.inbound.button_data.partition(":")
        if prefix == STEP_PREFIX:
            await self._step_button(ctx, rest)
            return
        handler = self.router.buttons.get(prefix)
        if handler is None or not known:
            ctx.answer(ctx._("This button is no longer active."))
            return
        await handler(ctx)

    async def _step_button(self, ctx: Context, rest: str) -> None:
        nonce, _, value = rest.partition(":")
        step = self.router.steps.get((ctx.flow or "", ctx.step or ""))
        if ctx.state is None or step is None or nonce != str(ctx.state.nonce):
            ctx.answer(ctx._("This button is no longer active."))
            return
        if value == "cancel":
            await ctx.retire_pressed(ctx.step_ref, ctx._("✖ Cancelled"))
            await ctx.end_flow()
            ctx.answer(ctx._("Cancelled"))
            if (ctx.account is not None and ctx.account.consent_at is not None) or ctx.staff:
                show_menu(ctx, ctx._("Cancelled; nothing was submitted."))
            else:
                ctx.reply(ctx._("Cancelled. Send /start whenever you are ready."))
            return
        if step.on_choice is None:
            ctx.answer(ctx._("This button is no longer active."))
            return
        await step.on_choice(ctx, value)

    def _step_takes_input(self, ctx: Context) -> bool:
        step = self.router.steps.get((ctx.flow or "", ctx.step or ""))
        return step is not None and step.on_input is not None

    async def _input(self, ctx: Context) -> None:
        step = self.router.steps.get((ctx.flow or "", ctx.step or ""))
        if step is not None and step.on_input is not None:
            await step.on_input(ctx)
            return
        if step is not None:
            ctx.reply(ctx._("Please use the buttons above, or send /cancel to stop."))
            await step.render(ctx)
            return
        for taker in self.router.idle:
            if await taker(ctx):
                return
        if ctx.inbound.kind == "unsupported":
            show_menu(
                ctx,
                ctx._("I can't read stickers or files here, sorry. Please use the buttons below."),
            )
        else:
            show_menu(ctx, ctx._("To tell us about a need, tap “Report a need” below."))
