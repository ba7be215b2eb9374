"""R14's event read over real HTTP to the simulator: batches that never put more than
Outlook's 4 requests on one mailbox, per-item throttling, expired links, paging, and
failures that are one calendar's alone (R7)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.graph import client as graph_client
from shared.graph import events as graph_events
from shared.graph import failures, mailbox_gate
from tests.graph.conftest import TENANT_ID, FakeTime, uid, user
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


async def read(sim: Any, items: list[graph_events.Wanted]) -> graph_events.EventRead:
    graph = graph_client.create_graph_client(sim.url, env={})
    time = FakeTime()
    gate = mailbox_gate.MailboxGate(sleep=time.sleep, clock=time.clock)
    read.gate = gate  # type: ignore[attr-defined]
    try:
        found = await graph_events.read_events(graph, items, WINDOW, gate=gate)
    finally:
        await graph.aclose()
    found.slept = time.slept  # type: ignore[attr-defined]
    return found


async def test_a_mailbox_never_has_more_than_four_requests_in_flight() -> None:
    doc = tenant(1)
    doc["users"][0]["calendars"] = [
        {"id": f"cal-{c}", "name": f"Calendar {c}", "isDefaultCalendar": c == 0,
         "canEdit": True, "events": [event(f"{c}-0")]} for c in range(10)]
    with running_simulator(doc) as sim:
        sim.set_latency(50)  # batches in flight overlap: Outlook's limit would answer 429
        found = await read(sim, [graph_events.Wanted(uid(1), f"cal-{c}") for c in range(10)])
    assert found.throttled == 0 and not found.failures
    assert sorted(c for _u, c in found.calendars) == sorted(f"cal-{c}" for c in range(10))
    assert found.requests == 3  # 4 + 4 + 2 items: one mailbox's, 4 at a time


async def test_a_first_read_then_a_no_change_read_of_one_page_per_calendar() -> None:
    with running_simulator(tenant(12)) as sim:
        sim.set_latency(20)  # batches in flight overlap: the mailbox limit is exercised
        first = await read(sim, wanted(12))
        assert first.full_reads == 24 and first.throttled == 0
        assert first.requests == 2  # 24 calendars: 10 mailboxes' two, then 2 mailboxes'
        # The batch that is not full waits for the full one: what that brings might fill it.
        assert read.gate.peak_batches == 1  # type: ignore[attr-defined]
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
        assert first.requests == 1 + 6  # one batch (2 items a mailbox), then 6 second pages
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
        assert {k: f.status for k, f in throttled.failures.items()} == {
            (uid(1), "cal-0"): 429, (uid(1), "cal-1"): 429}
        assert all(f.temporary for f in throttled.failures.values())
        # One mailbox's two calendars go in one batch, retried until its retries ran out.
        assert throttled.slept == [1.0] * graph_events.MAX_ITEM_RETRIES  # type: ignore[attr-defined]


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
    # The loop is noticed at the first link seen twice: 1 batch of both calendars, 1 GET
    # of the looping calendar's next page (whose nextLink is itself), 1 GET for the other
    # calendar's second page.
    assert found.requests == 3


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
