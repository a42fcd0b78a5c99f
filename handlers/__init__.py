"""The conversations, written once against the channel-neutral types (`domain.messages`).

Each module owns one conversation and exposes a `router`; `bot.dispatcher` composes them.
"""
