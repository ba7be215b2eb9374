"""`shared.graph.writer` against the Graph simulator over real HTTP: `$batch` of 20,
per-item answers, Graph's own refusal of an on-premises user."""

from __future__ import annotations

import time
from typing import Any

from shared.graph import client as graph_client
from shared.graph import middleware, pacing, writer
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


async def test_an_item_throttled_past_the_retry_budget_is_deferred_not_failed(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    sim.set_faults("/users/{id}", 429, method="PATCH", times=-1, retry_after=0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    result = await writer.write_changes(client, [update(1, jobTitle="A")], sleep=sleep)
    assert not result.written and result.batches == client.retry.max_retries + 1
    assert len(slept) == client.retry.max_retries
    assert [c.entra_id for c in result.deferred] == [uid(1)] == [c.entra_id
                                                                  for c in result.failed]
    assert result.errors == ()  # deferred: planned again next run, no error


async def test_a_503_past_the_retry_budget_is_still_a_temporary_failure(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    sim.set_faults("/users/{id}", 503, method="PATCH", times=-1, retry_after=0)

    async def sleep(seconds: float) -> None:
        return None

    result = await writer.write_changes(client, [update(1, jobTitle="A")], sleep=sleep)
    (error,) = result.errors
    assert (error["reason"], error["temporary"]) == ("entra_write_failed", True)
    assert "HTTP 503" in error["message"] and result.deferred == ()


async def test_a_privileged_user_is_protected_not_a_missing_permission(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    sim.set_user_quirks(uid(2), privileged=True)
    delete = model.Change(model.ENTRA_DELETE, "R9", model.ENTRA_DELETE, "u-2", uid(2), {}, {})
    result = await writer.write_changes(client, [update(2, jobTitle="Boss"), delete,
                                                 update(1, jobTitle="Chef")])
    assert [c.entra_id for c in result.written] == [uid(1)]
    assert [c.kind for c in result.protected] == [model.ENTRA_UPDATE, model.ENTRA_DELETE]
    assert result.failed == result.protected
    assert [(e["reason"], e["userId"], e["temporary"]) for e in result.errors] == [
        ("entra_user_protected", "u-2", False)] * 2
    assert "privileged administrator role" in result.errors[0]["message"]
    assert "Authorization_RequestDenied" in result.errors[0]["message"]
    # Alone, Graph's same 403 cannot be told from a missing permission: reported once.
    alone = await writer.write_changes(client, [update(2, jobTitle="Boss")])
    assert [e["reason"] for e in alone.errors] == ["graph_write_forbidden"]
    assert "privileged administrator role" in alone.errors[0]["message"]


def quota_tenant(n: int) -> dict[str, Any]:
    return {"organization": {"id": "t", "onPremisesSyncEnabled": False,
                             "verifiedDomains": [{"name": "contoso.com", "isDefault": True}]},
            "users": [user(i) for i in range(1, n + 1)], "groups": []}


def statuses(sim: RunningSimulator) -> list[int]:
    log = sim.http.get("/_sim/requests?log=1").json()["log"]
    return [entry["status"] for entry in log if entry["method"] == "PATCH"]


async def test_writes_are_paced_under_the_write_quota_so_graph_never_throttles() -> None:
    with running_simulator(quota_tenant(45)) as sim:
        sim.set_quirks(writeQuota={"writes": 20, "seconds": 1})
        quota = pacing.WriteQuota(writes=20, seconds=1.0)
        async with graph_client.create_graph_client(sim.url, env={},
                                                    write_quota=quota) as client:
            started = time.monotonic()
            result = await writer.write_changes(
                client, [update(i, department="D") for i in range(1, 46)])
            took = time.monotonic() - started
        patched = statuses(sim)
    assert len(result.written) == 45 and not result.failed and result.errors == ()
    assert patched == [204] * 45  # no 429: the pacer waited for the window instead
    assert took >= 2.0  # 20 now, 20 after a window, 5 after another


async def test_what_the_quota_cannot_fit_before_the_deadline_is_deferred() -> None:
    with running_simulator(quota_tenant(45)) as sim:
        sim.set_quirks(writeQuota={"writes": 20, "seconds": 60})
        policy = middleware.RetryPolicy(max_retries=3, backoff_factor=0.01,
                                        max_jitter=0.0, max_total_delay=1.0)
        paced = pacing.WriteQuota(writes=20, seconds=60.0)
        async with graph_client.create_graph_client(sim.url, env={}, retry=policy,
                                                    write_quota=paced) as client:
            result = await writer.write_changes(
                client, [update(i, department="D") for i in range(1, 46)])
        assert statuses(sim) == [204] * 20  # the rest was never sent
        assert len(result.written) == 20 and len(result.deferred) == 25
        assert result.errors == () and result.batches == 1
        # Without our pacing (another app used the quota, say) Graph's 429s defer too.
        async with graph_client.create_graph_client(sim.url, env={}, retry=policy) as free:
            late = await writer.write_changes(free, [update(i, department="E")
                                                     for i in range(21, 46)])
    assert late.written == () and len(late.deferred) == 25 and late.errors == ()
