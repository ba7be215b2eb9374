"""The asynchronous manual sync: POST /api/sync → the queue (Azurite) → the worker → the run.

The handlers are called as the host calls them; run requests are read from the real
Azurite queue as the host's queue trigger reads them (`tests.support.run_queue`).
Where a failure cannot be provoked from outside (storage refusing only the lease), the
project's own store method is replaced, never the HTTP library.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import HttpResponseError

from shared import config
from shared import store as store_mod
from shared.app import manual_runs, run_queue
from shared.reconcile import planner
from tests.e2e.test_http import deliver_next, function, get_run, request, sync_over_http
from tests.e2e.test_http import world_with_staff as staff_world
from tests.support import run_queue as rq
from webhook_http import caller, sync_models


async def post(body: Any = None, **params: str) -> tuple[int, dict[str, Any], Any]:
    response = await function("manual_sync")(request("POST", "/api/sync", body, params=params))
    return response.status_code, json.loads(response.get_body()), response


async def test_post_answers_202_and_the_worker_runs_it(make_world: Any) -> None:
    world = staff_world(make_world)
    status, body, response = await post({})
    assert status == 202
    run_id = body["runId"]
    assert response.headers["Location"] == f"/api/sync/runs/{run_id}" == body["location"]
    assert int(response.headers["Retry-After"]) > 0
    assert set(body) == set(sync_models.SyncQueued.__annotations__)
    queued = await get_run(run_id)
    assert (queued["status"], queued["trigger"], queued["queuedAt"]) == (
        "queued", "http", body["queuedAt"])
    required = sync_models.SCHEMAS["RunRecord"]["required"]
    assert set(required) <= set(queued)
    assert world.users() == {}  # nothing ran in the request

    report = await deliver_next(world)
    assert report["runId"] == run_id and report["status"] == "succeeded"
    assert report["counts"] == {"create_user": 10} and "progress" not in report
    assert report["queuedAt"] == body["queuedAt"] and set(required) <= set(report)
    assert len(world.users()) == 10
    assert rq.count(world.azurite.connection_string) == 0
    # One record, listed once, under the request's id (the queued row became the run's).
    runs = json.loads((await function("list_runs")(request("GET", "/r"))).get_body())["runs"]
    assert [(r["runId"], r["status"]) for r in runs] == [(run_id, "succeeded")]
    # The way is free again.
    again, _, _ = await post({"dryRun": True})
    assert again == 202


async def test_409_while_queued_then_free_once_final(make_world: Any) -> None:
    world = staff_world(make_world, latency_ms=50)
    _, first, _ = await post({})
    status, conflict, response = await post({"dryRun": True})
    assert status == 409 and conflict["runId"] == first["runId"]
    assert response.mimetype == "application/problem+json"
    assert rq.count(world.azurite.connection_string) == 1  # the refused one queued nothing

    delivery = rq.receive(world.azurite.connection_string)
    assert delivery is not None
    worker = asyncio.ensure_future(function("run_requested_sync")(delivery.message))
    while True:
        # Each POST is refused, naming the run, until the run is final: the way is
        # freed only after its final record is written.
        status, during, _ = await post({"dryRun": True})
        if status == 202:
            assert (await get_run(first["runId"]))["status"] == "succeeded"
            break
        assert status == 409 and during["runId"] == first["runId"]
        await asyncio.sleep(0.05)
    await worker
    rq.complete(world.azurite.connection_string, delivery)
    assert len(world.users()) == 10


async def test_while_running_the_record_shows_progress_and_post_is_409(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looked at from inside the run, just before it plans (the planner is wrapped: the
    one point a test can hold a run still): `running`, the read phase's counts, 409."""
    world = staff_world(make_world)
    _, first, _ = await post({})
    seen: list[tuple[dict[str, Any], int, dict[str, Any]]] = []

    async def look() -> None:
        record = await get_run(first["runId"])
        status, body, _ = await post({"dryRun": True})
        seen.append((record, status, body))

    original = planner.plan

    def plan(*args: Any, **kwargs: Any) -> Any:
        # The run's event loop is busy calling this: look from another thread and loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, look()).result()
        return original(*args, **kwargs)

    monkeypatch.setattr(planner, "plan", plan)
    report = await deliver_next(world)
    assert report["status"] == "succeeded" and "progress" not in report
    [(record, status, body)] = seen
    assert record["status"] == "running"
    assert record["progress"] == {"phase": "read", "entraUsers": 10, "entraGroups": 2,
                                  "emplyUsers": 0, "fullRead": True, "calendarUsers": 0}
    assert status == 409 and body["runId"] == first["runId"]


async def test_wait_answers_200_with_the_report_when_the_run_finishes_in_time(
    make_world: Any
) -> None:
    world = staff_world(make_world)

    async def host() -> None:
        # The host picks the request up while the client waits.
        while rq.count(world.azurite.connection_string) == 0:
            await asyncio.sleep(0.05)
        await deliver_next(world)

    worker = asyncio.ensure_future(host())
    status, report, _ = await post({}, wait="15")
    await worker
    assert status == 200
    assert report["status"] == "succeeded" and report["counts"] == {"create_user": 10}


async def test_wait_gives_the_202_when_the_run_is_not_done_in_time(make_world: Any) -> None:
    staff_world(make_world)
    started = time.monotonic()
    status, body, response = await post({}, wait="1")
    assert status == 202 and response.headers["Location"].endswith(body["runId"])
    assert time.monotonic() - started >= 1  # it did wait


@pytest.mark.parametrize("wait", ["21", "-1", "1.5", "soon", "٣"])
async def test_a_bad_wait_is_a_400_and_queues_nothing(make_world: Any, wait: str) -> None:
    world = staff_world(make_world)
    status, problem, _ = await post({}, wait=wait)
    assert status == 400 and problem["field"] == "wait"
    assert wait not in problem["detail"]  # not echoed
    assert rq.count(world.azurite.connection_string) == 0
    assert json.loads(world.ok("runs", "--json")) == []


async def test_approval_as_a_number_and_as_n_digest_reach_the_worker(make_world: Any) -> None:
    world = staff_world(make_world)
    await sync_over_http(world)
    _, queued, _ = await post({"approveDeactivations": 3})
    delivery = rq.receive(world.azurite.connection_string)
    assert delivery is not None
    assert json.loads(delivery.message.get_body())["approveDeactivations"] == "3"
    await function("run_requested_sync")(delivery.message)
    rq.complete(world.azurite.connection_string, delivery)
    report = await get_run(queued["runId"])
    # Nothing was held, so the approval is reported unused (as the CLI does).
    assert [e["reason"] for e in report["errors"]] == ["approval_unused"]


async def test_a_run_waits_for_a_lease_held_by_another_run(make_world: Any) -> None:
    """The timer (or the CLI) holds the lease: the request goes back on the queue, invisible
    for a while, and its record stays queued; POST meanwhile is a 409 naming the timer's run."""
    world = staff_world(make_world)
    _, queued, _ = await post({})
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
        await st.acquire_lease("20261201T000000Z-timer001", "timer", ttl_seconds=600)
    delivery = rq.receive(world.azurite.connection_string)
    assert delivery is not None
    await function("run_requested_sync")(delivery.message)
    rq.complete(world.azurite.connection_string, delivery)
    assert (await get_run(queued["runId"]))["status"] == "queued"
    assert rq.count(world.azurite.connection_string) == 1  # again, delayed
    assert rq.receive(world.azurite.connection_string) is None  # … and invisible for now
    status, conflict, _ = await post({})
    assert status == 409 and conflict["runId"] == "20261201T000000Z-timer001"
    assert world.users() == {}


async def test_a_request_that_keeps_failing_ends_as_a_failed_run(make_world: Any) -> None:
    """Storage refuses the lease on every delivery: the host delivers it again (the worker
    raises) until the last delivery, which records the run failed with the reason."""
    world = staff_world(make_world)
    _, queued, _ = await post({})

    async def refuse(self: Any, run_id: str, trigger: str, **_: Any) -> None:
        error = HttpResponseError(message="The server is busy")
        error.status_code, error.error_code = 503, "ServerBusy"
        raise error

    conn = world.azurite.connection_string
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_mod.EmplyStore, "acquire_lease", refuse)
        for attempt in range(1, manual_runs.MAX_DEQUEUE_COUNT + 1):
            delivery = rq.receive(conn)
            assert delivery is not None and delivery.message.dequeue_count == attempt
            if attempt < manual_runs.MAX_DEQUEUE_COUNT:
                with pytest.raises(Exception, match="delivers it again"):
                    await function("run_requested_sync")(delivery.message)
                rq.release(conn, delivery)
            else:
                await function("run_requested_sync")(delivery.message)
                rq.complete(conn, delivery)
    report = await get_run(queued["runId"])
    assert report["status"] == "failed"
    last = report["errors"][-1]
    assert last["reason"] == "run_request_failed" and last["temporary"] is False
    assert "after 5 attempts" in last["message"]
    assert last["cause"] == report["errors"][0]["reason"]
    status, _, _ = await post({})  # not stuck: the next request is taken
    assert status == 202


async def test_the_poison_queue_trigger_records_the_run_failed(make_world: Any) -> None:
    """What the host moved to <queue>-poison (the worker killed on its last delivery)."""
    world = staff_world(make_world)
    _, queued, _ = await post({})
    conn = world.azurite.connection_string
    delivery = rq.receive(conn)
    assert delivery is not None
    rq.complete(conn, delivery)  # the host takes it off the queue …
    rq.put(conn, delivery.message.get_body(), run_queue.POISON_QUEUE_NAME)  # … onto poison
    poisoned = rq.receive(conn, run_queue.POISON_QUEUE_NAME)
    assert poisoned is not None
    await function("run_request_poisoned")(poisoned.message)
    report = await get_run(queued["runId"])
    assert report["status"] == "failed" and report["finishedAt"]
    assert report["errors"][-1]["reason"] == "run_request_failed"
    assert report["errors"][-1]["cause"] == "poison"
    assert world.users() == {}
    status, _, _ = await post({})
    assert status == 202


async def test_a_repeated_delivery_of_a_finished_run_does_nothing(make_world: Any) -> None:
    world = staff_world(make_world)
    _, queued, _ = await post({})
    conn = world.azurite.connection_string
    delivery = rq.receive(conn)
    assert delivery is not None
    await function("run_requested_sync")(delivery.message)
    first = await get_run(queued["runId"])
    await function("run_requested_sync")(delivery.message)  # at-least-once delivery
    assert await get_run(queued["runId"]) == first


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"runId": 5, "queuedAt": "x"}',
                                  b'{"runId": "r", "queuedAt": "x", "busyWaits": -1}'])
async def test_a_malformed_run_request_is_logged_and_dropped(
    make_world: Any, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    world = staff_world(make_world)
    rq.put(world.azurite.connection_string, body, run_queue.QUEUE_NAME)
    delivery = rq.receive(world.azurite.connection_string)
    assert delivery is not None
    with caplog.at_level("ERROR", logger="emply_sync"):
        await function("run_requested_sync")(delivery.message)
    invalid = [r for r in caplog.records if r.getMessage() == "emply_sync.run_request_invalid"]
    assert len(invalid) == 1
    assert body.decode() not in invalid[0].reason  # type: ignore[attr-defined]
    assert json.loads(world.ok("runs", "--json")) == []


def test_the_worker_knows_the_hosts_last_delivery() -> None:
    """The worker records a run failed on host.json's last delivery: the two agree."""
    host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == manual_runs.MAX_DEQUEUE_COUNT
    # base64 is what the run queue writes (tests.support.run_queue decodes it as the host).
    assert queues["messageEncoding"] == "base64"


def principal(*roles: str) -> str:
    """The X-MS-CLIENT-PRINCIPAL header App Service authentication passes on."""
    claims = [{"typ": "aud", "val": "api://emply-sync"},
              *({"typ": "roles", "val": r} for r in roles)]
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()


@pytest.mark.parametrize(("header", "allowed"), [
    (None, False), (principal(), False), (principal("Other.Role"), False),
    ("not base64!", False), (principal("Other.Role", "EmplySync.Call"), True)])
async def test_with_entra_auth_on_the_app_role_is_required(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, header: str | None, allowed: bool
) -> None:
    world = staff_world(make_world)
    monkeypatch.setenv(config.REQUIRED_ROLE, "EmplySync.Call")
    headers = {} if header is None else {caller.PRINCIPAL_HEADER: header}
    req = func.HttpRequest(method="POST", url="/api/sync", body=b"{}", headers=headers)
    response = await function("manual_sync")(req)
    if allowed:
        assert response.status_code == 202
        assert rq.count(world.azurite.connection_string) == 1
    else:
        assert response.status_code == 403
        assert "EmplySync.Call" in json.loads(response.get_body())["detail"]
        assert rq.count(world.azurite.connection_string) == 0
        assert json.loads(world.ok("runs", "--json")) == []
    # The probe stays open (App Service authentication excludes /api/health too).
    probe = await function("health")(request("GET", "/api/health"))
    assert probe.status_code == 200


@pytest.mark.parametrize("run_id", ["../runreports/x", "x' or PartitionKey ne '",
                                    "20261202T013000Z-1a2b3c4d\r\nX: y", "%2e%2e%2f",
                                    "a" * 5000, "", "20261202T013000Z-1A2B3C4D"])
async def test_odd_run_ids_are_a_404_naming_the_field_without_echo(
    make_world: Any, run_id: str
) -> None:
    staff_world(make_world)
    response = await function("get_run")(request("GET", "/x", route_params={"runId": run_id}))
    assert response.status_code == 404
    problem = json.loads(response.get_body())
    assert problem["field"] == "runId"
    assert run_id not in response.get_body().decode() or run_id == ""


async def test_a_well_formed_unknown_run_id_is_a_404(make_world: Any) -> None:
    staff_world(make_world)
    response = await function("get_run")(
        request("GET", "/x", route_params={"runId": "20261202T013000Z-1a2b3c4d"}))
    assert response.status_code == 404 and json.loads(response.get_body())["field"] == "runId"


async def test_a_request_whose_message_was_lost_does_not_block_the_next(
    make_world: Any
) -> None:
    """Its record stays `queued` and nothing will run it: long after any wait for the
    lease could end, the next request records it failed and takes its place."""
    world = staff_world(make_world)
    _, lost, _ = await post({})
    conn = world.azurite.connection_string
    delivery = rq.receive(conn)
    assert delivery is not None
    rq.complete(conn, delivery)  # the message is gone, the run never ran
    status, _, _ = await post({})
    assert status == 409  # within the bound it may still be waiting for the lease
    async with store_mod.open_store(connection_string=conn) as st:
        marker = dict(await st.lease.get_entity("manualrun", "current"))
        marker["queuedAt"] = "2026-01-01T00:00:00.000Z"
        await st.lease.upsert_entity(marker)
    status, body, _ = await post({})
    assert status == 202 and body["runId"] != lost["runId"]
    record = await get_run(lost["runId"])
    assert record["status"] == "failed"
    assert (record["errors"][-1]["reason"], record["errors"][-1]["cause"]) == (
        "run_request_failed", "lost")
