"""The memory of an idle bot process: what importing the app (CLI, dispatcher, python-telegram-bot
adapter) and building the dispatcher and the worker leaves resident (VmRSS), and which heavy
libraries are loaded by then.

    .venv/bin/python bench/idle_rss.py [--tree DIR] [--search]

`--tree` measures another checkout of the project (e.g. `git archive 9fa0f06 | tar -x -C DIR`,
the tree before matplotlib and openpyxl were loaded on first use). `--search` then finds a
place by typed text, as the first resident signing up does (pypinyin loads then: with its
phrase dictionary before units kept their names' readings, storage/pinyin.py). Linux only
(/proc).

This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IDLE = """
import sys, tempfile

import bot.app, bot.cli, bot.dispatcher
import bot.channels.telegram_ptb  # the default framework, as `huiyin run` opens it

from bot.app import build_worker
from bot.channels.memory import MemorySender
from bot.dispatcher import Dispatcher
from bot.settings import load_settings
from domain.clock import ManualClock
from storage.database import Database

url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/idle.db"
settings = load_settings(_env_file=None, database_url=url)
db = Database(url)
Dispatcher(db, ManualClock(), settings.zone, policy=settings.policy)
build_worker(db, MemorySender(), ManualClock(), settings)
SEARCH
rss = next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]
HEAVY = {"matplotlib", "openpyxl", "PIL", "numpy", "pypinyin"}
heavy = sorted({m.split(".")[0] for m in sys.modules} & HEAVY)
if "pypinyin.phrases_dict" in sys.modules:
    heavy.append("(pypinyin's phrase dictionary)")
print(f"{int(rss) / 1024:.1f} MiB resident; loaded: {', '.join(heavy) or 'none of them'}")
"""
# A unit as the roster import leaves it (with its name's reading, where the tree has the column),
# found by a homophone typed in characters and by pinyin.
SEARCH = """
from domain.places import find_places
from storage.models import Unit
unit = Unit(code="A", level="community", name="毛家冲村")
if "syllables" in Unit.model_fields:
    unit.syllables = "mao jia chong cun"
assert [f.unit.code for f in find_places([unit], "毛家充")] == ["A"]
assert [f.unit.code for f in find_places([unit], "maojiachong")] == ["A"]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--search", action="store_true", help="then find a place by name")
    args = parser.parse_args()
    done = subprocess.run(
        [sys.executable, "-c", IDLE.replace("SEARCH", SEARCH if args.search else "")],
        cwd=args.tree,
        env={"PYTHONPATH": str(args.tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    searched = " after a place search" if args.search else ""
    print(f"{args.tree}{searched}: {done.stdout.strip()}")


if __name__ == "__main__":
    main()
