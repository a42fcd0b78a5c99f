"""A district at real scale, generated from a seed: 13 towns, 651 villages, 2,604 grids and 3,268
staff (a grid member per grid, a coordinator per village, an officer per town), as `units.csv`
and `people.csv` the importer reads. The same seed always gives the same roster.

The first town (凤鸣镇, code BD-T01) has 51 villages, as the practice's towns have about fifty,
and among them the villages the search tests type: 毛家冲村, 李家湾村, 长岭村, 重阳村. Village names
repeat across towns as they do in real districts (石桥村 is in three towns).
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pypinyin import lazy_pinyin
from sqlalchemy import insert, text, update
from sqlmodel import col, select

from domain.lifecycle import Status
from storage.database import Database
from storage.models import Account, Beneficiary, Claim, Request, Staff, Unit

DISTRICT = "BD"
TOWNS = (
    "凤鸣镇", "青山镇", "白沙镇", "石门镇", "龙潭镇", "花桥镇", "长乐镇",
    "金鸡镇", "双峰镇", "太平镇", "黄土镇", "新塘镇", "东岭乡",
)  # fmt: skip
VILLAGES = 651
GRIDS_PER_VILLAGE = 4
FIRST = tuple("毛李王张陈刘杨黄赵周吴徐孙胡朱高林何郭马罗梁宋")
FIRST += tuple("郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡")
MIDDLE = tuple("家家家公塘石桥竹枫柏松杨")
LAST = tuple("冲湾坪岭坡塘桥坝铺山河垄村园洲港田湖溪岗")
# Named on purpose: the search tests type these.
FIXED = {0: "毛家冲村", 1: "李家湾村", 2: "长岭村", 3: "重阳村", 4: "石桥村"}
REPEATED = "石桥村"  # also in towns 2 and 3
ORDINALS = ("第一网格", "第二网格", "第三网格", "第四网格")


@dataclass(frozen=True)
class Generated:
    towns: int
    villages: int
    grids: int
    staff: int


def english(name: str, suffix: str) -> str:
    return "".join(lazy_pinyin(name)).capitalize() + " " + suffix


def grid_centre(town: int, village: int, grid: int) -> tuple[float, float]:
    """Where a generated grid is (lat, lon): towns 0.2° apart north to south, villages on a
    10-wide lattice 0.015° apart, a village's four grids 0.004° apart."""
    lat = 28.0 + town * 0.2 + (village % 10) * 0.015 + (grid // 2) * 0.004
    lon = 112.0 + (village // 10) * 0.015 + (grid % 2) * 0.004
    return round(lat, 6), round(lon, 6)


OUTLINE_HALF = 0.0019  # half the side of a generated grid's square outline, in degrees


def write_district(directory: Path, seed: int = 11, *, geometry: bool = False) -> Generated:
    """With `geometry`, every grid gets a point (lat, lon columns) and the first town's grids
    an outline too (`grids.geojson`)."""
    rng = random.Random(seed)
    points: dict[str, tuple[float, float]] = {}
    features: list[dict[str, object]] = []
    directory.mkdir(parents=True, exist_ok=True)
    units: list[tuple[str, str, str, str, str]] = [
        (DISTRICT, "district", "", "百岭区", "Bailing District")
    ]
    people: list[tuple[str, str, str, str, str, str]] = []
    phones = iter(range(13_900_000_000, 14_000_000_000))
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    given = "建华秀英伟芳敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"

    def person() -> tuple[str, str]:
        name = rng.choice(surnames) + rng.choice(given) + rng.choice(given)
        return name, str(next(phones))

    per_town = [VILLAGES // len(TOWNS)] * len(TOWNS)
    per_town[0] += VILLAGES - sum(per_town)  # 51 in the first town, 50 in the others
    used: set[str] = set()
    grids = 0
    for t, town_name in enumerate(TOWNS):
        town = f"{DISTRICT}-T{t + 1:02d}"
        suffix = "Town" if town_name.endswith("镇") else "Township"
        units.append((town, "town", DISTRICT, town_name, english(town_name[:-1], suffix)))
        name, phone = person()
        people.append((name, phone, "", "town_officer", town, ""))
        town_names: set[str] = set()
        for v in range(per_town[t]):
            if t == 0 and v in FIXED:
                village_name = FIXED[v]
            elif t in (1, 2) and v == 7:
                village_name = REPEATED
            else:
                while True:
                    village_name = rng.choice(FIRST) + rng.choice(MIDDLE) + rng.choice(LAST) + "村"
                    if village_name not in used and village_name not in FIXED.values():
                        break
            used.add(village_name)
            town_names.add(village_name)
            village = f"{town}-V{v + 1:03d}"
            units.append(
                (village, "community", town, village_name, english(village_name[:-1], "Village"))
            )
            name, phone = person()
            people.append((name, phone, "", "coordinator", village, ""))
            for g in range(GRIDS_PER_VILLAGE):
                grid = f"{village}-G{g + 1}"
                units.append(
                    (
                        grid,
                        "grid",
                        village,
                        village_name + ORDINALS[g],
                        english(village_name[:-1], f"Grid {g + 1}"),
                    )
                )
                name, phone = person()
                people.append((name, phone, "", "grid_member", grid, ""))
                grids += 1
                lat, lon = grid_centre(t, v, g)
                points[grid] = (lat, lon)
                if t == 0:
                    h = OUTLINE_HALF
                    ring = [
                        [lon - h, lat - h],
                        [lon + h, lat - h],
                        [lon + h, lat + h],
                        [lon - h, lat + h],
                        [lon - h, lat - h],
                    ]
                    features.append(
                        {
                            "type": "Feature",
                            "properties": {"code": grid},
                            "geometry": {"type": "Polygon", "coordinates": [ring]},
                        }
                    )
    with (directory / "units.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if geometry:
            writer.writerow(["code", "level", "parent", "name", "name_en", "lat", "lon"])
            for row in units:
                point = points.get(row[0])
                writer.writerow([*row, *(point if point else ("", ""))])
        else:
            writer.writerow(["code", "level", "parent", "name", "name_en"])
            writer.writerows(units)
    if geometry:
        collection = {"type": "FeatureCollection", "features": features}
        (directory / "grids.geojson").write_text(json.dumps(collection), encoding="utf-8")
    with (directory / "people.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "phone", "telegram_id", "role", "unit", "posts"])
        writer.writerows(people)
    return Generated(len(TOWNS), VILLAGES, grids, len(people))


async def a_morning_of_work(db: Database, now: datetime, needs: int, seed: int = 14) -> None:
    """Make the imported district look like a working morning, for the digest: everyone on the
    roster opened Huiyin (a Telegram id each) but every ninth grid member and every thirteenth
    coordinator, and every 37th grid member has blocked it; `needs` requests spread over the
    district's grids, a quarter each new since yesterday morning, overdue, due to be resolved
    today and resolved (waiting for the verdict), and an offer nobody claimed on every tenth.

    Rows are written directly (not through the conversations): this is data for the digest's
    reads, made in seconds."""
    rng = random.Random(seed)
    day_ago = now - timedelta(days=1)
    async with db.transaction() as session:
        await session.exec(  # type: ignore[call-overload]
            update(Staff).values(
                telegram_id=Staff.id + 600_000_000, opened_at=now - timedelta(days=30)
            )
        )
        for role, every in (("grid_member", 9), ("coordinator", 13)):
            await session.exec(  # type: ignore[call-overload]
                update(Staff)
                .where(col(Staff.role) == role, text(f"staff.id % {every} = 0"))
                .values(opened_at=None)
            )
        await session.exec(  # type: ignore[call-overload]
            update(Staff)
            .where(col(Staff.role) == "grid_member", text("staff.id % 37 = 1"))
            .values(refused_at=day_ago, refused_reason="blocked")
        )
        grids = list(
            await session.exec(select(Unit.code).where(Unit.level == "grid").order_by(Unit.code))
        )
        resident = Account(telegram_id=500_000_001, chat_id=500_000_001, created_at=day_ago)
        session.add(resident)
        await session.flush()
        assert resident.id is not None
        beneficiary = Beneficiary(
            owner_account_id=resident.id,
            is_self=True,
            name="居民",
            grid_code=grids[0],
            created_at=day_ago,
        )
        session.add(beneficiary)
        await session.flush()
        assert beneficiary.id is not None
        rows: list[dict[str, object]] = []
        for number in range(needs):
            created = now - timedelta(minutes=rng.randint(60, 60 * 24 * 6))
            row: dict[str, object] = {
                "kind": "need",
                "category": "repair",
                "reporter_account_id": resident.id,
                "beneficiary_id": beneficiary.id,
                "grid_code": rng.choice(grids),
                "status": Status.ASSIGNED.value,
                "created_at": created,
                "updated_at": created,
                "respond_by": created + timedelta(hours=4),
            }
            row |= dict.fromkeys(
                ("accept_due_at", "next_due_at", "accepted_at", "responded_at"), None
            )
            row |= dict.fromkeys(("resolve_due_at", "resolved_at"), None)
            kind = number % 4
            if kind == 0:  # new since yesterday's digest, to be accepted later today
                row["created_at"] = row["updated_at"] = now - timedelta(hours=rng.randint(1, 20))
                row["accept_due_at"] = row["next_due_at"] = now + timedelta(days=2)
                row["respond_by"] = now + timedelta(days=2)
            elif kind == 1:  # never accepted, overdue
                row["accept_due_at"] = row["next_due_at"] = created + timedelta(hours=4)
            elif kind == 2:  # accepted, to be resolved today
                row["status"] = Status.IN_PROGRESS.value
                row["accepted_at"] = row["responded_at"] = created + timedelta(hours=1)
                row["resolve_due_at"] = row["next_due_at"] = now + timedelta(
                    hours=rng.randint(1, 9)
                )
            else:  # resolved, waiting for the resident's verdict
                row["status"] = Status.RESOLVED.value
                row["accepted_at"] = row["responded_at"] = created + timedelta(hours=1)
                row["resolved_at"] = created + timedelta(hours=rng.randint(2, 40))
            rows.append(row)
        await session.exec(insert(Request), params=rows)  # type: ignore[call-overload]
        ids = list(await session.exec(select(Request.id).order_by(col(Request.id))))
        offers = [
            {
                "request_id": request_id,
                "state": "offered",
                "offered_at": now - timedelta(hours=rng.randint(25, 60)),
                "reach_unit_code": grids[0],
            }
            for request_id in ids[::10]
        ]
        if offers:
            await session.exec(insert(Claim), params=offers)  # type: ignore[call-overload]
