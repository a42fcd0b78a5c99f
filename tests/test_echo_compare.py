"""bench/echo_compare.py at a tiny size: the bare echo bots of both frameworks and Huiyin's real
stack each answer every one of 20 texts from 5 users on the loopback fake Bot API, and the
figures are printed. No timing is asserted (the bench prints the figures)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "echo_compare.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_echo_compare", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_echo_and_huiyin_answer_every_text_on_both_frameworks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench = load_bench()
    figures = await bench.run(updates=20, users=5)
    assert [(r.bot, r.framework) for r in figures.runs] == [
        ("echo", "ptb"),
        ("huiyin", "ptb"),
        ("echo", "aiogram"),
        ("huiyin", "aiogram"),
    ]
    assert all(r.updates == 20 and r.seconds > 0 for r in figures.runs)
    for framework in ("ptb", "aiogram"):
        (ours,) = figures.of("huiyin", framework)
        # Huiyin's work is counted: each text is read, answered and its answer sent.
        assert ours.statements >= 20 and ours.commits >= 20
    bench.show(figures)
    printed = capsys.readouterr().out
    assert "20 text updates from 5 users" in printed
    assert printed.count("\nptb ") == 1 and printed.count("\naiogram ") == 1
