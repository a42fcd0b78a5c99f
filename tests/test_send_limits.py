"""The send pacing: Telegram's limits kept without a real clock (time and sleep are injected)."""

from __future__ import annotations

import asyncio

from schedules.outbox import SendLimits


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limits(time: FakeTime, **options: float) -> SendLimits:
    return SendLimits(monotonic=time.monotonic, sleep=time.sleep, **options)  # type: ignore[arg-type]


async def test_a_short_burst_to_one_chat_goes_at_once_then_one_a_second() -> None:
    time = FakeTime()
    pacing = limits(time)
    for _ in range(3):
        await pacing.wait(1)
    assert time.now == 0.0
    for _ in range(3):
        await pacing.wait(1)
    assert round(time.now, 6) == 3.0


async def test_other_chats_are_not_held_back_by_a_busy_one() -> None:
    time = FakeTime()
    pacing = limits(time)
    for _ in range(5):
        await pacing.wait(1)
    before = time.now
    await pacing.wait(2)
    assert time.now == before


async def test_the_deployment_stays_within_thirty_a_second() -> None:
    time = FakeTime()
    pacing = limits(time, per_second=30.0)
    for chat in range(90):
        await pacing.wait(chat)
    # 30 at once, then one every 1/30 s: 90 messages need 2 seconds.
    assert abs(time.now - 2.0) < 1e-6


async def test_concurrent_senders_share_the_budget() -> None:
    time = FakeTime()
    pacing = limits(time, per_second=10.0)
    await asyncio.gather(*(pacing.wait(chat) for chat in range(20)))
    assert abs(time.now - 1.0) < 1e-6
