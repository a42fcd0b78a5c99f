"""The memory of a process after a district's day of work: bench/replay.py's replay of a day's
needs (712 a day at the practice's pace of 260,000 a year) through the real dispatcher, sweep,
digest and outbox, with resident memory (VmRSS) read at start, at the end of the replay and
after it, and the peak.

    .venv/bin/python bench/day_rss.py [--needs 712] [--seed 14] [--no-digest] [--trace]
                                      [--postgres URL] [--roster-here]

The roster is imported by a child process, as `huiyin import-roster` runs in a process of its
own: reading the names' pinyin loads pypinyin's phrase dictionary, which the bot does not need
(storage/pinyin.py). `--roster-here` imports it in this process instead, as the demo does.

"At start" is after importing what `huiyin run` imports (the app, the CLI, the dispatcher, the
python-telegram-bot adapter) and the replay; "end of the replay" is before the replay lets go
of its simulation (its people, its in-process sender's copy of every message shown: the
simulation's memory, not the bot's); "after" is once it has, after a garbage collection (what
the bot's own caches, the database's and the allocator keep). With `--trace`, tracemalloc
(which slows the replay down two to three times) lists the ten biggest holders of memory at the
end of the replay, by line. Linux only (/proc).

This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import resource
import sys
import threading
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_replay() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_replay", ROOT / "bench" / "replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--needs", type=int, default=712)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--postgres", default=None, help="a server URL (postgresql+asyncpg://…)")
    parser.add_argument("--no-digest", action="store_true", help="leave out the morning digest")
    parser.add_argument("--trace", action="store_true", help="tracemalloc's top 10 at the end")
    parser.add_argument(
        "--roster-here",
        action="store_true",
        help="import the roster in this process (as the demo does), not in a child process",
    )
    args = parser.parse_args()
    import bot.app
    import bot.channels.telegram_ptb
    import bot.cli
    import bot.dispatcher
    from bot.memory import trim

    del bot  # imported as `huiyin run` does, for the starting figure
    replay = load_replay()
    gc.collect()
    start = rss_mib()
    end: dict[str, Any] = {}
    simulate = replay.Simulation.run

    async def run_and_measure(self: Any, needs: int) -> None:
        await simulate(self, needs)
        end["rss"] = rss_mib()
        if args.trace:
            end["top"] = tracemalloc.take_snapshot().statistics("lineno")[:10]

    replay.Simulation.run = run_and_measure
    if args.trace:
        tracemalloc.start()
    figures = await replay.run(
        args.needs,
        args.seed,
        args.postgres,
        digest=not args.no_digest,
        roster_elsewhere=not args.roster_here,
    )
    gc.collect()
    after = rss_mib()
    threads = threading.active_count()
    trim()
    trimmed = rss_mib()
    replay.show(figures, "PostgreSQL" if args.postgres else "SQLite")
    print()
    print(f"RSS at start              {start:10.1f} MiB")
    print(f"RSS at the replay's end   {end['rss']:10.1f} MiB")
    print(f"RSS after (gc)            {after:10.1f} MiB  ({threads} threads)")
    print(f"RSS after malloc_trim     {trimmed:10.1f} MiB")
    print(f"peak RSS                  {peak_mib():10.1f} MiB")
    phrases = "pypinyin.phrases_dict" in sys.modules
    print(f"pypinyin's phrase dictionary loaded here: {'yes' if phrases else 'no'}")
    if args.trace:
        print("\ntracemalloc: the ten biggest holders at the replay's end")
        for stat in end["top"]:
            frame = stat.traceback[0]
            where = Path(frame.filename)
            shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
            print(f"{stat.size / 2**20:8.1f} MiB {stat.count:9d} blocks  {shown}:{frame.lineno}")


if __name__ == "__main__":
    asyncio.run(main())
