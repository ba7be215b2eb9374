"""`calendarView/delta` and Outlook's mailbox concurrency limit, over real HTTP."""

from __future__ import annotations

import concurrent.futures
import copy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.simulator.conftest import base_tenant, user
from tests.support.simulator import RunningSimulator, running_simulator

WINDOW = "startDateTime=2026-11-30T00:00:00Z&endDateTime=2027-01-31T00:00:00Z"
DELTA = "/users/u-0001/calendars/cal-1/calendarView/delta"


def event(n: int, day: str = "2026-12-01", **extra: Any) -> dict[str, Any]:
    return {"id": f"ev-{n}", "subject": f"Meeting {n}",
            "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day}T10:00:00", "timeZone": "UTC"},
            "showAs": "busy", "sensitivity": "normal", **extra}


def tenant(events: list[dict[str, Any]]) -> dict[str, Any]:
    doc = base_tenant()
    doc["users"][0]["calendars"] = [{"id": "cal-1", "name": "Calendar",
                                     "isDefaultCalendar": True, "canEdit": True,
                                     "events": events}]
    return doc


def whole_round(sim: RunningSimulator, url: str, page: int = 100
                ) -> tuple[list[dict[str, Any]], str, int]:
    """(items of the round, its deltaLink, pages read)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = sim.graph("GET", url, headers={"Prefer": f"odata.maxpagesize={page}"})
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]
        assert "$skiptoken=" in url


def test_a_round_pages_then_reports_only_changes_deleted_and_cancelled_as_removed() -> None:
    events = [event(1), event(2, sensitivity="private"), event(3), event(4, "2027-03-01")]
    with running_simulator(tenant(events)) as sim:
        items, link, pages = whole_round(sim, f"{DELTA}?{WINDOW}", page=2)
        assert pages == 2 and "$deltatoken=" in link
        assert [e["id"] for e in items] == ["ev-1", "ev-2", "ev-3"]  # ev-4 is after the window
        private = next(e for e in items if e["id"] == "ev-2")
        assert private["sensitivity"] == "private" and private["subject"] == "Meeting 2"

        # Nothing changed: one page, no items, and the same sync state.
        again, same, pages = whole_round(sim, link)
        assert (again, pages, same) == ([], 1, link)

        changed = [event(1, subject="Moved"), event(2, sensitivity="private"),
                   event(3, isCancelled=True), event(5, "2026-12-24")]
        sim.put_tenant(tenant(changed))
        items, _, _ = whole_round(sim, same)
        assert items == [
            {**event(1, subject="Moved")},
            event(5, "2026-12-24"),
            {"id": "ev-3", "@removed": {"reason": "deleted"}},
        ]
        sim.put_tenant(tenant([]))
        items, _, _ = whole_round(sim, same)  # a link may be used again
        assert sorted(e["id"] for e in items) == ["ev-1", "ev-2", "ev-3"]
        assert all(e["@removed"] == {"reason": "deleted"} for e in items)


def test_unknown_mangled_or_expired_tokens_answer_410_and_a_window_is_required() -> None:
    with running_simulator(tenant([event(1)])) as sim:
        _, link, _ = whole_round(sim, f"{DELTA}?{WINDOW}")
        token = parse_qs(urlsplit(link).query)["$deltatoken"][0]
        for bad in (f"{DELTA}?$deltatoken=nonsense", f"{DELTA}?$skiptoken=nonsense",
                    f"/users/u-0002/calendars/cal-1/calendarView/delta?$deltatoken={token}"):
            response = sim.graph("GET", bad)
            assert response.status_code in (404, 410), response.text
        response = sim.graph("GET", f"{DELTA}?$deltatoken=nonsense")
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "SyncStateNotFound"
        assert sim.graph("GET", link).status_code == 200
        sim.expire_delta_tokens()
        assert sim.graph("GET", link).status_code == 410
        missing = sim.graph("GET", DELTA)
        assert missing.status_code == 400
        assert "StartDateTime" in missing.json()["error"]["message"]


def batch(sim: RunningSimulator, urls: list[str]) -> list[dict[str, Any]]:
    response = sim.graph("POST", "/$batch", json={"requests": [
        {"id": str(n), "method": "GET", "url": url} for n, url in enumerate(urls)]})
    assert response.status_code == 200, response.text
    responses: list[dict[str, Any]] = response.json()["responses"]
    return sorted(responses, key=lambda r: int(r["id"]))


def test_more_than_four_requests_for_one_mailbox_in_a_batch_are_throttled() -> None:
    doc = tenant([event(1)])
    doc["users"][1]["calendars"] = copy.deepcopy(doc["users"][0]["calendars"])
    with running_simulator(doc) as sim:
        mine = [f"{DELTA}?{WINDOW}"] * 5 + [
            f"/users/u-0002/calendars/cal-1/calendarView/delta?{WINDOW}"]
        answers = batch(sim, mine)
        assert [r["status"] for r in answers] == [200, 200, 200, 200, 429, 200]
        assert answers[4]["body"]["error"]["code"] == "ApplicationThrottled"
        assert "MailboxConcurrency" in answers[4]["body"]["error"]["message"]
        assert answers[4]["headers"]["Retry-After"] == "1"
        # Directory reads are not mailbox reads: no limit.
        assert {r["status"] for r in batch(sim, ["/users/u-0001"] * 6)} == {200}


def test_concurrent_requests_count_with_each_other_across_connections() -> None:
    with running_simulator(tenant([event(1)])) as sim:
        sim.set_latency(300)
        url = f"{sim.url}{DELTA}?{WINDOW}"

        def one(_: int) -> int:
            with httpx.Client(headers=sim.headers, timeout=10) as http:
                return http.get(url).status_code

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(one, range(6)))
        assert statuses.count(429) >= 1 and statuses.count(200) >= 4, statuses
        sim.set_latency(0)
        assert one(0) == 200  # nothing in flight any more


def test_an_in_batch_fault_throttles_items_not_plain_requests() -> None:
    with running_simulator(tenant([event(1)])) as sim:
        sim.set_faults({"method": "GET", "path": "/users/{id}/calendars/{cid}/calendarView/delta",
                        "status": 429, "times": 1, "retryAfter": 2, "inBatch": True})
        assert sim.graph("GET", f"{DELTA}?{WINDOW}").status_code == 200
        first, second = batch(sim, [f"{DELTA}?{WINDOW}", f"{DELTA}?{WINDOW}"])
        assert (first["status"], first["headers"]["Retry-After"], second["status"]) == (
            429, "2", 200)
        bad = sim.http.post("/_sim/faults", json={"path": "/x", "status": 429, "inBatch": 1})
        assert bad.status_code == 400 and "fault.inBatch" in bad.text


def test_unknown_users_and_calendars() -> None:
    doc = base_tenant()
    doc["users"].append(user(9))  # no mailbox in the cloud
    with running_simulator(doc) as sim:
        response = sim.graph("GET", f"/users/u-0009/calendars/cal-1/calendarView/delta?{WINDOW}")
        assert response.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
        response = sim.graph("GET", f"/users/u-0001/calendars/nope/calendarView/delta?{WINDOW}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "ErrorItemNotFound"
