"""matplotlib (charts, posters), openpyxl (the ledger, the review workbook), pypinyin (a place
typed by name) and shapely with numpy (a location shared, grid outlines imported) load when
first used, not when the bot starts: together they are about 115 MiB of a process's memory that
most processes never need (a webhook replica never draws a chart)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "openpyxl", "pypinyin", "shapely")

# Run in a fresh interpreter: this test process has long imported both.
START = """
import importlib, pkgutil, sys, tempfile
from pathlib import Path

import bot.app, bot.cli, bot.dispatcher, handlers, schedules
for package in (handlers, schedules):
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
import bot.channels.telegram_aiogram, bot.channels.telegram_ptb

from bot.app import build_worker
from bot.channels.memory import MemorySender
from bot.dispatcher import Dispatcher
from bot.settings import load_settings
from domain import charts
from domain.clock import ManualClock
from storage.database import Database

url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/lazy.db"
settings = load_settings(_env_file=None, database_url=url)
charts.use_font(settings.chart_font)  # as run_bot does at start
db = Database(url)
clock = ManualClock()
Dispatcher(db, clock, settings.zone, policy=settings.policy, limits=settings.flood_limits)
build_worker(db, MemorySender(), clock, settings)
HEAVY = {"matplotlib", "openpyxl", "pypinyin", "shapely", "numpy"}
print(" ".join(sorted({name.split(".")[0] for name in sys.modules} & HEAVY)))
"""


def run_fresh(script: str, home: Path) -> str:
    """What `script` prints, run in a fresh interpreter (nothing imported yet) from the project."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def loaded_after(script: str, home: Path) -> set[str]:
    return set(run_fresh(script, home).split())


def test_starting_the_bot_loads_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    assert loaded_after(START, tmp_path) == set()


def test_each_loads_when_first_used(tmp_path: Path) -> None:
    """The check above can see them: the first chart font lookup, the first workbook written,
    the first place typed and the first location shared load them."""
    use = START.replace(
        "print(",
        "charts.default_font()\n"
        "import io\n"
        "from datetime import UTC, datetime\n"
        "from domain.i18n import translator\n"
        "from domain.reports import Period\n"
        "from domain.review import DEFAULT_WEIGHTS, Table\n"
        "from domain.review_book import write_review\n"
        "moment = datetime(2026, 11, 1, tzinfo=UTC)\n"
        "table = Table(None, Period(moment, moment, '2026-11'), DEFAULT_WEIGHTS)\n"
        "write_review(table, io.BytesIO(), translator('en'), 'District')\n"
        "from domain.places import Query\n"
        "Query.of('毛家冲')\n"
        "from domain.places import locate\n"
        "locate([], 28.2, 112.9, 500.0)\n"
        "print(",
    )
    # matplotlib's font cache goes to tmp_path
    assert loaded_after(use, tmp_path) == {"matplotlib", "openpyxl", "pypinyin", "shapely", "numpy"}
