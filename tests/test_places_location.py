"""Sharing a location at the place step: the grid whose outline holds it, else the grid whose
point is nearest within the configured distance, is offered for one tap; a roster without
geometry shows no location button. Plus how the roster carries points and outlines."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from domain.clock import ManualClock
from domain.i18n import translator
from domain.places import distance_m, locate
from storage.database import Database
from storage.models import Account, Unit
from storage.roster import RosterRefused, import_roster, sample_district_dir
from tests.big_district import OUTLINE_HALF, grid_centre, write_district
from tests.conftest import database
from tests.harness import Harness

RESIDENT = 940001
MJC = "BD-T01-V001"


def square(code: str, lat: float, lon: float, half: float = 0.001) -> dict[str, object]:
    ring = [
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat + half],
        [lon - half, lat - half],
    ]
    return {
        "type": "Feature",
        "properties": {"code": code},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def test_outline_first_then_the_nearest_point_within_reach() -> None:
    outline = json.dumps(square("A", 28, 112)["geometry"])
    inside = Unit(code="A", level="grid", name="A", outline=outline)
    near = Unit(code="B", level="grid", name="B", lat=28.01, lon=112.0)
    far = Unit(code="C", level="grid", name="C", lat=28.5, lon=112.0)
    assert locate([near, far, inside], 28.0003, 112.0003, 2000) == locate(
        [inside], 28.0003, 112.0003, 2000
    )
    found = locate([near, far, inside], 28.0003, 112.0003, 2000)
    assert found is not None and found.unit.code == "A" and found.inside
    found = locate([near, far, inside], 28.008, 112.0, 2000)
    assert found is not None and found.unit.code == "B" and not found.inside
    assert 200 < found.distance_m < 250  # 0.002° of latitude is about 222 m
    assert locate([near, far, inside], 29.0, 113.0, 2000) is None
    assert abs(distance_m(28, 112, 29, 112) - 111_195) < 50


# The roster ------------------------------------------------------------------------------------


@pytest.fixture
def roster_copy(tmp_path: Path) -> Path:
    target = tmp_path / "roster"
    shutil.copytree(sample_district_dir(), target)
    return target


def add_points(directory: Path, points: dict[str, tuple[str, str]]) -> None:
    lines = (directory / "units.csv").read_text(encoding="utf-8").splitlines()
    out = [lines[0] + ",lat,lon"]
    for line in lines[1:]:
        code = line.split(",", 1)[0]
        lat, lon = points.get(code, ("", ""))
        out.append(f"{line},{lat},{lon}")
    (directory / "units.csv").write_text("\n".join(out) + "\n", encoding="utf-8")


async def test_the_roster_carries_points_and_outlines(
    empty_db: Database, roster_copy: Path
) -> None:
    add_points(roster_copy, {"QS-JB-TH-01": ("28.2", "112.9")})
    collection = {"type": "FeatureCollection", "features": [square("QS-JB-TH-02", 28.3, 112.8)]}
    (roster_copy / "grids.geojson").write_text(json.dumps(collection), encoding="utf-8")
    await import_roster(empty_db, roster_copy)
    async with empty_db.session() as session:
        one = await session.get(Unit, "QS-JB-TH-01")
        two = await session.get(Unit, "QS-JB-TH-02")
        assert one is not None and (one.lat, one.lon, one.outline) == (28.2, 112.9, None)
        assert two is not None and two.lat is None
        assert json.loads(two.outline or "")["type"] == "Polygon"
    # Imported again without the geojson file: the outline stays; points follow the columns.
    (roster_copy / "grids.geojson").unlink()
    await import_roster(empty_db, roster_copy)
    async with empty_db.session() as session:
        two = await session.get(Unit, "QS-JB-TH-02")
        assert two is not None and two.outline is not None


async def test_bad_geometry_is_refused_with_the_place_named(
    empty_db: Database, roster_copy: Path
) -> None:
    add_points(roster_copy, {"QS-JB-TH-01": ("128.2", "112.9"), "QS-JB-TH-02": ("x", "1")})
    bad = square("QS-JB-TH", 28.3, 112.8)  # a community, not a grid
    crossing = square("QS-JB-LY-01", 28.3, 112.8)
    crossing["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
    }
    collection = {"type": "FeatureCollection", "features": [bad, crossing, {"type": "Feature"}]}
    (roster_copy / "grids.geojson").write_text(json.dumps(collection), encoding="utf-8")
    with pytest.raises(RosterRefused) as refused:
        await import_roster(empty_db, roster_copy)
    problems = [str(e) for e in refused.value.errors]
    assert any("is not a place on Earth" in p for p in problems)
    assert any("must both be numbers" in p for p in problems)
    assert "grids.geojson:1: QS-JB-TH is not a grid in units.csv" in problems
    assert "grids.geojson:2: QS-JB-LY-01: the outline is empty or crosses itself" in problems
    assert "grids.geojson:3: feature has no properties.code (a grid's code)" in problems


# Through the conversation ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def mapped_roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("big-district-mapped")
    write_district(directory, geometry=True)
    return directory


@pytest.fixture
async def mapped(backend: str, tmp_path: Path, mapped_roster: Path) -> AsyncIterator[Database]:
    async with database(backend, tmp_path, migrated=True, seeded=False) as db:
        await import_roster(db, mapped_roster)
        yield db


async def home_of(db: Database) -> str | None:
    async with db.session() as session:
        account = (
            await session.exec(select(Account).where(Account.telegram_id == RESIDENT))
        ).first()
        return account.home_grid_code if account else None


async def test_a_shared_location_inside_a_grid_finds_it(
    mapped: Database, clock: ManualClock
) -> None:
    t = translator("zh_CN")
    talk = Harness(mapped, clock)
    await talk.say(RESIDENT, "/start")
    *_, ask, picker = await talk.tap(RESIDENT, value="yes")
    assert ask.message.request_location == t._("📍 Share my location")
    assert picker.message.ref == "picker"

    lat, lon = grid_centre(0, 0, 1)  # 毛家冲村第二网格
    (offer,) = await talk.send(
        RESIDENT, "location", latitude=lat + OUTLINE_HALF / 2, longitude=lon - OUTLINE_HALF / 2
    )
    assert offer.text == t._(
        "📍 That location is in <b>{place}</b>. Is this right?",
        place="凤鸣镇 › 毛家冲村 › 毛家冲村第二网格",
    )
    shown = await talk.tap(RESIDENT, value=f"{MJC}-G2")
    assert await home_of(mapped) == f"{MJC}-G2"
    assert offer.buttons == [] and picker.buttons == []
    assert any(m.message.remove_keyboard for m in shown)  # the location keyboard goes


async def test_a_location_near_a_grid_point_offers_the_nearest(
    mapped: Database, clock: ManualClock
) -> None:
    talk = Harness(mapped, clock)
    await talk.say(RESIDENT, "/start")
    await talk.tap(RESIDENT, value="yes")
    await talk.tap(RESIDENT, value="BD-T01")  # the picker moved on: a location still works
    lat, lon = grid_centre(4, 12, 3)  # in 龙潭镇 (points only, no outlines)
    (offer,) = await talk.send(RESIDENT, "location", latitude=lat + 0.001, longitude=lon)
    assert "📍" in offer.text and offer.buttons[0].data.split(":")[2] == "BD-T05-V013-G4"
    assert "约 110 米" in offer.text  # 0.001° of latitude, in tens of metres
    await talk.tap(RESIDENT, value="BD-T05-V013-G4")  # outside the town shown, but offered
    assert await home_of(mapped) == "BD-T05-V013-G4"


async def test_a_location_far_from_every_grid_is_answered(
    mapped: Database, clock: ManualClock
) -> None:
    t = translator("zh_CN")
    talk = Harness(mapped, clock)
    await talk.say(RESIDENT, "/start")
    await talk.tap(RESIDENT, value="yes")
    (answer,) = await talk.send(RESIDENT, "location", latitude=22.54, longitude=114.05)  # 深圳
    assert answer.text == t._(
        "I know of no grid within {km} km of that location. Please choose with the buttons "
        "above, or type the name of your village.",
        km="2",
    )
    assert await home_of(mapped) is None


async def test_no_location_button_without_geometry(harness: Harness) -> None:
    await harness.say(RESIDENT, "/start")
    shown = await harness.tap(RESIDENT, value="yes")
    assert not any(m.message.request_location for m in shown)
