"""Contract (b): for every call the product makes, the simulator's answer has the shape
of Microsoft's documented example (`fixtures/`): the same status, and at each place the
product reads, a value where the example has one, of the same JSON type.

The simulator is asked over real HTTP as the product asks Graph (same `$select`, paging
by `Prefer: odata.maxpagesize`, `$batch`); Graph's habits a call depends on are switched
on through `/_sim` (an empty mediaEtag, a mailbox kept out by an access policy, the write
quota)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.graph import reader
from tests.contract.docserver import all_fixtures, fixture
from tests.simulator.test_subscriptions import expiry, receiver
from tests.support.graph_users import graph_user
from tests.support.simulator import RunningSimulator, running_simulator

pytestmark = pytest.mark.integration

WINDOW = "startDateTime=2026-12-01T00:00:00Z&endDateTime=2026-12-30T00:00:00Z"
DELTA = f"/users/u-1/calendars/cal-1/calendarView/delta?{WINDOW}"
LINKS = ["@odata.nextLink", "@odata.deltaLink"]
USER_PATHS = ["value", "value/[]/id", "value/[]/displayName", "value/[]/givenName",
              "value/[]/surname", *LINKS]
GROUP_PATHS = ["value", "value/[]/id", "value/[]/displayName",
               "value/[]/members@delta/[]/id", "value/[]/members@delta/[]/@odata.type",
               "value/[]/members@delta/[]/@removed/reason", *LINKS]
EVENT_PATHS = ["value", "value/[]/id", "value/[]/subject", "value/[]/start/dateTime",
               "value/[]/start/timeZone", "value/[]/end/dateTime", "value/[]/end/timeZone",
               "value/[]/sensitivity", "value/[]/showAs", "value/[]/isCancelled",
               "value/[]/@removed/reason", *LINKS]
ERROR_PATHS = ["error/code", "error/message", "error/innerError"]
SUBSCRIPTION_PATHS = ["id", "resource", "changeType", "clientState", "notificationUrl",
                      "expirationDateTime"]


def event(n: int) -> dict[str, Any]:
    return {"id": f"ev-{n}", "subject": f"Meeting {n}", "showAs": "busy",
            "sensitivity": "normal",
            "start": {"dateTime": f"2026-12-{n + 9:02d}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"2026-12-{n + 9:02d}T10:00:00", "timeZone": "UTC"}}


def tenant() -> dict[str, Any]:
    users = [graph_user(n, f"u-{n}") for n in range(1, 6)]
    users[0]["calendars"] = [{"id": "cal-1", "name": "Calendar", "isDefaultCalendar": True,
                              "canEdit": True, "events": [event(n) for n in range(1, 6)]}]
    users[0]["photo"] = {"contentType": "image/jpeg", "base64": "/9j/4AAQSkZJRg=="}
    users[1]["calendars"] = []
    return {"organization": {"id": "t-1", "displayName": "Contoso",
                             "onPremisesSyncEnabled": False,
                             "verifiedDomains": [{"name": "contoso.com", "isDefault": True}]},
            "users": users,
            "groups": [{"id": "g-1", "displayName": "Employee", "members": ["u-1", "u-2"]},
                       {"id": "g-2", "displayName": "HR", "members": ["u-3"]}]}


# ------------------------------------------------------------ shapes


def values_at(obj: Any, path: str) -> list[Any]:
    """The values at `path` ("a/[]/b": key a, every list item, key b) in `obj`."""
    found = [obj]
    for part in path.split("/"):
        below: list[Any] = []
        for item in found:
            if part == "[]" and isinstance(item, list):
                below.extend(item)
            elif isinstance(item, dict) and part in item:
                below.append(item[part])
        found = below
    return found


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def assert_same_shape(name: str, documented: Any, simulated: Any, paths: list[str]) -> None:
    for path in paths:
        doc_values, sim_values = values_at(documented, path), values_at(simulated, path)
        if doc_values:
            assert sim_values, f"{name}: {path} is in the documented answer, not the simulator's"
        doc_kinds = {kind(v) for v in doc_values} - {"null"}
        sim_kinds = {kind(v) for v in sim_values} - {"null"}
        if doc_kinds and sim_kinds:
            assert sim_kinds <= doc_kinds, f"{name}: {path} is {sim_kinds}, documented {doc_kinds}"


# ------------------------------------------------------------ the simulator's answers

Answer = tuple[int, dict[str, str], Any]


def answer(response: httpx.Response) -> Answer:
    body = response.json() if response.content and response.headers.get(
        "content-type", "").startswith("application/json") else None
    return response.status_code, dict(response.headers), body


def pages(sim: RunningSimulator, url: str, size: int) -> list[dict[str, Any]]:
    """Every page of one delta round, as the product reads it."""
    out: list[dict[str, Any]] = []
    while True:
        body = sim.graph("GET", url, headers={"Prefer": f"odata.maxpagesize={size}"}).json()
        out.append(body)
        if "@odata.deltaLink" in body:
            return out
        url = body["@odata.nextLink"]


def directory_rounds(sim: RunningSimulator, kind_: str, select: str, size: int,
                     change: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """A full round's pages, then the one round after `change` to the tenant."""
    first = pages(sim, f"/{kind_}/delta?$select={select}", size)
    changed = copy.deepcopy(sim.tenant())
    change(changed)
    sim.put_tenant(changed)
    return [*first, *pages(sim, first[-1]["@odata.deltaLink"], 100)]


def event_rounds(sim: RunningSimulator) -> list[dict[str, Any]]:
    first = pages(sim, DELTA, 2)
    changed = sim.tenant()
    calendar = changed["users"][0]["calendars"][0]
    calendar["events"] = [*calendar["events"][1:], event(6)]
    sim.put_tenant(changed)
    return [*first, *pages(sim, first[-1]["@odata.deltaLink"], 100)]


def write_quota_refusal(sim: RunningSimulator) -> Answer:
    sim.set_quirks(writeQuota={"writes": 1, "seconds": 60})
    sim.graph("PATCH", "/users/u-4", json={"jobTitle": "A"})
    refused = answer(sim.graph("PATCH", "/users/u-4", json={"jobTitle": "B"}))
    sim.set_quirks(writeQuota=None)
    return refused


def subscription_answers(sim: RunningSimulator) -> dict[str, Answer]:
    with receiver() as (url, _):
        made = sim.graph("POST", "/subscriptions", json={
            "changeType": "updated,deleted", "resource": "groups", "notificationUrl": url,
            "lifecycleNotificationUrl": url, "clientState": "s",
            "expirationDateTime": expiry(60)})
        sub = made.json()["id"]
        renewed = sim.graph("PATCH", f"/subscriptions/{sub}",
                            json={"expirationDateTime": expiry(120)})
        deleted = sim.graph("DELETE", f"/subscriptions/{sub}")
    return {"subscription-create": answer(made), "subscription-update": answer(renewed),
            "subscription-delete": answer(deleted)}


def batch_answer(sim: RunningSimulator) -> Answer:
    sim.set_user_quirks("u-3", mailbox="accessDenied")
    response = sim.graph("POST", "/$batch", json={"requests": [
        {"id": "1", "method": "GET", "url": "/users?$select=id,displayName,userPrincipalName"},
        {"id": "2", "method": "GET", "url": "/users/u-3/calendars"},
        {"id": "3", "method": "DELETE", "url": "/groups/g-404"}]})
    return answer(response)


def user_writes(sim: RunningSimulator) -> dict[str, Answer]:
    created = sim.graph("POST", "/users", json={
        "accountEnabled": True, "displayName": "Adele Vance", "mailNickname": "AdeleV",
        "userPrincipalName": "AdeleV@contoso.com",
        "passwordProfile": {"forceChangePasswordNextSignIn": True,
                            "password": "xWwvJ]6NMw+bWH-d"}})
    new_id = created.json()["id"]
    looked = sim.graph("GET", "/users?$filter=userPrincipalName eq 'user4@contoso.com' or "
                       "startswith(mailNickname,'user4')"
                       "&$select=id,userPrincipalName,mailNickname&$top=999")
    return {"user-create": answer(created),
            "users-list-filter": answer(looked),
            "group-add-member": answer(sim.graph("POST", "/groups/g-2/members/$ref", json={
                "@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{new_id}"})),
            "user-update": answer(sim.graph("PATCH", "/users/u-4",
                                            json={"jobTitle": "Chef"})),
            "user-delete": answer(sim.graph("DELETE", f"/users/{new_id}"))}


def leaver_and_rename(changed: dict[str, Any]) -> None:
    changed["users"].pop(4)
    changed["users"][3]["displayName"] = "Renamed"


def simulated() -> dict[str, Answer]:
    """The simulator's answer to every call a fixture documents, by fixture name."""
    out: dict[str, Answer] = {}
    with running_simulator(tenant()) as sim:
        out["organization-list"] = answer(sim.graph(
            "GET", "/organization?$select=id,onPremisesSyncEnabled,verifiedDomains"))
        select = ",".join(reader.USER_FIELDS)
        users = directory_rounds(sim, "users", select, 2, leaver_and_rename)
        for n, body in zip(("1-initial", "2-next", "3-final", "4-changes"),
                           (users[0], users[1], users[-2], users[-1]), strict=True):
            out[f"users-delta-{n}"] = (200, {}, body)
        groups = directory_rounds(sim, "groups", "displayName,members", 1,
                                  lambda t: t["groups"][0].update(members=["u-2", "u-3"]))
        for n, body in zip(("1-initial", "2-next", "3-final", "4-changes"),
                           (groups[0], groups[0], groups[-2], groups[-1]), strict=True):
            out[f"groups-delta-{n}"] = (200, {}, body)
        out["calendars-list"] = answer(sim.graph("GET", "/users/u-1/calendars"))
        rounds = event_rounds(sim)
        for n, body in zip(("1-initial", "2-next", "3-final", "4-next-round"),
                           (rounds[0], rounds[1], rounds[-2], rounds[-1]), strict=True):
            out[f"calendarview-delta-{n}"] = (200, {}, body)
        out["event-create"] = answer(sim.graph("POST", "/users/u-1/calendar/events", json={
            "subject": "Interview", "transactionId": "t-1",
            "start": {"dateTime": "2026-12-20T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-20T11:00:00", "timeZone": "UTC"}}))
        out["photo-metadata"] = answer(sim.graph("GET", "/users/u-1/photo"))
        out["photo-value"] = answer(sim.graph("GET", "/users/u-1/photo/$value"))
        sim.set_user_quirks("u-2", photo="emptyEtag")
        out["photo-metadata-none"] = answer(sim.graph("GET", "/users/u-2/photo"))
        out.update(subscription_answers(sim))
        out["batch"] = batch_answer(sim)
        out["error-mailbox-access-denied"] = answer(sim.graph("GET", "/users/u-3/calendars"))
        out.update(user_writes(sim))
        out["error-throttled"] = write_quota_refusal(sim)
        out["error-generic"] = answer(sim.graph("GET", "/users/nobody"))
    return out


PATHS: dict[str, list[str]] = {
    "organization-list": ["value", "value/[]/id", "value/[]/onPremisesSyncEnabled",
                          "value/[]/verifiedDomains/[]/name"],
    # Graph may list recently deleted users in a first round too; the simulator lists
    # only current ones (the reader skips a removed user it never had either way).
    "users-delta-1-initial": USER_PATHS,
    "users-delta-2-next": USER_PATHS, "users-delta-3-final": USER_PATHS,
    "users-delta-4-changes": [*USER_PATHS, "value/[]/@removed/reason"],
    "groups-delta-1-initial": GROUP_PATHS, "groups-delta-2-next": GROUP_PATHS,
    "groups-delta-3-final": GROUP_PATHS, "groups-delta-4-changes": GROUP_PATHS,
    "calendars-list": ["value", "value/[]/id", "value/[]/name", "value/[]/canEdit",
                       "value/[]/isDefaultCalendar", "value/[]/owner/name",
                       "value/[]/owner/address"],
    "calendarview-delta-1-initial": EVENT_PATHS, "calendarview-delta-2-next": EVENT_PATHS,
    "calendarview-delta-3-final": EVENT_PATHS, "calendarview-delta-4-next-round": EVENT_PATHS,
    "event-create": ["id", "subject", "start/dateTime", "start/timeZone", "end/dateTime"],
    "photo-metadata": ["@odata.mediaEtag", "@odata.mediaContentType"],
    "photo-metadata-none": ["@odata.mediaEtag", "@odata.mediaContentType"],
    "photo-value": [],
    "subscription-create": SUBSCRIPTION_PATHS, "subscription-update": SUBSCRIPTION_PATHS,
    "subscription-delete": [],
    "batch": ["responses", "responses/[]/id", "responses/[]/status", "responses/[]/headers",
              "responses/[]/body", "responses/[]/body/value",
              "responses/[]/body/error/code", "responses/[]/body/error/message"],
    "user-create": ["id", "userPrincipalName", "displayName"],
    "user-update": [], "user-delete": [], "group-add-member": [],
    "users-list-filter": ["value", "value/[]/id", "value/[]/userPrincipalName",
                          "value/[]/mailNickname"],
    "error-mailbox-access-denied": ERROR_PATHS, "error-throttled": ERROR_PATHS,
    "error-generic": ERROR_PATHS,
}
STATUS_NOT_COMPARED = {"error-generic"}
"""A body shape only: the page's error example is not one the product's calls meet."""


@pytest.fixture(scope="module")
def answers() -> dict[str, Answer]:
    return simulated()


def test_every_fixture_is_compared() -> None:
    assert set(PATHS) == set(all_fixtures())


@pytest.mark.parametrize("name", sorted(PATHS))
def test_the_simulator_answers_in_the_documented_shape(
        answers: dict[str, Answer], name: str) -> None:
    doc = fixture(name)
    status, headers, body = answers[name]
    if name not in STATUS_NOT_COMPARED:
        assert status == doc["status"], f"{name}: {status}, documented {doc['status']}"
    if doc.get("binary"):
        content_type = {k.lower(): v for k, v in headers.items()}["content-type"]
        assert content_type.startswith("image/") and body is None
    elif doc["body"] is None:
        assert body is None, name
    assert_same_shape(name, doc["body"], body, PATHS[name])
    for header in doc.get("headers") or {}:
        assert header.lower() in {h.lower() for h in headers}, f"{name}: no {header}"
    if name == "photo-metadata-none":
        assert body["@odata.mediaEtag"] == ""
