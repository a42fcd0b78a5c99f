"""Settings read from `HUIYIN_*` environment variables (and a `.env` file), validated at start.

Build them with `load_settings()`; nothing here runs at import time.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.calendar import CalendarFileError, load_official_days, parse_clock_time
from domain.catalog import CATEGORY_BY_CODE
from domain.claims import OfferRules
from domain.deadlines import DEFAULT_POLICY, Policy, PolicyError, load_policy, policy_from
from domain.floods import Limits
from domain.review import DEFAULT_WEIGHTS_TEXT, Weights
from domain.volunteers import DEFAULT_AUTO_OFFER, NEVER_OFFERED


def parse_codes(value: str) -> list[str]:
    return [c.strip() for c in re.split(r"[,;\s]+", value) if c.strip()]


TOKEN_PATTERN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")


class SettingsError(Exception):
    """Raised with one readable line per bad setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUIYIN_", env_file=".env", extra="ignore")

    bot_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    framework: str = "ptb"
    database_url: str = "sqlite+aiosqlite:///./huiyin.db"
    timezone: str = "Asia/Shanghai"
    outbox_interval_seconds: float = 2.0
    # Deadlines: how often the sweep looks for due reminders and escalations, and the policy
    # file that changes the default deadlines (README, "Deadlines and escalation").
    sweep_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    policy_file: Path | None = None
    # The district's copy of the State Council's holidays and make-up working days (CSV or
    # iCal) for years the chinesecalendar package does not know yet (docs/calendar.md).
    calendar_file: Path | None = None
    send_rate_total: float = Field(default=30.0, gt=0)
    send_rate_per_chat: float = Field(default=1.0, gt=0)
    # Every Bot API request is cut after this long, on both frameworks (a long poll gets its
    # poll time on top): a hung request is retried rather than holding a chat.
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The PostgreSQL connection pool of one process. Updates are handled a third of it at once
    # (each chat holds two connections), so a burst of chats waits its turn rather than
    # emptying the pool (storage/inbox.py).
    database_pool_size: int = Field(default=5, ge=1, le=100)
    database_max_overflow: int = Field(default=10, ge=0, le=100)
    webhook_secret: str | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    # The bot's @username, for the t.me links the bot itself hands out (a family member's
    # personal link); without it the bot shows the `/start <code>` text to send instead.
    bot_username: str = ""
    # The morning digest to coordinators and town officers, on working days (schedules/digest.py).
    digest_time: str = "08:30"
    # A font file with Chinese glyphs for the /stats chart (domain/charts.py); without it an
    # installed CJK font is looked for, and failing that the chart is drawn in English.
    chart_font: Path | None = None
    # How the review table (/review, huiyin review) weights the parts of its score
    # (docs/metrics.md, "The review table"): part=weight pairs, in proportion.
    review_weights: str = DEFAULT_WEIGHTS_TEXT
    # Floods (domain/floods.py, README "Floods"): per resident, at most this many needs
    # submitted in any hour and this many messages and button presses taken in a minute (0: no
    # limit); needs of one person reaching a staff member within this many minutes, not yet
    # accepted, are shown to them in one summary card (0: a card each).
    limit_submissions_per_hour: int = Field(default=5, ge=0, le=10_000)
    limit_updates_per_minute: int = Field(default=30, ge=0, le=100_000)
    burst_window_minutes: int = Field(default=30, ge=0, le=24 * 60)
    # Retention (schedules/retention.py, docs/privacy.md): sent messages are deleted from the
    # outbox after this many days (each card's newest row stays, emptied, for its edits); ended
    # requests lose their free texts after this many (three years).
    retention_outbox_days: int = Field(default=30, ge=1, le=3650)
    retention_closed_days: int = Field(default=1095, ge=30, le=36500)
    # How far (metres) a shared location may be from a grid's point for that grid to be offered
    # (when no grid's outline holds it; docs/roster.md).
    place_radius_m: float = Field(default=2000.0, gt=0, le=50_000)
    # Offers to volunteers (handlers/offers.py): hours an offer stays with the community's
    # volunteers before the town's get it too; the categories offered as soon as a need is
    # routed (catalog codes separated by commas; unset: companionship and errands; "": none).
    offer_widen_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    auto_offer: str | None = None
    # A volunteer's reported work counts as done (the need resolved) when the holder has not
    # confirmed it within this many hours (handlers/claimed_work.py, schedules/claim_confirm.py).
    claim_confirm_hours: float = Field(default=48.0, gt=0, le=24 * 30)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not TOKEN_PATTERN.match(value):
            raise ValueError("must look like 123456789:AAE... (the token @BotFather gave you)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("digest_time")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        parse_clock_time(value)
        return value.strip()

    @field_validator("bot_username")
    @classmethod
    def _bot_username(cls, value: str) -> str:
        value = value.strip().removeprefix("@")
        if value and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{4,31}", value):
            raise ValueError("must be the bot's username, such as huiyin_bot (5-32 letters)")
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return value.rstrip("/")

    @field_validator("framework")
    @classmethod
    def _framework(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in {"ptb", "aiogram"}:
            raise ValueError("must be 'ptb' or 'aiogram'")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not (
            value.startswith("sqlite+aiosqlite://") or value.startswith("postgresql+asyncpg://")
        ):
            raise ValueError(
                "must be an async SQLAlchemy URL: sqlite+aiosqlite:///path.db "
                "or postgresql+asyncpg://user@host/db"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (try Asia/Shanghai)") from exc
        return value

    @field_validator("review_weights")
    @classmethod
    def _review_weights(cls, value: str) -> str:
        Weights.parse(value)
        return value.strip()

    @property
    def weights(self) -> Weights:
        return Weights.parse(self.review_weights)

    @field_validator("chart_font", mode="before")
    @classmethod
    def _chart_font(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise ValueError(f"no font file at {path} (a .ttf, .otf or .ttc with Chinese glyphs)")
        return path

    @field_validator("policy_file", mode="before")
    @classmethod
    def _policy_file(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        try:
            load_policy(Path(str(value)))
        except PolicyError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("calendar_file", mode="before")
    @classmethod
    def _calendar_file(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        try:
            load_official_days(Path(str(value)))
        except CalendarFileError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("auto_offer")
    @classmethod
    def _auto_offer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        codes = parse_codes(value)
        unknown = [c for c in codes if c not in CATEGORY_BY_CODE]
        if unknown:
            raise ValueError(
                f"unknown categories {', '.join(unknown)} (catalog codes, comma-separated)"
            )
        never = [c for c in codes if c in NEVER_OFFERED]
        if never:
            raise ValueError(f"{', '.join(never)} is never offered to volunteers")
        return ",".join(codes)

    @property
    def offer_rules(self) -> OfferRules:
        auto = (
            DEFAULT_AUTO_OFFER
            if self.auto_offer is None
            else frozenset(parse_codes(self.auto_offer))
        )
        return OfferRules(widen_after=timedelta(hours=self.offer_widen_hours), auto_offer=auto)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def flood_limits(self) -> Limits:
        return Limits(
            submissions_per_hour=self.limit_submissions_per_hour,
            updates_per_minute=self.limit_updates_per_minute,
            burst_window=timedelta(minutes=self.burst_window_minutes),
        )

    @property
    def digest_at(self) -> time:
        return parse_clock_time(self.digest_time)

    @property
    def claim_confirm_after(self) -> timedelta:
        return timedelta(hours=self.claim_confirm_hours)

    @property
    def policy(self) -> Policy:
        """The deadline policy: the file's, checked when the settings were read, or defaults;
        on the district's calendar file if there is one (parsed once per version of the file,
        so asking again is cheap)."""
        official = load_official_days(self.calendar_file) if self.calendar_file else None
        if self.policy_file:
            return load_policy(self.policy_file, official=official)
        if official is None:
            return DEFAULT_POLICY
        return policy_from({}, source="defaults", official=official)


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise SettingsError naming each bad variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"HUIYIN_{field.upper()}: {message}")
        raise SettingsError("\n".join(lines)) from exc
    return settings
