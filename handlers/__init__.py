"""The conversations, written once against the channel-neutral types (`bot.channels.types`).

Each module owns one conversation and exposes a `router`; `bot.dispatcher` composes them.
"""
