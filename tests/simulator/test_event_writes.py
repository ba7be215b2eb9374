"""Events as Graph documents them: single-value extended properties set with the event
and read back only with `$expand`, found with `$filter`; PATCH, `cancel` and DELETE;
the messages they send attendees; and `transactionId` remembered for a short window
only (resources/event.md promises no more than avoiding redundant POSTs on retries)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.support.simulator import RunningSimulator

pytestmark = pytest.mark.integration
PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color"
OTHER = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Size"
EVENT = {
    "subject": "Interview",
    "start": {"dateTime": "2026-12-02T10:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2026-12-02T11:00:00", "timeZone": "UTC"},
    "attendees": [{"emailAddress": {"address": "lee.gu@fabrikam.com", "name": "Lee Gu"},
                   "type": "required"}],
}


def expand(*ids: str) -> str:
    return "$expand=" + quote("singleValueExtendedProperties($filter=" + " or ".join(
        f"id eq '{i}'" for i in ids) + ")", safe="()'=$")


def having(test: str) -> str:
    return "$filter=" + quote(f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP}' "
                              f"and {test})", safe="()'")


def create(sim: RunningSimulator, value: str, **extra: Any) -> dict[str, Any]:
    response = sim.graph("POST", "/users/u-0001/calendar/events", json={
        **EVENT, "singleValueExtendedProperties": [{"id": PROP, "value": value}], **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def mail(sim: RunningSimulator) -> list[tuple[str, list[str]]]:
    return [(m["kind"], m["to"]) for m in sim.http.get("/_sim/mail").json()["mail"]]


def test_extended_properties_come_back_only_with_expand(sim: RunningSimulator) -> None:
    made = create(sim, "Green")
    assert "singleValueExtendedProperties" not in made
    plain = sim.graph("GET", f"/users/u-0001/events/{made['id']}").json()
    assert "singleValueExtendedProperties" not in plain
    got = sim.graph("GET", f"/users/u-0001/events/{made['id']}?{expand(PROP, OTHER)}").json()
    assert got["singleValueExtendedProperties"] == [{"id": PROP, "value": "Green"}]
    listed = sim.graph("GET", f"/users/u-0001/events?{expand(PROP)}").json()["value"]
    assert {e["id"]: e["singleValueExtendedProperties"] for e in listed} == {
        "ev-1": [], "ev-2": [], made["id"]: [{"id": PROP, "value": "Green"}]}


@pytest.mark.parametrize(("test", "found"), [
    ("ep/value eq 'GREEN'", True),  # values compare ignoring case
    ("ep/value eq 'Blue'", False),
    ("startswith(ep/value, 'gr')", True),
    ("contains(ep/value, 'ree')", True),
    ("ep/value ne 'Green'", False),
    ("ep/value ne null", True),
])
def test_events_are_found_by_an_extended_property(sim: RunningSimulator, test: str,
                                                  found: bool) -> None:
    made = create(sim, "Green")
    listed = sim.graph("GET", f"/users/u-0001/events?{having(test)}&$select=id")
    assert listed.status_code == 200, listed.text
    assert [e["id"] for e in listed.json()["value"]] == ([made["id"]] if found else [])


def test_unsupported_filters_and_expands_are_refused_not_ignored(sim: RunningSimulator) -> None:
    for query in ("$filter=subject eq 'x'", "$expand=attachments",
                  having("ep/value gt 'a'")):
        assert sim.graph("GET", f"/users/u-0001/events?{query}").status_code == 400
    bad = sim.graph("POST", "/users/u-0001/calendar/events", json={
        **EVENT, "singleValueExtendedProperties": [{"id": "Color", "value": "x"}]})
    assert bad.status_code == 400


def test_a_patch_updates_properties_and_tells_the_attendees(sim: RunningSimulator) -> None:
    made = create(sim, "Green")
    url = f"/users/u-0001/events/{made['id']}"
    moved = {"start": {"dateTime": "2026-12-03T10:00:00", "timeZone": "UTC"},
             "end": {"dateTime": "2026-12-03T11:00:00", "timeZone": "UTC"},
             "singleValueExtendedProperties": [{"id": PROP, "value": "Blue"}]}
    assert sim.graph("PATCH", url, json=moved).status_code == 200
    got = sim.graph("GET", f"{url}?{expand(PROP)}").json()
    assert got["start"]["dateTime"] == "2026-12-03T10:00:00"
    assert got["singleValueExtendedProperties"] == [{"id": PROP, "value": "Blue"}]
    assert sim.graph("PATCH", url, json={"transactionId": "other"}).status_code == 400
    assert mail(sim) == [("invitation", ["lee.gu@fabrikam.com"]),
                         ("update", ["lee.gu@fabrikam.com"])]


def test_cancel_tells_the_attendees_and_the_event_is_gone(sim: RunningSimulator) -> None:
    made = create(sim, "Green")
    url = f"/users/u-0001/events/{made['id']}"
    cancelled = sim.graph("POST", f"{url}/cancel", json={"comment": "Sorry"})
    assert (cancelled.status_code, cancelled.content) == (202, b"")
    assert sim.graph("GET", url).status_code == 404
    assert sim.graph("POST", f"{url}/cancel", json={}).json()["error"]["code"] == \
        "ErrorItemNotFound"
    listed = sim.graph("GET", f"/users/u-0001/events?{having('ep/value ne null')}").json()
    assert listed["value"] == []
    assert mail(sim)[-1] == ("cancellation", ["lee.gu@fabrikam.com"])
    alone = create(sim, "Red", attendees=[])
    assert sim.graph("DELETE", f"/users/u-0001/events/{alone['id']}").status_code == 204
    assert len(mail(sim)) == 2  # no attendees: nobody to tell


def test_a_transaction_id_is_remembered_for_a_short_window_only(sim: RunningSimulator) -> None:
    first = create(sim, "Green", transactionId="txn-1")
    assert first["transactionId"] == "txn-1"  # returned once set
    assert create(sim, "Green", transactionId="txn-1")["id"] == first["id"]  # a retry
    assert sim.http.put("/_sim/transaction-window", json={"seconds": 0}).status_code == 200
    later = create(sim, "Green", transactionId="txn-1")
    assert later["id"] != first["id"]  # after the window: a second event, as on Graph
    assert sim.http.put("/_sim/transaction-window", json={"seconds": -1}).status_code == 400


def test_mail_log_can_be_cleared(sim: RunningSimulator) -> None:
    create(sim, "Green")
    assert sim.http.delete("/_sim/mail").status_code == 204
    assert mail(sim) == []
