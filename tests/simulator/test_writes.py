"""Calendars, events, photos, user writes, membership $ref and $batch."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.simulator.conftest import clone
from tests.support.simulator import RunningSimulator, running_simulator

WINDOW = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z"
EVENT = {
    "subject": "Interview",
    "start": {"dateTime": "2026-12-02T10:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2026-12-02T11:00:00", "timeZone": "UTC"},
}


def test_calendars(sim: RunningSimulator) -> None:
    body = sim.graph("GET", "/users/u-0001/calendars").json()
    assert [c["id"] for c in body["value"]] == ["cal-1", "cal-2"]
    assert "events" not in body["value"][0]
    assert body["value"][1]["canEdit"] is False
    assert sim.graph("GET", "/users/u-0001/calendar").json()["id"] == "cal-1"
    assert sim.graph("GET", "/users/u-0002/calendars").json()["value"] == []
    no_mailbox = sim.graph("GET", "/users/u-0003/calendars")
    assert no_mailbox.status_code == 404
    assert no_mailbox.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    assert sim.graph("GET", "/users/u-0001/calendars/nope/calendarView?" + WINDOW
                     ).status_code == 404


def test_calendar_view_window_and_paging(sim: RunningSimulator) -> None:
    view = sim.graph("GET", f"/users/u-0001/calendars/cal-1/calendarView?{WINDOW}").json()
    assert [e["id"] for e in view["value"]] == ["ev-1"]
    wide = "startDateTime=2026-01-01T00:00:00Z&endDateTime=2028-01-01T00:00:00Z"
    first = sim.graph("GET", f"/users/u-0001/calendar/calendarView?{wide}&$top=1").json()
    assert [e["id"] for e in first["value"]] == ["ev-1"]
    second = sim.graph("GET", first["@odata.nextLink"]).json()
    assert [e["id"] for e in second["value"]] == ["ev-2"]
    assert "@odata.nextLink" not in second
    missing = sim.graph("GET", "/users/u-0001/calendar/calendarView")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "ErrorInvalidParameter"


def test_post_event_honours_transaction_id(sim: RunningSimulator) -> None:
    event = {**EVENT, "transactionId": "txn-1"}
    first = sim.graph("POST", "/users/u-0001/calendar/events", json=event)
    again = sim.graph("POST", "/users/u-0001/calendar/events", json=event)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = sim.graph("POST", "/users/u-0001/calendar/events", json=EVENT)
    assert other.json()["id"] != first.json()["id"]
    view = sim.graph("GET", f"/users/u-0001/calendar/calendarView?{WINDOW}").json()["value"]
    assert sorted(e["subject"] for e in view) == ["1:1", "Interview", "Interview"]
    assert sim.graph("GET", f"/users/u-0001/events/{first.json()['id']}").status_code == 200
    assert sim.graph("DELETE", f"/users/u-0001/events/{first.json()['id']}").status_code == 204
    bad = sim.graph("POST", "/users/u-0001/calendar/events", json={"subject": "x"})
    assert bad.status_code == 400


def test_photo(sim: RunningSimulator) -> None:
    response = sim.graph("GET", "/users/u-0001/photo/$value")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/jpeg")
    assert response.content == base64.b64decode("/9j/4AAQSkZJRg==")
    meta = sim.graph("GET", "/users/u-0001/photo").json()
    assert meta["@odata.mediaContentType"] == "image/jpeg"
    none = sim.graph("GET", "/users/u-0002/photo/$value")
    assert none.status_code == 404
    assert none.json()["error"]["code"] == "ImageNotFound"


def test_patch_user_and_hybrid_refusal(sim: RunningSimulator, tenant: dict[str, Any]) -> None:
    _, link = _delta_link(sim)
    assert sim.graph("PATCH", "/users/u-0001", json={"jobTitle": "Chef"}).status_code == 204
    assert sim.graph("GET", "/users/u-0001?$select=jobTitle").json()["jobTitle"] == "Chef"
    changed = sim.graph("GET", link).json()["value"]
    assert [u["id"] for u in changed] == ["u-0001"]
    hybrid = clone(tenant)
    hybrid["users"][1]["onPremisesSyncEnabled"] = True
    sim.put_tenant(hybrid)
    refused = sim.graph("PATCH", "/users/u-0002", json={"jobTitle": "Chef"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "Request_BadRequest"
    assert "on-premises" in refused.json()["error"]["message"]
    assert sim.graph("DELETE", "/users/u-0002").status_code == 400
    assert sim.graph("PATCH", "/users/u-0001", json={"id": "x"}).status_code == 400
    assert sim.graph("PATCH", "/users/u-0001", json={"userPrincipalName": "user3@contoso.com"}
                     ).status_code == 400


def _delta_link(sim: RunningSimulator) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    url = f"{sim.url}/users/delta?$select=id,jobTitle,accountEnabled"
    while True:
        body = sim.graph("GET", url).json()
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_create_user_and_add_to_group(sim: RunningSimulator) -> None:
    _, link = _delta_link(sim)
    new = {
        "accountEnabled": True,
        "displayName": "Ray Ross",
        "mailNickname": "ray.ross",
        "userPrincipalName": "ray.ross@contoso.com",
        "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": "x!Y2z-Long-Enough"},
    }
    created = sim.graph("POST", "/users", json=new)
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    assert "passwordProfile" not in created.json()
    assert sim.graph("POST", "/users", json=new).status_code == 400  # duplicate UPN
    foreign = {**new, "userPrincipalName": "ray@fabrikam.com"}
    assert sim.graph("POST", "/users", json=foreign).status_code == 400
    missing = {k: v for k, v in new.items() if k != "mailNickname"}
    assert sim.graph("POST", "/users", json=missing).status_code == 400
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{uid}"}
    assert sim.graph("POST", "/groups/g-hr/members/$ref", json=ref).status_code == 204
    assert sim.graph("POST", "/groups/g-hr/members/$ref", json=ref).status_code == 400
    members = sim.graph("GET", "/groups/g-hr/members?$select=id").json()["value"]
    assert [m["id"] for m in members] == ["u-0004", uid]
    changed = sim.graph("GET", link).json()["value"]
    assert changed == [{"id": uid, "jobTitle": None, "accountEnabled": True}]
    assert sim.graph("DELETE", f"/groups/g-hr/members/{uid}/$ref").status_code == 204
    assert sim.graph("DELETE", f"/groups/g-hr/members/{uid}/$ref").status_code == 404


NEW_USER = {
    "accountEnabled": True,
    "displayName": "Megan Jordan",
    "mailNickname": "megan.jordan",
    "userPrincipalName": "megan.jordan@contoso.com",
    "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": "Qw7!rtyuiop-asdf"},
}


@pytest.mark.parametrize(("change", "message"), [
    ({"mailNickname": None}, "Invalid value specified for property 'mailNickname'"),
    ({"displayName": ""}, "Invalid value specified for property 'displayName'"),
    ({"accountEnabled": None}, "Invalid value specified for property 'accountEnabled'"),
    ({"passwordProfile": None}, "Invalid value specified for property 'passwordProfile'"),
    ({"passwordProfile": {"password": "short1A!"[:6]}}, "password complexity"),
    ({"passwordProfile": {"password": "alllowercaseletters"}}, "password complexity"),
    ({"passwordProfile": {"password": "lower-and-symbols-only"}}, "password complexity"),
])
def test_create_user_requires_what_graph_requires(
    sim: RunningSimulator, change: dict[str, Any], message: str
) -> None:
    answer = sim.graph("POST", "/users", json={**NEW_USER, **change})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "Request_BadRequest"
    assert message in answer.json()["error"]["message"]
    assert sim.simulator.received_passwords == []


def test_create_user_refuses_a_taken_upn_or_mail_nickname_like_graph(
    sim: RunningSimulator,
) -> None:
    assert sim.graph("POST", "/users", json=NEW_USER).status_code == 201
    upn = sim.graph("POST", "/users", json={**NEW_USER, "mailNickname": "other"})
    assert upn.status_code == 400
    assert upn.json()["error"]["code"] == "Request_BadRequest"
    assert "same value for property userPrincipalName" in upn.json()["error"]["message"]
    nick = sim.graph("POST", "/users", json={
        **NEW_USER, "userPrincipalName": "MJ@contoso.com", "mailNickname": "Megan.Jordan"})
    assert (nick.status_code, nick.json()["error"]["code"]) == (400, "Request_BadRequest")
    assert (nick.json()["error"]["message"]
            == "Another object with the same value for property mailNickname already exists.")
    found = sim.graph("GET", "/users?$filter=userPrincipalName eq 'MEGAN.jordan@contoso.com'"
                      "&$select=id,userPrincipalName,mailNickname").json()["value"]
    assert [u["mailNickname"] for u in found] == ["megan.jordan"]
    assert sim.simulator.received_passwords == ["Qw7!rtyuiop-asdf"]


def test_batch(sim: RunningSimulator) -> None:
    body = {"requests": [
        {"id": "1", "method": "GET", "url": "/users/u-0001?$select=displayName"},
        {"id": "2", "method": "GET", "url": "groups/g-hr/members?$select=id"},
        {"id": "3", "method": "GET", "url": "/users/nobody"},
        {"id": "4", "method": "PATCH", "url": "/users/u-0002", "body": {"jobTitle": "X"},
         "headers": {"Content-Type": "application/json"}},
        {"id": "5", "method": "GET", "url": "/users/u-0001/photo/$value"},
    ]}
    sim.set_faults("/users/{id}/photo/$value", 429, retry_after=2)
    response = sim.graph("POST", "/$batch", json=body)
    assert response.status_code == 200
    by_id = {r["id"]: r for r in response.json()["responses"]}
    assert by_id["1"]["status"] == 200
    assert by_id["1"]["body"]["displayName"] == "User 1"
    assert by_id["2"]["body"]["value"] == [{"@odata.type": "#microsoft.graph.user",
                                            "id": "u-0004"}]
    assert by_id["3"]["status"] == 404
    assert by_id["4"]["status"] == 204
    assert by_id["5"]["status"] == 429
    assert by_id["5"]["headers"]["Retry-After"] == "2"
    counts = sim.requests()["byEndpoint"]
    assert counts["POST /$batch"] == 1
    assert counts["GET /users/{id}"] == 2
    too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"}
                             for i in range(21)]}
    response = sim.graph("POST", "/$batch", json=too_many)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    unauthenticated = sim.http.post("/v1.0/$batch", json=body)
    assert unauthenticated.status_code == 401


def test_patch_event(sim: RunningSimulator) -> None:
    patched = sim.graph("PATCH", "/users/u-0001/events/ev-1", json={"subject": "Moved"})
    assert patched.status_code == 200
    assert patched.json()["subject"] == "Moved"
    assert sim.graph("GET", "/users/u-0001/events/ev-1").json()["subject"] == "Moved"
    backwards = {"end": {"dateTime": "2026-11-01T00:00:00", "timeZone": "UTC"}}
    assert sim.graph("PATCH", "/users/u-0001/events/ev-1", json=backwards).status_code == 400
    assert sim.graph("PATCH", "/users/u-0001/events/nope", json={}).status_code == 404


def test_events_in_other_time_zones_are_served_in_utc(tenant: dict[str, Any]) -> None:
    tenant["users"][0]["calendars"][0]["events"].append({
        "id": "ev-cph",
        "subject": "Copenhagen",
        "start": {"dateTime": "2026-12-01T23:30:00", "timeZone": "Europe/Copenhagen"},
        "end": {"dateTime": "2026-12-02T00:30:00", "timeZone": "Romance Standard Time"},
    })
    window = "startDateTime=2026-12-01T22:00:00Z&endDateTime=2026-12-01T23:00:00Z"
    with running_simulator(tenant) as sim:
        view = sim.graph("GET", f"/users/u-0001/calendar/calendarView?{window}").json()
    [event] = view["value"]
    assert event["start"] == {"dateTime": "2026-12-01T22:30:00", "timeZone": "UTC"}
    assert event["end"] == {"dateTime": "2026-12-01T23:30:00", "timeZone": "UTC"}
