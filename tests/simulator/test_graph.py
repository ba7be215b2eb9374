"""Reads: auth, organization, users, groups, members, $select/$top/paging."""

from __future__ import annotations

from typing import Any

from tests.simulator.conftest import ORG_ID, base_tenant
from tests.support.simulator import RunningSimulator, running_simulator


def collect(sim: RunningSimulator, url: str, headers: dict[str, str] | None = None) -> tuple[
    list[dict[str, Any]], int
]:
    """Follow @odata.nextLink to the end: (all items, number of pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        response = sim.graph("GET", next_url, headers=headers or {})
        assert response.status_code == 200, response.text
        body = response.json()
        assert "@odata.context" in body
        assert isinstance(body["value"], list)
        items.extend(body["value"])
        pages += 1
        next_url = body.get("@odata.nextLink")
    return items, pages


def test_missing_or_wrong_token_is_401(sim: RunningSimulator) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = sim.http.get(f"{sim.url}/users", headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        assert error["message"]


def test_organization(sim: RunningSimulator) -> None:
    body = sim.graph("GET", "/organization").json()
    assert body["@odata.context"].endswith("$metadata#organization")
    [org] = body["value"]
    assert org["id"] == ORG_ID
    assert org["onPremisesSyncEnabled"] is False
    assert org["verifiedDomains"] == [{"name": "contoso.com", "isDefault": True}]


def test_users_default_properties_and_no_file_only_keys(sim: RunningSimulator) -> None:
    body = sim.graph("GET", "/users").json()
    assert [u["id"] for u in body["value"]] == [f"u-{i:04d}" for i in range(1, 6)]
    first = body["value"][0]
    assert first["userPrincipalName"] == "user1@contoso.com"
    assert first["businessPhones"] == []
    for key in ("calendars", "photo", "accountEnabled"):
        assert key not in first
    assert "@odata.nextLink" not in body


def test_select_keeps_id_and_nulls_missing(sim: RunningSimulator) -> None:
    body = sim.graph("GET", "/users?$select=displayName,accountEnabled,employeeId").json()
    assert body["value"][0] == {
        "id": "u-0001", "displayName": "User 1", "accountEnabled": True, "employeeId": None,
    }
    body = sim.graph("GET", "/users?$select=calendars,photo").json()
    assert body["value"][0] == {"id": "u-0001", "calendars": None, "photo": None}


def test_get_user_by_id_or_upn(sim: RunningSimulator) -> None:
    by_id = sim.graph("GET", "/users/u-0002?$select=userPrincipalName").json()
    by_upn = sim.graph("GET", "/users/USER2@contoso.com?$select=userPrincipalName").json()
    assert by_id["id"] == by_upn["id"] == "u-0002"
    assert "$entity" in by_id["@odata.context"]
    missing = sim.graph("GET", "/users/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"


def test_top_paging_collects_everything_once() -> None:
    tenant = base_tenant(n_users=23)
    with running_simulator(tenant) as sim:
        items, pages = collect(sim, f"{sim.url}/users?$top=5&$select=id,mail")
        assert pages == 5
        assert [u["id"] for u in items] == [f"u-{i:04d}" for i in range(1, 24)]
        assert all(set(u) == {"id", "mail"} for u in items)
        first = sim.graph("GET", "/users?$top=5").json()
        assert first["@odata.nextLink"].startswith(f"{sim.url}/users?")
        assert "$skiptoken=" in first["@odata.nextLink"]


def test_top_limits(sim: RunningSimulator) -> None:
    assert sim.graph("GET", "/users?$top=999").status_code == 200
    for bad in ("1000", "0", "x"):
        response = sim.graph("GET", f"/users?$top={bad}")
        assert response.status_code == 400
        assert set(response.json()["error"]) >= {"code", "message"}


def test_bad_skiptoken_is_400(sim: RunningSimulator) -> None:
    assert sim.graph("GET", "/users?$skiptoken=garbage").status_code == 400


def test_groups_and_members(sim: RunningSimulator) -> None:
    groups = sim.graph("GET", "/groups").json()["value"]
    assert [g["id"] for g in groups] == ["g-employee", "g-nested", "g-hr"]
    assert all("members" not in g for g in groups)
    group = sim.graph("GET", "/groups/g-hr").json()
    assert group["displayName"] == "HR"
    members = sim.graph("GET", "/groups/g-employee/members?$select=id").json()["value"]
    assert members == [
        {"@odata.type": "#microsoft.graph.user", "id": "u-0001"},
        {"@odata.type": "#microsoft.graph.user", "id": "u-0002"},
        {"@odata.type": "#microsoft.graph.group", "id": "g-nested"},
    ]
    assert sim.graph("GET", "/groups/nope/members").status_code == 404


def test_transitive_members_with_cycle(sim: RunningSimulator) -> None:
    items, _ = collect(sim, f"{sim.url}/groups/g-employee/transitiveMembers?$select=id&$top=2")
    assert sorted(i["id"] for i in items) == ["g-nested", "u-0001", "u-0002", "u-0003"]
    types = {i["id"]: i["@odata.type"] for i in items}
    assert types["g-nested"] == "#microsoft.graph.group"
    assert types["u-0003"] == "#microsoft.graph.user"


def test_member_of(sim: RunningSimulator) -> None:
    direct = sim.graph("GET", "/users/u-0003/memberOf?$select=id").json()["value"]
    assert [g["id"] for g in direct] == ["g-nested"]
    transitive = sim.graph("GET", "/users/u-0003/transitiveMemberOf?$select=id").json()["value"]
    assert sorted(g["id"] for g in transitive) == ["g-employee", "g-nested"]


def test_filter_eq_and_startswith(sim: RunningSimulator) -> None:
    body = sim.graph("GET", "/users?$filter=userPrincipalName eq 'USER3@contoso.com'").json()
    assert [u["id"] for u in body["value"]] == ["u-0003"]
    body = sim.graph(
        "GET", "/users?$filter=mail eq 'user1@contoso.com' or mail eq 'user2@contoso.com'"
    ).json()
    assert [u["id"] for u in body["value"]] == ["u-0001", "u-0002"]
    body = sim.graph("GET", "/groups?$filter=startswith(displayName,'emp')").json()
    assert [g["id"] for g in body["value"]] == ["g-employee"]


def test_unknown_segment(sim: RunningSimulator) -> None:
    response = sim.graph("GET", "/nothing/here")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
