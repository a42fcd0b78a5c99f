"""Huiyin (回音): grid-based community service over Telegram.

The application package: settings, domain rules, i18n, the channels and the CLI.
"""
