"""Settings: defaults, and a clear message naming each bad HUIYIN_ variable."""

from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_TOKEN", "FRAMEWORK", "DATABASE_URL", "TIMEZONE", "TELEGRAM_API_URL"):
        monkeypatch.delenv(f"HUIYIN_{name}", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.bot_token is None
    assert settings.framework == "ptb"
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.database_url == "sqlite+aiosqlite:///./huiyin.db"
    assert settings.timezone == "Asia/Shanghai"


def test_every_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUIYIN_BOT_TOKEN", "not-a-token")
    monkeypatch.setenv("HUIYIN_FRAMEWORK", "django")
    monkeypatch.setenv("HUIYIN_DATABASE_URL", "mysql://x")
    monkeypatch.setenv("HUIYIN_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("HUIYIN_TELEGRAM_API_URL", "ftp://example")
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    message = str(raised.value)
    for name in ("BOT_TOKEN", "FRAMEWORK", "DATABASE_URL", "TIMEZONE", "TELEGRAM_API_URL"):
        assert f"HUIYIN_{name}:" in message


def test_token_and_url_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUIYIN_BOT_TOKEN", " 123456789:AAEabcdefghijklmnopqrstuvwxyz ")
    monkeypatch.setenv("HUIYIN_TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    settings = load_settings(_env_file=None)
    assert settings.bot_token == "123456789:AAEabcdefghijklmnopqrstuvwxyz"
    assert settings.telegram_api_url == "http://127.0.0.1:8081"


def test_offer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from domain.volunteers import DEFAULT_AUTO_OFFER

    monkeypatch.delenv("HUIYIN_AUTO_OFFER", raising=False)
    monkeypatch.delenv("HUIYIN_OFFER_WIDEN_HOURS", raising=False)
    rules = load_settings(_env_file=None).offer_rules
    assert (rules.widen_after, rules.auto_offer) == (timedelta(hours=24), DEFAULT_AUTO_OFFER)
    monkeypatch.setenv("HUIYIN_AUTO_OFFER", "")
    assert load_settings(_env_file=None).offer_rules.auto_offer == frozenset()
    monkeypatch.setenv("HUIYIN_AUTO_OFFER", "errand, repair")
    monkeypatch.setenv("HUIYIN_OFFER_WIDEN_HOURS", "6")
    rules = load_settings(_env_file=None).offer_rules
    assert (rules.widen_after, rules.auto_offer) == (timedelta(hours=6), {"errand", "repair"})
    for bad in ("safety", "errand,bogus"):
        monkeypatch.setenv("HUIYIN_AUTO_OFFER", bad)
        with pytest.raises(SettingsError, match="HUIYIN_AUTO_OFFER"):
            load_settings(_env_file=None)
