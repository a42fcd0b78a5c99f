"""The send pacing: Telegram's limits kept without a real clock (time and sleep are injected)."""

from __future__ import annotations

import asyncio

from schedules.outbox import SendLimits, default_parallel_chats


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


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most of `times` that fall in any window of `seconds` (each window starting at one)."""
    return max((sum(start <= t < start + seconds for t in times) for start in times), default=0)


async def test_a_short_burst_to_one_chat_goes_at_once_then_one_a_second() -> None:
    time = FakeTime()
    pacing = limits(time)
    for _ in range(3):
        await pacing.wait(1)
    assert time.now == 0.0
    for _ in range(3):
        await pacing.wait(1)
    assert round(time.now, 6) == 3.45  # one a second, each with the margin (0.15 s)


async def test_other_chats_are_not_held_back_by_a_busy_one() -> None:
    time = FakeTime()
    pacing = limits(time)
    for _ in range(5):
        await pacing.wait(1)
    before = time.now
    await pacing.wait(2)
    assert time.now == before


async def test_the_deployment_stays_within_thirty_in_any_second() -> None:
    """A backlog's first second carries 30, not 30 and the refill of a bucket (59), which is
    what provoked Telegram's 429s (bench/send_rate.py)."""
    time = FakeTime()
    pacing = limits(time, per_second=30.0)
    sent: list[float] = []
    for chat in range(90):
        await pacing.wait(chat)
        sent.append(time.now)
    assert most_in_any_window(sent, 1.0) == 30
    # 30 at once, then 30 more each second and the margin: 90 messages in 2.1 seconds.
    assert abs(time.now - 2.1) < 1e-6


async def test_concurrent_senders_share_the_budget() -> None:
    time = FakeTime()
    pacing = limits(time, per_second=10.0)
    await asyncio.gather(*(pacing.wait(chat) for chat in range(20)))
    assert abs(time.now - 1.05) < 1e-6


async def test_chats_that_went_quiet_are_forgotten() -> None:
    """A district's worth of chats does not stay in the limiter's memory."""
    time = FakeTime()
    pacing = limits(time, per_second=100_000.0)
    for chat in range(5000):
        await pacing.wait(chat)
    time.now += 10.0
    await pacing.wait(99_999)
    assert len(pacing._chats) < 100


def test_the_sender_drains_enough_chats_at_once_to_reach_the_total_rate() -> None:
    """With each chat at one a second, 8 chats at once delivered 8 a second of a backlog spread
    over many chats; the default serves twice the chats the total rate needs."""
    telegram = SendLimits()
    assert (
        default_parallel_chats(telegram) * telegram.per_chat_per_second >= 2 * telegram.per_second
    )
    slower = SendLimits(per_second=10.0, per_chat_per_second=0.5)
    assert default_parallel_chats(slower) == 40
