"""Huiyin (回音): grid-based community service over Telegram.

The top layer: what starts and connects the program — the CLI, the app (polling, webhook,
worker), the dispatcher, the channel adapters (python-telegram-bot, aiogram, console, webhook)
and the demo. Below it: `handlers/` (the conversations) and `schedules/` (the background work),
then `domain/` (the rules), then `storage/`. Imports only point down (tests/test_layers.py).
"""
