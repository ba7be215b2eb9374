"""Bad state, unreachable dependencies and odd requests: clear errors, nothing changed."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient

from shared import config
from shared import store as store_mod
from shared.app import boundary
from shared.run import lease, pipeline
from tests.e2e.test_http import function, request
from tests.e2e.test_http import world_with_staff as staff_world


def overwrite_state_blob(conn: str, data: bytes) -> None:
    blobs = BlobServiceClient.from_connection_string(conn)
    for container in blobs.list_containers():
        client = blobs.get_container_client(container.name)
        for blob in client.list_blobs():
            if blob.name.startswith("state"):
                client.upload_blob(blob.name, data, overwrite=True)
                return
    raise AssertionError("no sync state blob")


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(b"[1, 2, 3]"), gzip.compress(b"{truncated")],
    ids=["not gzip", "a list", "bad json"],
)
def test_unreadable_sync_state_means_a_reported_full_reread(make_world: Any, data: bytes) -> None:
    world = staff_world(make_world)
    world.sync()
    overwrite_state_blob(world.azurite.connection_string, data)
    report = world.sync()
    assert report["status"] == "succeeded"
    assert report["entraRead"]["fullRead"] is True
    assert [e["reason"] for e in report["errors"]] == ["sync_state_unreadable"]
    assert report["counts"] == {}  # a full re-read of an unchanged tenant changes nothing
    assert world.sync()["errors"] == []  # the state was rewritten


def test_explain_while_graph_is_down_is_one_clear_line(make_world: Any) -> None:
    world = staff_world(make_world)
    world.sync()
    world.sim.set_faults("/users/delta", 503, times=-1)
    code, out, err = world.cli("explain", "person1.staff@contoso.com")
    assert code == 1 and out == ""
    assert err.startswith("emply-sync: graph_unavailable: Graph request GET /users/delta")
    assert err.count("\n") == 1 and "Traceback" not in err


async def test_http_explain_while_graph_is_down_is_a_503_problem(make_world: Any) -> None:
    world = staff_world(make_world)
    world.sync()
    world.sim.set_faults("/users/delta", 503, times=-1)
    response = await function("explain_user")(
        request("GET", "/x", route_params={"user": "person1.staff@contoso.com"}))
    assert response.status_code == 503
    problem = json.loads(response.get_body())
    assert problem["reason"] == "graph_unavailable" and problem["temporary"] is True
    assert "/users/delta" in problem["detail"]


def test_unreachable_storage_is_one_clear_line(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = staff_world(make_world)
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, world.azurite.connection_string.replace(
        str(world.azurite.table_port), "1").replace(str(world.azurite.blob_port), "1"))
    code, out, err = world.cli("runs")
    assert code == 1 and out == ""
    assert err.startswith("emply-sync: storage_unavailable: Table/Blob Storage could not be "
                          "reached")
    assert err.count("\n") == 1 and "Traceback" not in err


async def test_odd_limits_are_400(make_world: Any) -> None:
    staff_world(make_world)
    for raw in ("²", "0", "201", "-1", "1e3"):
        response = await function("list_runs")(request("GET", "/r", params={"limit": raw}))
        assert response.status_code == 400, raw


def test_negative_approval_is_refused_by_the_cli(make_world: Any) -> None:
    world = staff_world(make_world)
    with pytest.raises(SystemExit) as exit_info:
        world.cli("sync", "--approve-deactivations", "-1")
    assert exit_info.value.code == 2


def test_unused_approval_is_reported(make_world: Any) -> None:
    world = staff_world(make_world)
    report = world.sync("--approve-deactivations", "3")
    assert report["status"] == "succeeded"
    assert [e["reason"] for e in report["errors"]] == ["approval_unused"]


def test_dry_run_during_a_run_is_refused_like_a_real_one(make_world: Any) -> None:
    world = staff_world(make_world)

    async def hold_then_try() -> int:
        async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
            await st.acquire_lease("someone-else", "timer")
        code, _, err = world.cli("sync", "--dry-run")
        assert "someone-else" in err
        return code

    assert asyncio.run(hold_then_try()) == 3


async def test_a_failing_lease_renewal_does_not_fail_the_run(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "LEASE_TTL_SECONDS", 1)
    world = staff_world(make_world, latency_ms=500)
    calls: list[str] = []

    async def flaky(self: store_mod.EmplyStore, run_id: str, *, ttl_seconds: int = 900) -> None:
        calls.append(run_id)
        raise ServiceRequestError("connection reset")

    monkeypatch.setattr(store_mod.EmplyStore, "renew_lease", flaky)
    async with boundary.open_deps() as deps:
        report = await pipeline.run_sync(deps, trigger="cli")
        assert await deps.store.current_lease() is None
    assert calls, "the run should have outlived a heartbeat"
    assert report["status"] == "succeeded" and report["counts"] == {"create_user": 10}
    assert world.users()


def test_a_failed_run_reports_planned_changes_as_not_applied(make_world: Any) -> None:
    world = staff_world(make_world)
    world.sim.set_faults("/groups/delta", 503, times=-1)
    report = world.sync()
    assert report["status"] == "failed"
    assert report["changes"] == [] and report["counts"] == {}
