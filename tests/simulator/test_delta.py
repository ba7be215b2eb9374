"""/users/delta and /groups/delta: rounds, diffs between versions, 410."""

from __future__ import annotations

from typing import Any

import pytest

from graph_simulator import delta as sim_delta
from tests.simulator.conftest import base_tenant, clone, user
from tests.support.simulator import RunningSimulator, running_simulator

USER_SELECT = "id,displayName,accountEnabled,userPrincipalName"
GROUP_SELECT = "id,displayName,members"


def delta_round(
    sim: RunningSimulator, url: str, headers: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks: (items, deltaLink, number of requests)."""
    items: list[dict[str, Any]] = []
    requests = 0
    next_url = url
    while True:
        response = sim.graph("GET", next_url, headers=headers or {})
        assert response.status_code == 200, response.text
        requests += 1
        body = response.json()
        assert "@odata.context" in body
        items.extend(body["value"])
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            assert "$skiptoken=" in body["@odata.nextLink"]
            next_url = body["@odata.nextLink"]
            continue
        assert "$deltatoken=" in body["@odata.deltaLink"]
        return items, body["@odata.deltaLink"], requests


def test_initial_round_pages_and_prefer_header() -> None:
    with running_simulator(base_tenant(n_users=12)) as sim:
        first = sim.graph(
            "GET", f"/users/delta?$select={USER_SELECT}", headers={"Prefer": "odata.maxpagesize=5"}
        )
        assert first.headers["Preference-Applied"] == "odata.maxpagesize=5"
        assert len(first.json()["value"]) == 5
        items, _, requests = delta_round(
            sim, f"{sim.url}/users/delta?$select={USER_SELECT}", {"Prefer": "odata.maxpagesize=5"}
        )
        assert requests == 3
        assert [u["id"] for u in items] == [f"u-{i:04d}" for i in range(1, 13)]
        assert set(items[0]) == {"id", "displayName", "accountEnabled", "userPrincipalName"}
        # $top works too and the page size sticks to the nextLinks.
        items, _, requests = delta_round(sim, f"{sim.url}/users/delta?$top=4")
        assert (len(items), requests) == (12, 3)


def test_initial_groups_round_lists_all_members(sim: RunningSimulator) -> None:
    items, _, _ = delta_round(sim, f"{sim.url}/groups/delta?$select={GROUP_SELECT}")
    by_id = {g["id"]: g for g in items}
    assert by_id["g-employee"]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": "u-0001"},
        {"@odata.type": "#microsoft.graph.user", "id": "u-0002"},
        {"@odata.type": "#microsoft.graph.group", "id": "g-nested"},
    ]
    assert by_id["g-hr"]["displayName"] == "HR"
    without_members, _, _ = delta_round(sim, f"{sim.url}/groups/delta?$select=displayName")
    assert all("members@delta" not in g for g in without_members)


def test_a_large_groups_members_come_in_parts_of_the_same_group(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As Graph documents: a group whose members do not fit one page comes again on the
    next pages with the next part of its members (its properties repeated), and a page
    holds at most GROUP_MEMBERS_PER_PAGE member entries; the parts add up to them all,
    in the first round and in a later one that removes and adds many."""
    monkeypatch.setattr(sim_delta, "GROUP_MEMBERS_PER_PAGE", 4)
    tenant = base_tenant(n_users=11)
    tenant["groups"].append({"id": "g-big", "displayName": "Big",
                             "members": [f"u-{i:04d}" for i in range(1, 12)]})
    with running_simulator(tenant) as sim:
        url = f"{sim.url}/groups/delta?$select={GROUP_SELECT}"
        pages = []
        next_url = url
        while next_url:
            body = sim.graph("GET", next_url).json()
            pages.append(body["value"])
            next_url = body.get("@odata.nextLink")
        assert all(sum(len(g.get("members@delta", ())) for g in page) <= 4 for page in pages)
        parts = [g for page in pages for g in page if g["id"] == "g-big"]
        assert len(parts) >= 3 and {g["displayName"] for g in parts} == {"Big"}
        entries = sum(len(g.get("members@delta", ())) for page in pages for g in page)
        assert len(pages) == -(-entries // 4)  # full pages: a group is cut where one is
        assert [m["id"] for g in parts for m in g["members@delta"]] == [
            f"u-{i:04d}" for i in range(1, 12)]
        link = body["@odata.deltaLink"]
        changed = clone(tenant)
        changed["groups"][-1]["members"] = [f"u-{i:04d}" for i in range(7, 12)] + ["u-0001"]
        sim.put_tenant(changed)
        items, _, requests = delta_round(sim, link)
        big = [m for g in items if g["id"] == "g-big" for m in g["members@delta"]]
        assert sorted(m["id"] for m in big if "@removed" in m) == [
            f"u-{i:04d}" for i in range(2, 7)]
        assert [m for m in big if "@removed" not in m] == []  # u-0001 stayed
        assert requests == 2


def test_no_change_round_is_one_empty_page(sim: RunningSimulator) -> None:
    _, link, _ = delta_round(sim, f"{sim.url}/users/delta?$select={USER_SELECT}")
    sim.reset_requests()
    items, link2, requests = delta_round(sim, link)
    assert (items, requests) == ([], 1)
    assert sim.requests()["byEndpoint"] == {"GET /users/delta": 1}
    items, _, _ = delta_round(sim, link2)
    assert items == []


def test_changes_show_up_exactly(sim: RunningSimulator, tenant: dict[str, Any]) -> None:
    _, users_link, _ = delta_round(sim, f"{sim.url}/users/delta?$select={USER_SELECT}")
    _, groups_link, _ = delta_round(sim, f"{sim.url}/groups/delta?$select={GROUP_SELECT}")

    changed = clone(tenant)
    users = {u["id"]: u for u in changed["users"]}
    users["u-0003"]["accountEnabled"] = False  # disabled
    changed["users"] = [u for u in changed["users"] if u["id"] != "u-0005"]  # deleted
    changed["users"].append(user(6))  # new user
    groups = {g["id"]: g for g in changed["groups"]}
    groups["g-employee"]["members"] = ["u-0001", "g-nested", "u-0006"]  # u-0002 out, u-0006 in
    groups["g-nested"]["members"].append("u-0004")  # nested membership
    changed["groups"] = [g for g in changed["groups"] if g["id"] != "g-hr"]  # group deleted
    groups["g-nested"]["members"] = [m for m in groups["g-nested"]["members"]]
    sim.put_tenant(changed)

    items, _, _ = delta_round(sim, users_link)
    by_id = {u["id"]: u for u in items}
    assert set(by_id) == {"u-0003", "u-0005", "u-0006"}
    assert by_id["u-0003"]["accountEnabled"] is False
    assert by_id["u-0005"] == {"id": "u-0005", "@removed": {"reason": "changed"}}
    assert by_id["u-0006"]["userPrincipalName"] == "user6@contoso.com"

    items, _, _ = delta_round(sim, groups_link)
    by_id = {g["id"]: g for g in items}
    assert set(by_id) == {"g-employee", "g-nested", "g-hr"}
    assert by_id["g-hr"]["@removed"] == {"reason": "deleted"}
    assert by_id["g-employee"]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": "u-0006"},
        {"@odata.type": "#microsoft.graph.user", "id": "u-0002",
         "@removed": {"reason": "deleted"}},
    ]
    assert by_id["g-nested"]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": "u-0004"}
    ]
    assert by_id["g-nested"]["displayName"] == "Nested"


def test_old_links_diff_against_their_own_version(
    sim: RunningSimulator, tenant: dict[str, Any]
) -> None:
    _, v1_link, _ = delta_round(sim, f"{sim.url}/users/delta?$select={USER_SELECT}")
    second = clone(tenant)
    second["users"][0]["displayName"] = "Renamed"
    sim.put_tenant(second)
    items, v2_link, _ = delta_round(sim, v1_link)
    assert [u["id"] for u in items] == ["u-0001"]
    third = clone(second)
    third["users"][1]["displayName"] = "Also renamed"
    sim.put_tenant(third)
    assert [u["id"] for u in delta_round(sim, v2_link)[0]] == ["u-0002"]
    # The version-1 link is still valid and sees both changes.
    assert sorted(u["id"] for u in delta_round(sim, v1_link)[0]) == ["u-0001", "u-0002"]
    # Changing something back to how it was is no change for that old link.
    sim.put_tenant(clone(tenant))
    assert delta_round(sim, v1_link)[0] == []


def test_delta_link_keeps_select(sim: RunningSimulator, tenant: dict[str, Any]) -> None:
    _, link, _ = delta_round(sim, f"{sim.url}/users/delta?$select=id,accountEnabled")
    changed = clone(tenant)
    changed["users"][0]["accountEnabled"] = False
    sim.put_tenant(changed)
    items, _, _ = delta_round(sim, link)
    assert items == [{"id": "u-0001", "accountEnabled": False}]


def test_bad_and_expired_tokens_are_410(sim: RunningSimulator) -> None:
    _, link, _ = delta_round(sim, f"{sim.url}/users/delta")
    for bad in ("garbage", "eyJ4IjoxfQ", ""):
        response = sim.graph("GET", f"/users/delta?$deltatoken={bad}")
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "syncStateNotFound"
    assert sim.graph("GET", "/users/delta?$skiptoken=garbage").status_code == 410
    # A users token is not a groups token.
    token = link.split("$deltatoken=")[1]
    assert sim.graph("GET", f"/groups/delta?$deltatoken={token}").status_code == 410
    assert sim.graph("GET", link).status_code == 200
    sim.expire_delta_tokens()
    response = sim.graph("GET", link)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "syncStateNotFound"
    # A full re-read works again afterwards.
    _, fresh, _ = delta_round(sim, f"{sim.url}/users/delta")
    assert sim.graph("GET", fresh).status_code == 200


def test_tokens_from_another_server_are_410(tenant: dict[str, Any]) -> None:
    with running_simulator(tenant) as first:
        _, link, _ = delta_round(first, f"{first.url}/users/delta")
    with running_simulator(tenant) as second:
        token = link.split("$deltatoken=")[1]
        assert second.graph("GET", f"/users/delta?$deltatoken={token}").status_code == 410


def test_deleted_user_leaves_groups_and_deleted_items(sim: RunningSimulator) -> None:
    _, users_link, _ = delta_round(sim, f"{sim.url}/users/delta?$select={USER_SELECT}")
    _, groups_link, _ = delta_round(sim, f"{sim.url}/groups/delta?$select={GROUP_SELECT}")
    assert sim.graph("DELETE", "/users/u-0002").status_code == 204
    assert sim.graph("GET", "/users/u-0002").status_code == 404
    deleted = sim.graph("GET", "/directory/deletedItems/u-0002").json()
    assert deleted["@odata.type"] == "#microsoft.graph.user"
    assert deleted["deletedDateTime"]
    listed = sim.graph("GET", "/directory/deletedItems/microsoft.graph.user").json()["value"]
    assert [d["id"] for d in listed] == ["u-0002"]
    users, _, _ = delta_round(sim, users_link)
    assert users == [{"id": "u-0002", "@removed": {"reason": "changed"}}]
    groups, _, _ = delta_round(sim, groups_link)
    assert groups == [{
        "id": "g-employee", "displayName": "Employee",
        "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u-0002",
                           "@removed": {"reason": "deleted"}}],
    }]
    restored = sim.graph("POST", "/directory/deletedItems/u-0002/restore")
    assert restored.status_code == 200
    assert sim.graph("GET", "/users/u-0002").status_code == 200


def test_deltatoken_latest(sim: RunningSimulator, tenant: dict[str, Any]) -> None:
    body = sim.graph("GET", "/users/delta?$deltatoken=latest&$select=id,displayName").json()
    assert body["value"] == []
    changed = clone(tenant)
    changed["users"][4]["displayName"] = "Five"
    sim.put_tenant(changed)
    items, _, _ = delta_round(sim, body["@odata.deltaLink"])
    assert items == [{"id": "u-0005", "displayName": "Five"}]
