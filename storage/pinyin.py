"""Reading Chinese as pinyin, in two ways that cost very different amounts of memory.

pypinyin reads a word by its phrase dictionary (重庆 is chong qing, not zhong qing), and that
dictionary is most of what pypinyin costs: `import pypinyin` adds about 55 MiB to a process,
12 MiB with the environment variable PYPINYIN_NO_PHRASES set before its first import
(pypinyin/constants.py reads it once, at import). So:

- a place's name is read with phrases once, when the roster is imported (`name_reading`), and
  the reading is kept with the unit (`units.syllables`, migration 0022);
- what a resident types is read character by character (`typed_syllables`): homophones and
  the pinyin of typed characters need no phrases, and the running bot never loads them.

Whichever of the two runs first in a process, each gets what it needs: `typed_syllables`
imports pypinyin without phrases only when nothing has imported it yet, and reads one
character at a time even when phrases are loaded; `name_reading` loads the phrase dictionary
into a pypinyin imported without it (a demo imports the roster in the bot's own process).

`python -m storage.pinyin` reads names (one a line on stdin) and prints their readings (one a
line): the migration asks a child process, so that upgrading a database at the bot's start
does not leave the phrase dictionary in the bot.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

NO_PHRASES = "PYPINYIN_NO_PHRASES"


def _pypinyin(*, phrases: bool) -> Any:
    """pypinyin, imported now if it is not yet: without the phrase dictionary unless `phrases`."""
    if "pypinyin" not in sys.modules:
        before = os.environ.get(NO_PHRASES)
        if phrases:
            os.environ.pop(NO_PHRASES, None)
        else:
            os.environ[NO_PHRASES] = "1"
        try:
            import pypinyin
        finally:  # leave the environment as it was (child processes choose for themselves)
            if before is None:
                os.environ.pop(NO_PHRASES, None)
            else:
                os.environ[NO_PHRASES] = before
    import pypinyin

    return pypinyin


@cache
def _phrases_loaded() -> None:
    """Make sure pypinyin reads words by its phrase dictionary (once a process)."""
    pypinyin = _pypinyin(phrases=True)
    from pypinyin.constants import PHRASES_DICT

    if not PHRASES_DICT:  # imported without phrases: load them, as a custom dictionary would be
        from pypinyin.phrases_dict import phrases_dict

        pypinyin.load_phrases_dict(phrases_dict)


def _lower(readings: Sequence[str]) -> tuple[str, ...]:
    return tuple(s.lower() for s in readings if s)


@cache
def name_syllables(name: str) -> tuple[str, ...]:
    """The usual reading of a place's name, word by word (重庆 → chong qing); loads the phrase
    dictionary."""
    _phrases_loaded()
    from pypinyin import lazy_pinyin

    return _lower(lazy_pinyin(name, errors="ignore"))


def name_reading(name: str) -> str:
    """`name_syllables` as kept in `units.syllables`: the syllables joined by spaces."""
    return " ".join(name_syllables(name))


def syllables_of_reading(reading: str) -> tuple[str, ...]:
    return tuple(reading.split())


@cache
def typed_syllables(text: str) -> tuple[str, ...]:
    """Each character's usual reading on its own (重庆 → zhong qing): no phrase dictionary."""
    pypinyin = _pypinyin(phrases=False)
    # A list of single characters is read character by character, phrases loaded or not.
    return _lower(pypinyin.lazy_pinyin(list(text), errors="ignore"))


def readings_elsewhere(names: Sequence[str], *, timeout: float = 300.0) -> list[str]:
    """`name_reading` of each name, computed in a child process so that this one does not load
    the phrase dictionary."""
    if not names:
        return []
    for name in names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"a unit name spans lines: {name!r}")
    done = subprocess.run(
        [sys.executable, "-m", "storage.pinyin"],
        input="\n".join(names) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    readings = done.stdout.split("\n")[: len(names)]
    if len(readings) != len(names):
        raise RuntimeError("the child process read fewer names than it was given")
    return readings


def main() -> None:
    sys.stdin.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    for line in sys.stdin:
        sys.stdout.write(name_reading(line.rstrip("\r\n")) + "\n")


if __name__ == "__main__":
    main()
