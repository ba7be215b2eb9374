"""Directory writes paced under Graph's published write quota.

Graph throttles identity writes per application and tenant at 3,000 requests per 2
minutes and 30 seconds, every POST, PATCH, PUT and DELETE costing one, each `$batch`
item on its own (concepts/throttling-limits.md, "Identity and access service limits";
concepts/json-batching.md). Past it every write answers 429 until the window frees up.
So the writers (`shared.graph.writer`, `shared.graph.creator`) take slots from one
`WritePacer` per Graph client before each `$batch` of writes: under the quota nothing
waits; over it a batch waits until the window has room, and when that wait would pass
the run's write deadline the rest is *deferred* (not sent, not failed: the next run
plans it again). One run thus writes about 3,000 users, plus what the window frees
within the deadline; a larger write-back spreads over runs.

The pacer counts only this process's writes: another app, or another instance of this
one, shares the tenant's quota unseen, and Graph's 429 (retried after `Retry-After`,
then deferred) covers that. Against the loopback simulator the client paces nothing
unless a quota is given (the simulator's own quota is off unless switched on), as its
retry policy is the simulator's short one.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Awaitable, Callable


@dataclasses.dataclass(frozen=True)
class WriteQuota:
    """At most `writes` directory writes in any `seconds`."""

    writes: int = 3000
    seconds: float = 150.0
    margin: float = 0.05
    """Part of `seconds` added to the window: our clock starts a write's count when it is
    sent, Graph's when it arrives, so the window is kept a little longer than Graph's."""

    def __post_init__(self) -> None:
        if self.writes < 1 or self.seconds <= 0 or not 0 <= self.margin < 1:
            raise ValueError("a write quota needs writes >= 1, seconds > 0, 0 <= margin < 1")


GRAPH_WRITE_QUOTA = WriteQuota()
"""Graph's published quota for an application+tenant pair."""


@dataclasses.dataclass
class Budget:
    """Seconds one exchange may still wait (pacing and `Retry-After` together)."""

    limit: float
    waited: float = 0.0

    def allows(self, seconds: float) -> bool:
        return self.waited + seconds <= self.limit


class WritePacer:
    """A sliding window over the writes sent; see the module docstring."""

    def __init__(self, quota: WriteQuota | None = GRAPH_WRITE_QUOTA,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.quota = quota
        """None: nothing is paced."""
        self.clock = clock
        self._sent: deque[tuple[float, int]] = deque()
        self._in_window = 0

    @property
    def batch_limit(self) -> int | None:
        """The most writes one request may carry and still fit the window (None: any)."""
        return None if self.quota is None else self.quota.writes

    def _window(self) -> float:
        assert self.quota is not None
        return self.quota.seconds * (1 + self.quota.margin)

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - self._window():
            self._in_window -= self._sent.popleft()[1]

    def delay(self, writes: int) -> float:
        """Seconds until `writes` more fit in the window (0: now)."""
        if self.quota is None:
            return 0.0
        now = self.clock()
        self._expire(now)
        over = self._in_window + writes - self.quota.writes
        if over <= 0:
            return 0.0
        freed = 0
        for at, count in self._sent:
            freed += count
            if freed >= over:
                return at + self._window() - now
        return float("inf")  # more than the whole quota at once: never fits

    async def acquire(self, writes: int, budget: Budget,
                      sleep: Callable[[float], Awaitable[None]]) -> bool:
        """Wait until `writes` fit and count them as sent now; False (nothing counted)
        when that wait would take `budget` past its limit."""
        if writes <= 0 or self.quota is None:
            return True
        wait = self.delay(writes)
        if not budget.allows(wait):
            return False
        if wait > 0:
            budget.waited += wait
            await sleep(wait)
        self._sent.append((self.clock(), writes))
        self._in_window += writes
        return True
