"""bot.memory: malloc_trim is called where glibc has it and nothing happens elsewhere (no memory
figure is asserted here: bench/day_rss.py measures them)."""

from __future__ import annotations

import os
import sys

import pytest

from bot import memory


def glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (OSError, ValueError):
        return False


def test_trim_runs_on_glibc() -> None:
    assert (memory._glibc() is not None) is glibc()
    memory.trim()  # True or False: whether there was memory to hand back


def test_nothing_happens_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory._glibc() is None
    assert memory.trim() is False
