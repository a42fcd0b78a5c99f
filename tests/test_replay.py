"""Issue 14's yardstick at a small size: bench/replay.py replays 30 needs through the real
dispatcher, sweep and outbox on the generated district (the morning digest left out: on this
district it costs more than the needs themselves); every outbox row reaches the sender exactly
once, and the three rates the database gives are the ones the simulation's people produced. No
timing is asserted (the bench prints the figures)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import POSTGRES_URL

BENCH = Path(__file__).resolve().parent.parent / "bench" / "replay.py"


def load_replay() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_replay", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_a_small_replay_loses_nothing_and_its_rates_are_the_ground_truth(
    backend: str,
) -> None:
    replay = load_replay()
    figures = await replay.run(
        30, seed=14, postgres=POSTGRES_URL if backend == "postgresql" else None, digest=False
    )
    assert (figures.needs, figures.stuck) == (30, 0)
    assert figures.outbox_rows > figures.needs * 10
    assert (figures.lost, figures.duplicated) == (0, 0)
    assert figures.measured == figures.truth
    truth = figures.truth
    # The distributions did their work: some late, some unresolved or reopened, some unrated.
    assert 0 < truth.responded < truth.received
    assert 0 < truth.rated < truth.resolved <= truth.received
    assert figures.escalations > 0
    assert figures.statements["updates"] > 0 and figures.commits["outbox"] > 0
