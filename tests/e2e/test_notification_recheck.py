"""Graph's delta can lag its change notification (concepts/delta-query-overview.md,
"processing delays"; the simulator's `deltaLagSeconds`): a notification whose delta
round shows nothing yet is looked at again a little later, a bounded number of times,
before it is dropped. Real Azurite queue, real functions, the simulator over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shared import config
from shared.notify import renewal
from tests.e2e.test_notifications import (
    Q,
    change_body,
    deliver,
    post_notification,
    remove_from_groups,
    server,  # noqa: F401 - the fixture, used by name
    staffed,
)
from tests.support import run_queue as rq
from tests.support.notify_server import NotifyServer


async def _next_visible(world: Any, within: float) -> dict[str, Any] | None:
    """Wait until a message is visible (a delayed one), then hand it to the function."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        queue = rq.client(world.azurite.connection_string, Q)
        if queue.peek_messages(max_messages=1):
            return await deliver(world)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no notification work became visible within {within} s")


def _looks(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int | None]]:
    return [(r.rechecks, r.lookAgainSeconds)  # type: ignore[attr-defined]
            for r in caplog.records if r.getMessage() == "emply_sync.notification_run_skipped"]


async def test_a_notification_ahead_of_delta_is_looked_at_again_and_the_leaver_goes(
        make_world: Any, server: NotifyServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(config.NOTIFICATION_DEBOUNCE, "0")
    monkeypatch.setenv(config.NOTIFICATION_RECHECK, "1")
    monkeypatch.setenv(config.NOTIFICATION_RECHECKS, "4")
    world = staffed(make_world)
    await renewal.keep()
    world.sim.set_quirks(deltaLagSeconds=2)
    remove_from_groups(world, 0)  # the notification now, the change in delta 2 s later
    assert await deliver(world) is None  # delta shows nothing yet: no run
    assert rq.count(world.azurite.connection_string, Q) == 1  # the same work, delayed
    report = None
    while report is None:
        report = await _next_visible(world, within=10)
    assert report["trigger"] == "notification" and report["counts"] == {"deactivate_user": 1}
    assert world.users()["person0.staff@contoso.com"]["status"] == "deactivated"
    looks = _looks(caplog)
    assert looks[0] == (0, 1) and 1 <= len(looks) <= 2  # 1 s, then 2 s: the lag is 2 s
    assert rq.count(world.azurite.connection_string, Q) == 0


async def test_the_looks_again_are_bounded(
        make_world: Any, server: NotifyServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(config.NOTIFICATION_DEBOUNCE, "0")
    monkeypatch.setenv(config.NOTIFICATION_RECHECK, "1")
    monkeypatch.setenv(config.NOTIFICATION_RECHECKS, "2")
    world = staffed(make_world)
    await renewal.keep()
    # A notification of nothing new (a replay): looked at three times in all, then dropped.
    assert (await post_notification(change_body(world))).status_code == 202
    assert await deliver(world) is None
    for _ in range(2):
        assert await _next_visible(world, within=10) is None
    assert rq.count(world.azurite.connection_string, Q) == 0
    assert _looks(caplog) == [(0, 1), (1, 2), (2, None)]  # 1 s, 2 s, then given up
