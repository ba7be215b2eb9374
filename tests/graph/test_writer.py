"""`shared.graph.writer` against the Graph simulator over real HTTP: `$batch` of 20,
per-item answers, Graph's own refusal of an on-premises user."""

from __future__ import annotations

from typing import Any

from shared.graph import client as graph_client
from shared.graph import writer
from shared.reconcile import model
from tests.graph.conftest import uid, user
from tests.support.simulator import RunningSimulator, running_simulator


def update(n: int, **after: Any) -> model.Change:
    return model.Change(model.ENTRA_UPDATE, "R9", model.ENTRA_UPDATE, f"u-{n}", uid(n),
                        {}, after)


def entra(sim: RunningSimulator, n: int) -> dict[str, Any]:
    body: dict[str, Any] = sim.graph("GET", f"/users/{uid(n)}?$select=jobTitle").json()
    return body


async def test_a_user_mastered_on_premises_is_refused_by_graph_as_hybrid_user(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    """The planner never plans this (it knows the flag); if a write reaches Graph anyway
    (a user turned hybrid since the read), Graph's refusal is reported as hybrid_user."""
    result = await writer.write_changes(client, [update(3, jobTitle="Chef"),
                                                 update(1, jobTitle="Chef")])
    assert [c.entra_id for c in result.written] == [uid(1)]
    assert [c.entra_id for c in result.failed] == [uid(3)]
    (error,) = result.errors
    assert (error["reason"], error["userId"], error["temporary"]) == ("hybrid_user", "u-3",
                                                                        False)
    assert entra(sim, 1)["jobTitle"] == "Chef" and entra(sim, 3)["jobTitle"] is None


async def test_writes_go_in_batches_of_twenty() -> None:
    tenant = {"organization": {"id": "t", "onPremisesSyncEnabled": False,
                               "verifiedDomains": [{"name": "contoso.com", "isDefault": True}]},
              "users": [user(i) for i in range(1, 46)], "groups": []}
    with running_simulator(tenant) as sim:
        async with graph_client.create_graph_client(sim.url, env={}) as client:
            changes = [update(i, department=f"D{i}") for i in range(1, 46)]
            result = await writer.write_changes(client, changes)
        counts = sim.requests()["byEndpoint"]
    assert result.batches == 3 and len(result.written) == 45 and not result.failed
    assert counts["POST /$batch"] == 3 and counts["PATCH /users/{id}"] == 45


async def test_one_refused_item_does_not_stop_the_others(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    gone = model.Change(model.ENTRA_UPDATE, "R9", model.ENTRA_UPDATE, "u-x",
                        "00000000-0000-4000-8000-999999999999", {}, {"jobTitle": "X"})
    result = await writer.write_changes(client, [gone, update(2, jobTitle="Lead")])
    assert [c.user_id for c in result.written] == ["u-2"]
    (error,) = result.errors
    assert (error["reason"], error["userId"], error["temporary"]) == (
        "entra_write_failed", "u-x", False)
    assert "HTTP 404" in error["message"]


async def test_an_item_throttled_past_the_retry_budget_is_reported_temporary(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    sim.set_faults("/users/{id}", 429, method="PATCH", times=-1, retry_after=0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    result = await writer.write_changes(client, [update(1, jobTitle="A")], sleep=sleep)
    assert not result.written and result.batches == client.retry.max_retries + 1
    assert len(slept) == client.retry.max_retries
    (error,) = result.errors
    assert (error["reason"], error["temporary"]) == ("entra_write_failed", True)
    assert "HTTP 429" in error["message"]
