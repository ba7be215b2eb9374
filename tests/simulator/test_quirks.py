"""Graph's documented habits in the simulator (`graph_simulator.quirks`), each switched on
through its `/_sim` control route and checked over real HTTP, plain and inside `$batch`."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.simulator.conftest import base_tenant, clone
from tests.simulator.test_calendar_delta import DELTA, WINDOW, event, tenant, whole_round
from tests.simulator.test_subscriptions import receiver, subscribe
from tests.support.simulator import RunningSimulator, running_simulator

pytestmark = pytest.mark.integration

CALENDARS = "/users/u-0001/calendars"


def batch(sim: RunningSimulator, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    items = [{"id": str(n), **r} for n, r in enumerate(requests)]
    answer = sim.graph("POST", "/$batch", json={"requests": items})
    assert answer.status_code == 200, answer.text
    return sorted(answer.json()["responses"], key=lambda r: int(r["id"]))


def code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_mailbox_kept_out_by_an_access_policy_answers_403_error_access_denied(
        sim: RunningSimulator) -> None:
    sim.set_user_quirks("user1@contoso.com", mailbox="accessDenied")
    refused = sim.graph("GET", CALENDARS)
    assert code(refused) == (403, "ErrorAccessDenied")
    assert refused.json()["error"]["message"] == "Access to OData is disabled."
    assert code(sim.graph("GET", f"{DELTA}?{WINDOW}")) == (403, "ErrorAccessDenied")
    # The policy scopes mailbox data only: the photo and the directory still answer.
    assert sim.graph("GET", "/users/u-0001/photo").status_code == 200
    assert sim.graph("GET", "/users/u-0001").status_code == 200
    inside = batch(sim, {"method": "GET", "url": CALENDARS},
                   {"method": "GET", "url": "/users/u-0002/calendars"})
    assert [r["status"] for r in inside] == [403, 200]
    assert inside[0]["body"]["error"]["code"] == "ErrorAccessDenied"


def test_a_mailbox_exchange_does_not_know_answers_404_error_invalid_user(
        sim: RunningSimulator) -> None:
    sim.set_user_quirks("u-0001", mailbox="invalidUser")
    assert code(sim.graph("GET", CALENDARS)) == (404, "ErrorInvalidUser")
    assert code(sim.graph("GET", f"{DELTA}?{WINDOW}")) == (404, "ErrorInvalidUser")
    assert code(sim.graph("POST", "/users/u-0001/calendar/events", json={
        "subject": "x", "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"}})) == (
        404, "ErrorInvalidUser")


def test_an_unavailable_mailbox_answers_503_every_time_also_inside_a_batch(
        sim: RunningSimulator) -> None:
    sim.set_user_quirks("u-0001", mailbox="unavailable")
    for _ in range(3):
        assert code(sim.graph("GET", CALENDARS)) == (503, "serviceNotAvailable")
    assert sim.graph("GET", "/users/u-0001/photo").status_code == 503
    inside = batch(sim, {"method": "GET", "url": CALENDARS},
                   {"method": "GET", "url": "/users/u-0001/photo/$value"},
                   {"method": "GET", "url": "/users/u-0002/calendars"})
    assert [r["status"] for r in inside] == [503, 503, 200]
    sim.set_user_quirks("u-0001")  # an empty body switches the user's behaviours off
    assert sim.graph("GET", CALENDARS).status_code == 200


def test_photo_metadata_of_a_user_without_photo_can_be_200_with_an_empty_media_etag(
        sim: RunningSimulator) -> None:
    assert code(sim.graph("GET", "/users/u-0002/photo")) == (404, "ImageNotFound")
    sim.set_user_quirks("u-0002", photo="emptyEtag")
    meta = sim.graph("GET", "/users/u-0002/photo")
    assert meta.status_code == 200
    body = meta.json()
    assert (body["@odata.mediaEtag"], body["@odata.mediaContentType"], body["id"],
            body["width"], body["height"]) == ("", "image/gif", "1x1", 1, 1)
    assert code(sim.graph("GET", "/users/u-0002/photo/$value")) == (404, "ImageNotFound")
    # A user with a photo is unaffected; its bytes' ETag is not its mediaEtag.
    sim.set_user_quirks("u-0001", photo="emptyEtag")
    real = sim.graph("GET", "/users/u-0001/photo").json()["@odata.mediaEtag"]
    value = sim.graph("GET", "/users/u-0001/photo/$value")
    assert real.startswith('W/"') and value.headers["etag"] not in ("", real)


def test_a_privileged_user_cannot_be_changed_or_deleted_by_the_app(
        sim: RunningSimulator) -> None:
    sim.set_user_quirks("u-0003", privileged=True)
    for method, extra in (("PATCH", {"json": {"jobTitle": "Boss"}}), ("DELETE", {})):
        refused = sim.graph(method, "/users/u-0003", **extra)
        assert code(refused) == (403, "Authorization_RequestDenied")
        assert refused.json()["error"]["message"] == (
            "Insufficient privileges to complete the operation.")
    assert sim.graph("GET", "/users/u-0003").status_code == 200
    inside = batch(sim, {"method": "PATCH", "url": "/users/u-0003", "body": {"jobTitle": "A"},
                         "headers": {"Content-Type": "application/json"}},
                   {"method": "PATCH", "url": "/users/u-0004", "body": {"jobTitle": "B"},
                    "headers": {"Content-Type": "application/json"}})
    assert [r["status"] for r in inside] == [403, 204]


def test_a_looping_calendar_links_every_page_to_the_same_page() -> None:
    with running_simulator(tenant([event(n, f"2026-12-0{n}") for n in range(1, 6)])) as sim:
        sim.set_user_quirks("u-0001", loopingCalendars=["cal-1"])
        prefer = {"Prefer": "odata.maxpagesize=2"}
        first = sim.graph("GET", f"{DELTA}?{WINDOW}", headers=prefer).json()
        link = first["@odata.nextLink"]
        for _ in range(3):
            page = sim.graph("GET", link, headers=prefer).json()
            assert page["@odata.nextLink"] == link and "@odata.deltaLink" not in page
            assert [e["id"] for e in page["value"]] == ["ev-1", "ev-2"]


def test_empty_first_pages_still_lead_to_every_event_and_a_delta_link() -> None:
    with running_simulator(tenant([event(1), event(2), event(3)])) as sim:
        sim.set_quirks(emptyFirstPages=True)
        first = sim.graph("GET", f"{DELTA}?{WINDOW}").json()
        assert first["value"] == [] and "@odata.nextLink" in first
        items, link, pages = whole_round(sim, f"{DELTA}?{WINDOW}", page=2)
        assert [e["id"] for e in items] == ["ev-1", "ev-2", "ev-3"] and pages == 3
        # The next round (nothing changed) is an empty page, then an empty last page.
        again, _, pages = whole_round(sim, link)
        assert again == [] and pages == 2


def test_delta_lags_the_change_notification_by_the_configured_delay(
        sim: RunningSimulator, tenant: dict[str, Any]) -> None:
    first = sim.graph("GET", "/groups/delta").json()
    assert "@odata.deltaLink" in first
    sim.set_quirks(deltaLagSeconds=1.5)
    with receiver() as (url, bodies):
        assert subscribe(sim, url).status_code == 201
        changed = clone(tenant)
        changed["groups"][2]["members"] = []
        sim.put_tenant(changed)
        assert len(bodies) == 1  # the notification went out at once
        lagging = sim.graph("GET", first["@odata.deltaLink"]).json()
        assert lagging["value"] == []
        time.sleep(1.6)
        caught_up = sim.graph("GET", first["@odata.deltaLink"]).json()
    (group,) = caught_up["value"]
    assert group["id"] == "g-hr" and group["members@delta"][0]["@removed"]


def test_directory_writes_are_throttled_at_the_write_quota_each_batch_item_counted(
        sim: RunningSimulator) -> None:
    assert sim.set_quirks(writeQuota="graph")["writeQuota"] == {"writes": 3000,
                                                                "seconds": 150.0}
    sim.set_quirks(writeQuota={"writes": 3, "seconds": 2})
    patch = {"method": "PATCH", "headers": {"Content-Type": "application/json"},
             "body": {"department": "D"}}
    answers = batch(sim, *({**patch, "url": f"/users/u-000{n}"} for n in (1, 2, 3, 4)),
                    {"method": "GET", "url": "/users/u-0005"})
    assert [r["status"] for r in answers] == [204, 204, 204, 429, 200]
    throttled = answers[3]
    assert throttled["body"]["error"]["code"] == "TooManyRequests"
    assert throttled["headers"]["x-ms-throttle-information"] == "WriteLimitExceeded"
    retry_after = int(throttled["headers"]["Retry-After"])
    assert 1 <= retry_after <= 2
    assert sim.graph("PATCH", "/users/u-0005", json={"department": "E"}).status_code == 429
    time.sleep(retry_after)
    assert sim.graph("PATCH", "/users/u-0005", json={"department": "E"}).status_code == 204
    sim.set_quirks(writeQuota=None)
    assert all(sim.graph("PATCH", "/users/u-0005", json={"jobTitle": str(n)}).status_code
               == 204 for n in range(5))


@pytest.mark.parametrize("upn", ["jörg@contoso.com", "a+b@contoso.com", "a b@contoso.com",
                                 "@contoso.com", "x@y@contoso.com", "nodomain@"])
def test_post_users_refuses_a_upn_graph_would_refuse(sim: RunningSimulator, upn: str) -> None:
    body = {"accountEnabled": True, "displayName": "New", "mailNickname": "new",
            "userPrincipalName": upn,
            "passwordProfile": {"password": "Aa1!aaaaaaaa", "forceChangePasswordNextSignIn": True}}
    refused = sim.graph("POST", "/users", json=body)
    assert code(refused) == (400, "Request_BadRequest")
    assert refused.json()["error"]["message"] == "Property userPrincipalName is invalid."
    assert sim.state()["version"] == 1


def test_the_alias_characters_graph_allows_are_accepted(sim: RunningSimulator) -> None:
    body = {"accountEnabled": True, "displayName": "New", "mailNickname": "obrien",
            "userPrincipalName": "O'Brien.x-y_z!#^~9@contoso.com",
            "passwordProfile": {"password": "Aa1!aaaaaaaa", "forceChangePasswordNextSignIn": True}}
    assert sim.graph("POST", "/users", json=body).status_code == 201
    renamed = sim.graph("PATCH", "/users/u-0001", json={"userPrincipalName": "ü@contoso.com"})
    assert code(renamed) == (400, "Request_BadRequest")


def test_calendars_name_their_owner_the_user_or_the_sharer() -> None:
    doc = base_tenant()
    doc["users"][1]["calendars"] = [
        {"id": "own", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
         "events": []},
        {"id": "shared", "name": "User 1's calendar", "isDefaultCalendar": False,
         "canEdit": True, "owner": {"name": "User 1", "address": "User1@contoso.com"},
         "events": []}]
    with running_simulator(doc) as sim:
        listed = sim.graph("GET", "/users/u-0002/calendars").json()["value"]
        assert [c["owner"] for c in listed] == [
            {"name": "User 2", "address": "User2@contoso.com"},
            {"name": "User 1", "address": "User1@contoso.com"}]
        selected = sim.graph("GET", "/users/u-0002/calendars?$select=id,owner").json()
        assert selected["value"][1] == {"id": "shared", "owner": listed[1]["owner"]}
        bad = clone(doc)
        bad["users"][1]["calendars"][1]["owner"] = {"name": "x"}
        response = sim.http.put("/_sim/tenant", json=bad)
        assert response.status_code == 400
        assert "users[1].calendars[1].owner" in response.json()["error"]["message"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/_sim/quirks", {"deltaLagSeconds": -1}, "quirks.deltaLagSeconds"),
    ("/_sim/quirks", {"emptyFirstPages": "yes"}, "quirks.emptyFirstPages"),
    ("/_sim/quirks", {"writeQuota": {"writes": 0, "seconds": 1}}, "quirks.writeQuota.writes"),
    ("/_sim/quirks", {"lag": 1}, "quirks.lag"),
    ("/_sim/users/u-0001/quirks", {"mailbox": "gone"}, "quirks.mailbox"),
    ("/_sim/users/u-0001/quirks", {"privileged": 1}, "quirks.privileged"),
    ("/_sim/users/u-0001/quirks", {"loopingCalendars": "cal-1"}, "quirks.loopingCalendars"),
])
def test_bad_quirk_input_is_refused_naming_the_field_and_changes_nothing(
        sim: RunningSimulator, path: str, body: dict[str, Any], field: str) -> None:
    before = sim.http.get("/_sim/quirks").json()
    response = sim.http.put(path, json={"emptyFirstPages": True, **body}
                            if path == "/_sim/quirks" else body)
    assert response.status_code == 400 and field in response.json()["error"]["message"]
    assert sim.http.get("/_sim/quirks").json() == before
    missing = sim.http.put("/_sim/users/nobody/quirks", json={})
    assert missing.status_code == 404 and "nobody" in missing.text


def test_quirks_are_listed_and_switched_off_together(sim: RunningSimulator) -> None:
    sim.set_quirks(deltaLagSeconds=2, emptyFirstPages=True)
    sim.set_user_quirks("user3@contoso.com", privileged=True, loopingCalendars=["c"])
    listed = sim.http.get("/_sim/quirks").json()
    assert listed == {"deltaLagSeconds": 2.0, "emptyFirstPages": True, "writeQuota": None,
                      "users": {"u-0003": {"mailbox": None, "photo": None, "privileged": True,
                                           "loopingCalendars": ["c"]}}}
    assert sim.http.delete("/_sim/quirks").status_code == 204
    assert sim.http.get("/_sim/quirks").json()["users"] == {}
    assert sim.graph("PATCH", "/users/u-0003", json={"jobTitle": "x"}).status_code == 204
