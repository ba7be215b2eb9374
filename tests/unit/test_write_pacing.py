"""`shared.graph.pacing`: the sliding window that keeps writes under Graph's quota."""

from __future__ import annotations

import pytest

from shared.graph import pacing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_writes_go_at_once_under_the_quota_then_wait_for_the_window() -> None:
    clock = Clock()
    pacer = pacing.WritePacer(pacing.WriteQuota(writes=40, seconds=10.0, margin=0.1), clock)
    budget = pacing.Budget(limit=60.0)
    assert await pacer.acquire(20, budget, clock.sleep)
    clock.now += 3
    assert await pacer.acquire(20, budget, clock.sleep)
    assert clock.slept == [] and pacer.delay(1) == pytest.approx(11.0 - 3)
    assert await pacer.acquire(20, budget, clock.sleep)  # waits for the first 20 to expire
    assert clock.slept == [pytest.approx(8.0)] and budget.waited == pytest.approx(8.0)


async def test_a_wait_past_the_budget_is_refused_and_counts_nothing() -> None:
    clock = Clock()
    pacer = pacing.WritePacer(pacing.WriteQuota(writes=20, seconds=150.0), clock)
    budget = pacing.Budget(limit=30.0)
    assert await pacer.acquire(20, budget, clock.sleep)
    assert not await pacer.acquire(1, budget, clock.sleep)
    assert clock.slept == [] and budget.waited == 0
    assert pacer.delay(21) == float("inf")  # more than the quota never fits


async def test_no_quota_paces_nothing_and_the_published_one_is_graphs() -> None:
    clock = Clock()
    free = pacing.WritePacer(None, clock)
    assert free.batch_limit is None and free.delay(10_000) == 0.0
    assert await free.acquire(10_000, pacing.Budget(0.0), clock.sleep)
    assert (pacing.GRAPH_WRITE_QUOTA.writes, pacing.GRAPH_WRITE_QUOTA.seconds) == (3000, 150.0)
    with pytest.raises(ValueError):
        pacing.WriteQuota(writes=0)
