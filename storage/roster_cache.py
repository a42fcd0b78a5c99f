"""The roster's units as this process keeps them: read once, then from memory.

Units (the district's tree) change only when the roster is imported, yet every route, task card,
label and area reads them: an escalation read the same `units` rows 12 times (issue 14). Each
`Database` holds one `RosterCache`, and every session it makes carries it (`session.info`), so
`unit_of(session, code)` answers from memory after the first read of a unit.

An import (storage.roster) raises the number in the one-row `roster_version` table in its own
transaction and empties the cache of the process that ran it. Other processes (the web
replicas, the worker, while `huiyin roster import` runs in a process of its own) look at that
number at most once every `check_every` seconds and drop what they keep when it has moved, so
an import is seen everywhere within that time. Tests and code that write units directly call
`forget()` (or `Database.roster.forget()`).

The units handed out are copies detached from any session: read them, never change or add them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import RosterVersion, Unit

SESSION_KEY = "roster_cache"
# How often a process looks whether another one has imported the roster meanwhile.
CHECK_EVERY_SECONDS = 10.0


class RosterCache:
    def __init__(
        self,
        *,
        check_every: float = CHECK_EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check_every = check_every
        self.monotonic = monotonic
        self._units: dict[str, Unit] = {}
        self._loaded = False
        self._version: int | None = None
        self._checked_at: float | None = None
        self.reads = 0  # statements this cache ran (units and the version), for the benches

    def forget(self) -> None:
        """Drop every unit kept; the next look-up reads the table again."""
        self._units.clear()
        self._loaded = False
        self._version = None
        self._checked_at = None

    async def _check(self, session: AsyncSession) -> None:
        now = self.monotonic()
        if self._checked_at is not None and now - self._checked_at < self.check_every:
            return
        self._checked_at = now
        self.reads += 1
        version = (
            await session.exec(select(RosterVersion.version).where(RosterVersion.id == 1))
        ).first()
        if version != self._version:
            self._units.clear()
            self._loaded = False
            self._version = version

    def _keep(self, unit: Unit) -> Unit:
        copy = Unit.model_validate(unit.model_dump())
        self._units[copy.code] = copy
        return copy

    async def _load(self, session: AsyncSession) -> None:
        await self._check(session)
        if not self._loaded:
            # The whole tree at once (3,269 units in a district of 651 villages): one
            # statement instead of one per unit as routes and cards come to them.
            self.reads += 1
            for unit in (await session.exec(select(Unit))).all():
                self._keep(unit)
            self._loaded = True

    async def everything(self, session: AsyncSession) -> list[Unit]:
        """Every unit, in code order."""
        await self._load(session)
        return sorted(self._units.values(), key=lambda u: u.code)

    async def unit(self, session: AsyncSession, code: str) -> Unit | None:
        await self._load(session)
        kept = self._units.get(code)
        if kept is not None:
            return kept
        self.reads += 1  # written since the tree was read (tests write units directly)
        unit = await session.get(Unit, code)
        return None if unit is None else self._keep(unit)


def cache_of(session: AsyncSession) -> RosterCache | None:
    cache = session.info.get(SESSION_KEY)
    return cache if isinstance(cache, RosterCache) else None


async def unit_of(session: AsyncSession, code: str | None) -> Unit | None:
    """The unit `code` names (None for none), from the session's roster cache when it has one."""
    if not code:
        return None
    cache = cache_of(session)
    if cache is None:
        return await session.get(Unit, code)
    return await cache.unit(session, code)


async def all_units(session: AsyncSession) -> list[Unit]:
    """Every unit of the roster, in code order (from the cache when the session has one)."""
    cache = cache_of(session)
    if cache is None:
        return list((await session.exec(select(Unit).order_by(Unit.code))).all())
    return await cache.everything(session)


async def raise_roster_version(session: AsyncSession) -> None:
    """Tell every process's cache that the units may have changed (inside the import's
    transaction; the importer empties its own process's cache once it has committed)."""
    raised = await session.exec(
        update(RosterVersion)
        .where(RosterVersion.id == 1)  # type: ignore[arg-type]
        .values(version=RosterVersion.version + 1)
    )  # type: ignore[call-overload]
    if not raised.rowcount:  # the row is gone (tests empty every table)
        session.add(RosterVersion(id=1, version=1))
