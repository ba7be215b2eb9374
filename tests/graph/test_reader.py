"""read_entra against the Graph simulator, over real HTTP through msgraph-sdk."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from graph_simulator.delta import GROUP_MEMBERS_PER_PAGE
from shared.graph import client as graph_client
from shared.graph import errors, reader
from tests.graph.conftest import (
    G_EMPLOYEE,
    G_HR,
    G_NESTED,
    TENANT_ID,
    big_tenant,
    clone,
    comparable,
    expected_mirror,
    small_tenant,
    uid,
    user,
)
from tests.support.simulator import RunningSimulator, running_simulator


async def test_full_read_equals_tenant_file(client: graph_client.GraphClient) -> None:
    result = await reader.read_entra(client, None, tenant_id=TENANT_ID)

    assert result.full_read and result.full_read_reason == "initial"
    assert comparable(result.mirror) == expected_mirror(small_tenant())
    links = result.mirror["deltaLinks"]
    assert "$deltatoken=" in links["users"] and "$deltatoken=" in links["groups"]
    # Nested group ids are direct members; the cycle is kept as Graph reports it.
    groups = result.mirror["groups"]
    assert G_NESTED in groups[G_EMPLOYEE]["members"]
    assert G_EMPLOYEE in groups[G_NESTED]["members"]
    assert result.requests == 3 and result.throttled == 0
    assert json.loads(json.dumps(result.mirror)) == result.mirror


async def test_tenant_id_comparison_ignores_case(client: graph_client.GraphClient) -> None:
    result = await reader.read_entra(client, None, tenant_id=TENANT_ID.upper())
    assert result.mirror["organization"]["id"] == TENANT_ID


async def test_paging_across_pages() -> None:
    tenant = big_tenant(2500)
    with running_simulator(tenant) as sim:
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            started = time.perf_counter()
            result = await reader.read_entra(graph, None, tenant_id=TENANT_ID)
            elapsed = time.perf_counter() - started
            counts = sim.requests()["byEndpoint"]
        finally:
            await graph.aclose()
    print(f"full read of 2,500 users: {elapsed:.3f} s")
    assert counts["GET /users/delta"] == 3  # 999 + 999 + 502
    # A group's members over 2,000 come on further pages, the group again on each.
    entries = sum(len(g["members"]) for g in tenant["groups"])
    assert entries > GROUP_MEMBERS_PER_PAGE
    assert counts["GET /groups/delta"] == -(-entries // GROUP_MEMBERS_PER_PAGE)
    assert comparable(result.mirror) == expected_mirror(tenant)
    assert result.requests == 4 + counts["GET /groups/delta"]


async def test_small_pages_for_both_resources(sim: RunningSimulator) -> None:
    graph = graph_client.create_graph_client(sim.url, env={})
    try:
        result = await reader.read_entra(graph, None, tenant_id=TENANT_ID, page_size=2)
    finally:
        await graph.aclose()
    counts = sim.requests()["byEndpoint"]
    assert counts["GET /users/delta"] == 3  # 6 users, 2 a page
    assert counts["GET /groups/delta"] == 2  # 3 groups
    assert comparable(result.mirror) == expected_mirror(small_tenant())


def changed_tenant() -> dict[str, Any]:
    tenant = clone(small_tenant())
    users = {u["id"]: u for u in tenant["users"]}
    users[uid(2)]["accountEnabled"] = False  # disabled
    users[uid(2)]["jobTitle"] = "Lead"
    tenant["users"] = [u for u in tenant["users"] if u["id"] != uid(5)]  # deleted
    tenant["users"].append(user(7))  # added
    groups = {g["id"]: g for g in tenant["groups"]}
    groups[G_EMPLOYEE]["members"] = [uid(2), G_NESTED, uid(7)]  # uid(1) removed, uid(7) added
    groups[G_NESTED]["members"] = [uid(3), uid(6)]  # nested change: cycle broken, uid(6) in
    tenant["groups"] = [g for g in tenant["groups"] if g["id"] != G_HR]  # group deleted
    tenant["groups"].append(
        {"id": "10000000-0000-4000-8000-000000000004", "displayName": "New", "members": [uid(1)]}
    )
    return tenant


async def test_delta_round_applies_changes(
    sim: RunningSimulator, client: graph_client.GraphClient
) -> None:
    first = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    snapshot = copy.deepcopy(first.mirror)
    new_tenant = changed_tenant()
    sim.put_tenant(new_tenant)

    second = await reader.read_entra(client, first.mirror, tenant_id=TENANT_ID)

    assert not second.full_read and second.full_read_reason is None
    assert comparable(second.mirror) == expected_mirror(new_tenant)
    fresh = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    assert comparable(second.mirror) == comparable(fresh.mirror)
    assert first.mirror == snapshot  # the previous mirror is never modified
    assert second.mirror["deltaLinks"] != first.mirror["deltaLinks"]

    # And the next round from there sees nothing new.
    third = await reader.read_entra(client, second.mirror, tenant_id=TENANT_ID)
    assert comparable(third.mirror) == expected_mirror(new_tenant)


async def test_no_change_round_is_one_request_per_resource(
    sim: RunningSimulator, client: graph_client.GraphClient
) -> None:
    first = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    sim.reset_requests()

    second = await reader.read_entra(client, first.mirror, tenant_id=TENANT_ID)

    assert sim.requests()["byEndpoint"] == {
        "GET /organization": 1,
        "GET /users/delta": 1,
        "GET /groups/delta": 1,
    }
    assert second.requests == 3 and not second.full_read
    assert comparable(second.mirror) == comparable(first.mirror)
    # Copy-on-write: nothing changed, nothing copied.
    assert second.mirror["users"] is first.mirror["users"]
    assert second.mirror["groups"] is first.mirror["groups"]


async def test_expired_delta_link_means_full_read(
    sim: RunningSimulator, client: graph_client.GraphClient
) -> None:
    first = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    new_tenant = changed_tenant()
    sim.put_tenant(new_tenant)
    sim.expire_delta_tokens()

    second = await reader.read_entra(client, first.mirror, tenant_id=TENANT_ID)

    assert second.full_read and second.full_read_reason == "delta_expired"
    assert comparable(second.mirror) == expected_mirror(new_tenant)


async def test_delta_link_of_another_simulator_means_full_read(
    client: graph_client.GraphClient,
) -> None:
    with running_simulator(small_tenant()) as other:
        other_graph = graph_client.create_graph_client(other.url, env={})
        try:
            first = await reader.read_entra(other_graph, None, tenant_id=TENANT_ID)
        finally:
            await other_graph.aclose()
    # The stored links name the other simulator's port; they are sent to this one.
    second = await reader.read_entra(client, first.mirror, tenant_id=TENANT_ID)
    assert second.full_read_reason == "delta_expired"
    assert comparable(second.mirror) == expected_mirror(small_tenant())


async def test_changed_tenant_means_full_read(client: graph_client.GraphClient) -> None:
    first = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    previous = {**first.mirror, "tenantId": "00000000-1111-2222-3333-444444444444"}
    second = await reader.read_entra(client, previous, tenant_id=TENANT_ID)
    assert second.full_read_reason == "tenant_changed"
    assert comparable(second.mirror) == expected_mirror(small_tenant())


async def test_throttled_once_then_succeeds(
    sim: RunningSimulator, client: graph_client.GraphClient
) -> None:
    sim.set_faults("/users/delta", 429, times=1, retry_after=1)
    started = time.perf_counter()
    result = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    elapsed = time.perf_counter() - started

    assert result.throttled == 1
    assert result.requests == 4
    assert elapsed >= 1.0  # Retry-After honoured
    assert client.stats.throttled == 1
    assert comparable(result.mirror) == expected_mirror(small_tenant())


async def test_persistent_503_fails_and_leaves_previous_alone(
    sim: RunningSimulator, client: graph_client.GraphClient
) -> None:
    first = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    snapshot = copy.deepcopy(first.mirror)
    sim.put_tenant(changed_tenant())  # users delta would bring changes
    sim.set_faults("/groups/delta", 503, times=-1)

    with pytest.raises(errors.GraphReadError) as caught:
        await reader.read_entra(client, first.mirror, tenant_id=TENANT_ID)

    err = caught.value
    assert not isinstance(err, errors.DeltaExpired)
    assert err.status == 503 and err.code == "serviceNotAvailable"
    assert err.endpoint == "/groups/delta"
    assert "/groups/delta" in str(err) and "serviceNotAvailable" in str(err)
    assert first.mirror == snapshot
    # The SDK's retry handler tried again: 1 + max_retries answers.
    retries = client.retry.max_retries
    assert sim.requests()["byEndpoint"]["GET /groups/delta"] == 2 + retries  # + the full read


async def test_wrong_token_is_a_read_error(sim: RunningSimulator) -> None:
    from shared.graph import credentials

    graph = graph_client.create_graph_client(
        sim.url, env={}, credential=credentials.StaticTokenCredential("not-the-token")
    )
    try:
        with pytest.raises(errors.GraphReadError) as caught:
            await reader.read_entra(graph, None, tenant_id=TENANT_ID)
    finally:
        await graph.aclose()
    assert caught.value.status == 401
    assert caught.value.code == "InvalidAuthenticationToken"
    assert caught.value.endpoint == "/organization"


async def test_tenant_mismatch(client: graph_client.GraphClient) -> None:
    other = "99999999-9999-4999-8999-999999999999"
    with pytest.raises(errors.TenantMismatch) as caught:
        await reader.read_entra(client, None, tenant_id=other)
    assert other in str(caught.value) and TENANT_ID in str(caught.value)


def test_convert_reads_mirror_users_in_the_readers_field_order() -> None:
    from shared.reconcile import convert

    assert convert._USER_FIELDS == reader.USER_FIELDS


async def test_read_entra_is_read_changes_then_fold(
    sim: RunningSimulator, client: graph_client.GraphClient
) -> None:
    first = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    head = {k: v for k, v in first.mirror.items() if k not in ("users", "groups")}
    sim.put_tenant(changed_tenant())
    sim.reset_requests()

    changes = await reader.read_changes(client, head, tenant_id=TENANT_ID)
    assert isinstance(changes, reader.DeltaRound) and not changes.empty
    assert changes.requests == 3
    folded = reader.fold(first.mirror, changes)
    given = await reader.read_entra(client, first.mirror, tenant_id=TENANT_ID, changes=changes)
    # Graph was asked once, by read_changes; the fold and read_entra(changes=) ask nothing.
    assert sim.requests()["byEndpoint"] == {
        "GET /organization": 1, "GET /users/delta": 1, "GET /groups/delta": 1}
    assert comparable(folded.mirror) == comparable(given.mirror)
    assert comparable(given.mirror) == expected_mirror(changed_tenant())
    assert given.requests == 3 and not given.full_read


async def test_read_changes_says_why_only_a_full_read_will_do(
    sim: RunningSimulator, client: graph_client.GraphClient
) -> None:
    first = await reader.read_entra(client, None, tenant_id=TENANT_ID)
    head = {k: v for k, v in first.mirror.items() if k not in ("users", "groups")}
    none = await reader.read_changes(client, None, tenant_id=TENANT_ID)
    assert isinstance(none, reader.FullReadNeeded) and none.reason == "initial"
    assert none.requests == 1  # the organization only
    other = await reader.read_changes(client, {**head, "tenantId": "00000000-0000-0000-0000-0"},
                                      tenant_id=TENANT_ID)
    assert isinstance(other, reader.FullReadNeeded) and other.reason == "tenant_changed"

    sim.expire_delta_tokens()
    sim.reset_requests()
    expired = await reader.read_changes(client, head, tenant_id=TENANT_ID)
    assert isinstance(expired, reader.FullReadNeeded) and expired.reason == "delta_expired"
    result = await reader.read_entra(client, first.mirror, tenant_id=TENANT_ID, changes=expired)
    assert result.full_read and result.full_read_reason == "delta_expired"
    assert comparable(result.mirror) == expected_mirror(small_tenant())
    # The organization is not asked twice; the refused delta requests are counted (but
    # for one cancelled in flight when the other resource's 410 arrived first).
    counts = sim.requests()["byEndpoint"]
    assert counts["GET /organization"] == 1
    assert counts["GET /users/delta"] == counts["GET /groups/delta"] == 2
    assert result.requests in (4, 5)
