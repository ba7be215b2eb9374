"""R14's event read over real HTTP to the simulator: batches that never put more than
Outlook's 4 requests on one mailbox, per-item throttling, expired links, paging, and
failures that are one calendar's alone (R7)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.graph import client as graph_client
from shared.graph import events as graph_events
from shared.graph import mailbox_gate
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
    assert found.throttled == 0 and not found.failed
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


async def test_a_missing_mailbox_is_not_read_and_other_failures_are_the_calendars_own(
) -> None:
    doc = tenant(2)
    doc["users"].append(user(3))  # no mailbox in the cloud
    with running_simulator(doc) as sim:
        found = await read(sim, [*wanted(2), graph_events.Wanted(uid(3), "cal-0")])
        assert found.calendars[(uid(3), "cal-0")] is None
        sim.set_faults({"method": "GET",
                        "path": f"/users/{uid(1)}/calendars/cal-1/calendarView/delta",
                        "status": 403, "times": -1, "inBatch": True})
        denied = await read(sim, wanted(2))
        assert list(denied.failed) == [(uid(1), "cal-1")]
        assert denied.failed[(uid(1), "cal-1")].status == 403
        assert len(denied.calendars) == 3  # the other calendars are read
        sim.clear_faults()
        sim.set_faults({"method": "GET",
                        "path": "/users/{id}/calendars/{cid}/calendarView/delta",
                        "status": 429, "times": -1, "inBatch": True})
        throttled = await read(sim, wanted(1))
        assert {k: f.status for k, f in throttled.failed.items()} == {
            (uid(1), "cal-0"): 429, (uid(1), "cal-1"): 429}
        assert throttled.slept == [1.0] * graph_events.MAX_ITEM_RETRIES  # type: ignore[attr-defined]
