"""Channels: translate a framework's updates into `Inbound`, and deliver `Outbound` messages.

Conversations never import a framework; each channel is a thin adapter.
"""
