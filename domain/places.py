"""Finding a place by what a resident types: Chinese names whole or in part, pinyin, initials,
traditional characters, the English name.

A district has hundreds of villages and thousands of grids, and people type a village's name the
way they know it: "毛家冲", "毛家冲村", "mjc", "maojiachong", "Mao Jia Chong", "毛家衝"
(traditional), or "毛家充" (a pinyin input method's wrong character for the same sound).
`find_places` ranks the units of a scope by how well their name answers the text:

    0 the whole name (or the name without 村/社区/网格/镇…), the full pinyin, the initials
    1 the name, its pinyin or its initials begin with the text
    2 the name or its pinyin (at a syllable) contains the text
    3 the text's own sound: its syllables appear in the name's (homophones)

and drops a unit whose ancestor is also found at least as well (typing a village's name finds the
village, not also every grid named after it). Ties go to the upper level, then the roster order.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import product
from typing import TYPE_CHECKING

from opencc import OpenCC

from storage.models import Unit
from storage.pinyin import name_syllables, syllables_of_reading, typed_syllables

if TYPE_CHECKING:  # shapely (and numpy) load at the first location shared, not at start
    from shapely.prepared import PreparedGeometry

# The place names a resident leaves off: 毛家冲 for 毛家冲村, 凤鸣 for 凤鸣镇.
SUFFIXES = ("社区", "街道", "网格", "村", "镇", "乡", "区")
LEVEL_ORDER = {"district": 0, "town": 1, "community": 2, "grid": 3}
SHOWN = 8  # matches shown at once; more means "type more of the name"
PAGE_SIZE = 12  # place buttons on one picker message
CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"^[a-z0-9]+$")
DROPPED = re.compile(r"[\s\-_'·.,，。、!?！？:：;；\"“”()（）]+")


@dataclass(frozen=True, slots=True)
class Keys:
    """What a place's name can be typed as. A character read more than one way in place names
    (长 chang or zhang, 重 chong or zhong) gives more than one spelling; any of them answers."""

    name: str  # simplified Chinese, as in the roster
    bare: str  # without its level suffix
    loose: str  # without 村/社区/街道 anywhere: 毛家冲第一网格 for 毛家冲村第一网格
    syllables: tuple[str, ...]  # the usual reading, one syllable per character
    exact: frozenset[str]  # full pinyin and initials, of the name and of the bare name
    joined: tuple[str, ...]  # full pinyin, per spelling
    initials: tuple[str, ...]  # per spelling
    starts: tuple[frozenset[int], ...]  # where syllables begin in `joined`, per spelling
    spaced: tuple[str, ...]  # " mao jia chong cun ", per spelling (for homophones)
    english: str  # lower case, letters and digits only


# Characters that place names read more than one way; the phrase reading comes first anyway.
POLYPHONES: dict[str, tuple[str, ...]] = {
    "长": ("chang", "zhang"), "重": ("chong", "zhong"), "乐": ("le", "yue"),
    "堡": ("bao", "bu", "pu"), "朝": ("chao", "zhao"), "曾": ("zeng", "ceng"),
    "都": ("du", "dou"), "行": ("xing", "hang"), "单": ("dan", "shan"), "厦": ("xia", "sha"),
    "大": ("da", "dai"), "会": ("hui", "kuai"), "石": ("shi", "dan"), "车": ("che", "ju"),
    "角": ("jiao", "jue"), "家": ("jia", "jie"), "华": ("hua",), "塔": ("ta",),
    "尾": ("wei", "yi"), "藏": ("cang", "zang"), "沈": ("shen",), "区": ("qu", "ou"),
}  # fmt: skip
LOOSE = re.compile(r"村|社区|街道")
MAX_SPELLINGS = 16


@cache
def _to_simplified() -> OpenCC:
    return OpenCC("t2s")


def simplified(text: str) -> str:
    return str(_to_simplified().convert(text))


def syllables_of(text: str) -> tuple[str, ...]:
    """Typed text read character by character (storage.pinyin: no phrase dictionary)."""
    return typed_syllables(text)


def _spellings(name: str, reading: str | None) -> list[tuple[str, ...]]:
    # The name's phrase reading as the roster import stored it; a unit without one (written
    # before migration 0022 could read it, or by a test) is read here, loading the phrases.
    first = name_syllables(name) if reading is None else syllables_of_reading(reading)
    spellings: list[tuple[str, ...]] = [first]
    if len(first) != len(name):  # not one syllable per character: keep the phrase reading
        return spellings
    readings = [
        (reading, *(r for r in POLYPHONES.get(char, ()) if r != reading))
        for char, reading in zip(name, first, strict=True)
    ]
    for combination in product(*readings):
        if len(spellings) >= MAX_SPELLINGS:
            break
        if combination not in spellings:
            spellings.append(combination)
    return spellings


@cache
def keys_of(name: str, name_en: str = "", reading: str | None = None) -> Keys:
    """What `name` can be typed as; `reading` is the name's phrase reading, as stored with its
    unit (`units.syllables`), or None to read it now."""
    bare = name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            bare = name[: -len(suffix)]
            break
    spellings = _spellings(name, reading)
    exact: set[str] = set()
    joined, initials, starts, spaced = [], [], [], []
    for syllables in spellings:
        whole = "".join(syllables)
        firsts = "".join(s[0] for s in syllables)
        exact.update((whole, "".join(syllables[: len(bare)]), firsts, firsts[: len(bare)]))
        joined.append(whole)
        initials.append(firsts)
        offsets, at = set(), 0
        for syllable in syllables:
            offsets.add(at)
            at += len(syllable)
        starts.append(frozenset(offsets))
        spaced.append(" " + " ".join(syllables) + " ")
    return Keys(
        name=name,
        bare=bare,
        loose=LOOSE.sub("", name),
        syllables=spellings[0],
        exact=frozenset(exact),
        joined=tuple(joined),
        initials=tuple(initials),
        starts=tuple(starts),
        spaced=tuple(spaced),
        english=normalise(name_en),
    )


def unit_keys(unit: Unit) -> Keys:
    return keys_of(unit.name, unit.name_en or "", unit.syllables)


def normalise(text: str) -> str:
    """Full-width to half-width, lower case, spaces and punctuation dropped, traditional
    characters made simplified."""
    folded = unicodedata.normalize("NFKC", text).lower()
    folded = DROPPED.sub("", folded)
    return simplified(folded) if CJK.search(folded) else folded


@dataclass(frozen=True, slots=True)
class Query:
    """Typed text, normalised once for a whole search."""

    text: str
    chinese: bool
    loose: str = ""
    # " mao jia chong ", for homophones: one per reading of the characters typed that place
    # names read more than one way (长 in 长乐 is "chang", though alone it reads "zhang").
    sounds: tuple[str, ...] = ()

    @classmethod
    def of(cls, typed: str) -> Query:
        text = normalise(typed)
        if not CJK.search(text):
            return cls(text, False)
        sounds = syllables_of(text)
        return cls(
            text,
            True,
            loose=LOOSE.sub("", text),
            sounds=_typed_sounds(text, sounds) if len(sounds) >= 2 else (),
        )


def _typed_sounds(text: str, first: tuple[str, ...]) -> tuple[str, ...]:
    """The typed text's readings, spaced: each character's usual one alone, and the other
    readings place names give the characters of POLYPHONES. Typed text is read character by
    character (no phrase dictionary in the bot), so 长乐 reads "zhang le" first, and its phrase
    reading "chang le" must come from the table."""
    if len(first) != len(text):  # not one syllable per character: keep the reading as it is
        return (" " + " ".join(first) + " ",)
    readings = [
        (reading, *(r for r in POLYPHONES.get(char, ()) if r != reading))
        for char, reading in zip(text, first, strict=True)
    ]
    sounds: list[str] = []
    for combination in product(*readings):
        if len(sounds) >= MAX_SPELLINGS:
            break
        sounds.append(" " + " ".join(combination) + " ")
    return tuple(sounds)


def score(keys: Keys, query: Query | str) -> int | None:
    """How well a place answers the typed text (lower is better), or None."""
    if isinstance(query, str):
        query = Query.of(query)
    text = query.text
    if not text:
        return None
    if query.chinese:
        if text in (keys.name, keys.bare):
            return 0
        if keys.name.startswith(text):
            return 1
        if text in keys.name:
            return 2
        if query.loose and query.loose in keys.loose:
            return 2
        if any(sound in spaced for sound in query.sounds for spaced in keys.spaced):
            return 3
        return None
    if not LATIN.match(text) or len(text) < 2:
        return None
    if text in keys.exact or (keys.english and text == keys.english):
        return 0
    best: int | None = None
    if keys.english.startswith(text):
        best = 1
    elif len(text) >= 3 and text in keys.english:
        best = 2
    for whole, firsts, starts in zip(keys.joined, keys.initials, keys.starts, strict=True):
        if whole.startswith(text) or firsts.startswith(text):
            return 1
        if best is None and len(text) >= 3:
            at = whole.find(text)
            while at != -1:
                if at in starts:
                    best = 2
                    break
                at = whole.find(text, at + 1)
    return best


@dataclass(frozen=True, slots=True)
class Found:
    unit: Unit
    score: int


def descendants(units: Iterable[Unit], root: str) -> list[Unit]:
    """The units below `root` (not `root` itself), in the order given."""
    units = list(units)
    below: set[str] = {root}
    children: dict[str, list[Unit]] = {}
    for unit in units:
        if unit.parent_code is not None:
            children.setdefault(unit.parent_code, []).append(unit)
    order: list[str] = []
    stack = [root]
    while stack:
        code = stack.pop()
        for child in children.get(code, []):
            if child.code not in below:
                below.add(child.code)
                order.append(child.code)
                stack.append(child.code)
    wanted = set(order)
    return [u for u in units if u.code in wanted]


def find_places(units: Sequence[Unit], text: str) -> list[Found]:
    """The units of `units` (a scope: everything below the level shown) that answer `text`,
    best first, without a unit whose ancestor in the scope answers as well."""
    query = Query.of(text)
    scored: dict[str, Found] = {}
    for unit in units:
        s = score(unit_keys(unit), query)
        if s is not None:
            scored[unit.code] = Found(unit, s)
    parent_of = {u.code: u.parent_code for u in units}
    kept: list[Found] = []
    for found in scored.values():
        code = parent_of.get(found.unit.code)
        covered = False
        while code is not None:
            above = scored.get(code)
            if above is not None and above.score <= found.score:
                covered = True
                break
            code = parent_of.get(code)
        if not covered:
            kept.append(found)
    position = {u.code: i for i, u in enumerate(units)}
    kept.sort(key=lambda f: (f.score, LEVEL_ORDER.get(f.unit.level, 9), position[f.unit.code]))
    return kept


def page_count(total: int, size: int = PAGE_SIZE) -> int:
    return max(1, -(-total // size))


def page_of(items: Sequence[Unit], page: int, size: int = PAGE_SIZE) -> tuple[list[Unit], int]:
    """One page of `items` (the page clamped to those there are) and the page shown."""
    page = min(max(page, 0), page_count(len(items), size) - 1)
    return list(items[page * size : (page + 1) * size]), page


# Where a shared location falls ----------------------------------------------------------------

EARTH_RADIUS_M = 6_371_000.0
DEFAULT_RADIUS_M = 2_000.0


@dataclass(frozen=True, slots=True)
class Located:
    """The grid for a shared location: inside its outline, or `distance_m` from its point."""

    unit: Unit
    inside: bool
    distance_m: float


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@cache
def _outline(text: str) -> PreparedGeometry:
    from shapely.geometry import shape
    from shapely.prepared import prep

    return prep(shape(json.loads(text)))


def has_geometry(unit: Unit) -> bool:
    return bool(unit.outline) or (unit.lat is not None and unit.lon is not None)


def locate(grids: Iterable[Unit], lat: float, lon: float, radius_m: float) -> Located | None:
    """The grid whose outline holds (lat, lon), else the grid whose point is nearest within
    `radius_m`, else None. Outlines are GeoJSON, longitude first."""
    from shapely.geometry import Point

    point = Point(lon, lat)
    nearest: Located | None = None
    for grid in grids:
        if grid.outline and _outline(grid.outline).contains(point):
            return Located(grid, True, 0.0)
        if grid.lat is not None and grid.lon is not None:
            d = distance_m(lat, lon, grid.lat, grid.lon)
            if d <= radius_m and (nearest is None or d < nearest.distance_m):
                nearest = Located(grid, False, d)
    return nearest
