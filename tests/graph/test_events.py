"""R14's event read over real HTTP to the simulator: batches that never hold two items
of one mailbox, per-item throttling, expired links, paging, and failures (R7)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.graph import client as graph_client
from shared.graph import events as graph_events
from shared.graph import failures
from tests.graph.conftest import TENANT_ID, uid, user
from tests.support.simulator import running_simulator

TODAY = dt.datetime.now(dt.UTC).date()
WINDOW = ((TODAY - dt.timedelta(days=1)).isoformat() + "T00:00:00Z",
          (TODAY + dt.timedelta(days=61)).isoformat() + "T00:00:00Z")


def event(n: str, days: int = 0) -> dict[str, Any]:
    day = (TODAY + dt.timedelta(days=days)).isoformat()
    return {"id": f"ev-{n}", "subject": f"Meeting {n}", "showAs": "busy",
            "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day}T10:00:00", "timeZone": "UTC"}}


def calendars(events: int) -> list[dict[str, Any]]:
    return [{"id": f"cal-{c}", "name": f"Calendar {c}", "isDefaultCalendar": c == 0,
             "canEdit": True, "events": [event(f"{c}-{e}", e % 50) for e in range(events)]}
            for c in range(2)]


def tenant(n_users: int, events: int = 3) -> dict[str, Any]:
    return {"organization": {"id": TENANT_ID, "displayName": "Contoso",
                             "onPremisesSyncEnabled": False, "verifiedDomains": []},
            "users": [user(i, calendars=calendars(events)) for i in range(1, n_users + 1)],
            "groups": []}


def wanted(n_users: int, links: dict[tuple[str, str], str] | None = None
           ) -> list[graph_events.Wanted]:
    return [graph_events.Wanted(uid(i), f"cal-{c}", (links or {}).get((uid(i), f"cal-{c}")))
            for i in range(1, n_users + 1) for c in range(2)]


def test_batches_hold_twenty_items_and_one_per_mailbox() -> None:
    batches = graph_events.plan_batches(wanted(30))
    assert [len(b) for b in batches] == [20, 20, 20]
    for chunk in batches:
        assert len({w.entra_id for w in chunk}) == len(chunk)
    assert sorted((w.entra_id, w.calendar_id) for b in batches for w in b) == sorted(
        (w.entra_id, w.calendar_id) for w in wanted(30))
    lonely = graph_events.plan_batches([graph_events.Wanted("u", f"c{n}") for n in range(5)])
    assert [len(b) for b in lonely] == [1] * 5  # one user's calendars: one at a time


async def read(sim: Any, items: list[graph_events.Wanted], **kw: Any
               ) -> graph_events.EventRead:
    graph = graph_client.create_graph_client(sim.url, env={})
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    try:
        found = await graph_events.read_events(graph, items, WINDOW, sleep=sleep, **kw)
    finally:
        await graph.aclose()
    found.slept = slept  # type: ignore[attr-defined]
    return found


async def test_a_first_read_then_a_no_change_read_of_one_page_per_calendar() -> None:
    with running_simulator(tenant(12)) as sim:
        sim.set_latency(20)  # batches in flight overlap: the mailbox limit is exercised
        first = await read(sim, wanted(12))
        assert first.full_reads == 24 and first.throttled == 0
        assert first.requests == first.batches == 2  # 24 calendars, 12 mailboxes a batch
        one = first.calendars[(uid(1), "cal-1")]
        assert one is not None and one.full and one.removed == []
        assert [e["id"] for e in one.events] == ["ev-1-0", "ev-1-1", "ev-1-2"]
        links = {k: v.delta_link for k, v in first.calendars.items() if v is not None}

        sim.reset_requests()
        again = await read(sim, wanted(12, links))
        assert all(c is not None and not c.full and c.events == [] and c.removed == []
                   for c in again.calendars.values())
        assert again.requests == 2
        counts = sim.requests()["byEndpoint"]
        assert counts == {"POST /$batch": 2,
                          "GET /users/{id}/calendars/{cid}/calendarView/delta": 24}, counts


async def test_throttled_items_are_retried_after_their_retry_after_and_410_reads_in_full(
) -> None:
    with running_simulator(tenant(3, events=105)) as sim:  # 105 events: a second page
        first = await read(sim, wanted(3))
        links = {k: v.delta_link for k, v in first.calendars.items() if v is not None}
        assert all(len(c.events) == 105 for c in first.calendars.values() if c)
        assert first.requests == 2 + 6  # 2 batches, then each calendar's second page
        sim.expire_delta_tokens()
        sim.set_faults({"method": "GET",
                        "path": "/users/{id}/calendars/{cid}/calendarView/delta",
                        "status": 429, "times": 2, "retryAfter": 3, "inBatch": True})
        again = await read(sim, wanted(3, links))
        assert again.throttled == 2 and again.slept == [3.0]  # type: ignore[attr-defined]
        assert again.full_reads == 6
        assert all(c is not None and c.full and len(c.events) == 105
                   for c in again.calendars.values())


async def test_a_missing_mailbox_is_not_read_and_a_refused_calendar_fails_alone() -> None:
    doc = tenant(2)
    doc["users"].append(user(3))  # no mailbox in the cloud
    with running_simulator(doc) as sim:
        found = await read(sim, [*wanted(2), graph_events.Wanted(uid(3), "cal-0")])
        assert found.calendars[(uid(3), "cal-0")] is None and not found.failures
        sim.set_faults(f"/users/{uid(1)}/calendars/cal-1/calendarView/delta", 403,
                       times=-1)
        refused = await read(sim, wanted(2))
        assert set(refused.failures) == {(uid(1), "cal-1")}
        failure = refused.failures[(uid(1), "cal-1")]
        assert (failure.reason, failure.status, failure.temporary, failure.calendar_id) == (
            "mailbox_unavailable", 403, False, "cal-1")
        assert failure.endpoint == "/users/{id}/calendars/{id}/calendarView/delta"
        assert set(refused.calendars) == {(uid(1), "cal-0"), (uid(2), "cal-0"),
                                          (uid(2), "cal-1")}
        assert all(c is not None and len(c.events) == 3 for c in refused.calendars.values())
        sim.clear_faults()
        sim.set_faults({"method": "GET",
                        "path": "/users/{id}/calendars/{cid}/calendarView/delta",
                        "status": 429, "times": -1, "inBatch": True})
        throttled = await read(sim, wanted(1))
    assert not throttled.calendars and len(throttled.failures) == 2
    assert all(f.status == 429 and f.temporary for f in throttled.failures.values())
    # One user's two calendars go in two batches, each retried until its retries ran out.
    assert throttled.slept == [1.0] * 2 * graph_events.MAX_ITEM_RETRIES  # type: ignore[attr-defined]


async def test_mailboxes_graph_refuses_are_per_user_failures_the_others_read_in_full(
) -> None:
    with running_simulator(tenant(4)) as sim:
        sim.set_user_quirks(uid(1), mailbox="accessDenied")
        sim.set_user_quirks(uid(2), mailbox="invalidUser")
        sim.set_user_quirks(uid(3), mailbox="unavailable")
        found = await read(sim, wanted(4))
    assert set(found.calendars) == {(uid(4), "cal-0"), (uid(4), "cal-1")}
    by_user = {(key[0], f.code, f.status, f.temporary) for key, f in found.failures.items()}
    assert by_user == {(uid(1), "ErrorAccessDenied", 403, False),
                       (uid(2), "ErrorInvalidUser", 404, True),
                       (uid(3), "serviceNotAvailable", 503, True)}
    assert len(found.failures) == 6
    entry = found.failures[(uid(1), "cal-0")].as_error()
    assert (entry["reason"], entry["entraId"], entry["calendarId"], entry["graphCode"]) == (
        "mailbox_unavailable", uid(1), "cal-0", "ErrorAccessDenied")


async def test_a_calendar_that_pages_forever_is_stopped_the_users_other_calendar_read(
) -> None:
    with running_simulator(tenant(1, events=150)) as sim:
        sim.set_user_quirks(uid(1), loopingCalendars=["cal-1"])
        found = await read(sim, wanted(1))
    loop = found.failures[(uid(1), "cal-1")]
    assert (loop.code, loop.status, loop.temporary) == ("paging_loop", None, True)
    other = found.calendars[(uid(1), "cal-0")]
    assert other is not None and len(other.events) == 150
    # The loop is noticed at the first link seen twice: 1 batch, 2 GETs for the looping
    # calendar's pages, 1 GET for the other calendar's second page.
    assert found.requests == 4


async def test_empty_first_pages_with_a_next_link_are_followed_to_every_event() -> None:
    with running_simulator(tenant(2, events=3)) as sim:
        sim.set_quirks(emptyFirstPages=True)
        first = await read(sim, wanted(2))
        links = {k: v.delta_link for k, v in first.calendars.items() if v is not None}
        again = await read(sim, wanted(2, links))
    assert not first.failures and all(
        c is not None and c.full and len(c.events) == 3 for c in first.calendars.values())
    assert all(c is not None and not c.full and c.events == [] and c.removed == []
               for c in again.calendars.values())


def test_a_page_guard_stops_a_link_seen_twice_and_too_many_pages() -> None:
    guard = failures.PageGuard(max_pages=3)
    guard.follow("a")
    with pytest.raises(failures.PagingStopped) as loop:
        guard.follow("a")
    assert loop.value.code == "paging_loop"
    guard.follow("b")
    guard.follow("c")
    with pytest.raises(failures.PagingStopped) as budget:
        guard.follow("d")
    assert budget.value.code == "page_budget_exceeded"
