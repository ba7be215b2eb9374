"""The Functions app: bindings, and the HTTP and timer triggers called as the host calls them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import azure.functions as func
import azure.functions.timer
import pytest

from function_app import app
from sync_timer import SCHEDULE
from tests.e2e import tenants as t
from tests.support import run_queue as rq

# get_functions() indexes the app and refuses to run twice in one process: read it once.
FUNCTIONS = {fn.get_function_name(): fn for fn in app.get_functions()}


def function(name: str) -> Any:
    return FUNCTIONS[name].get_user_function()


def request(method: str, url: str, body: Any = None, *, route_params: dict[str, str] | None = None,
            params: dict[str, str] | None = None) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None
                                                else b"")
    return func.HttpRequest(method=method, url=url, body=raw, route_params=route_params or {},
                            params=params or {})


def test_bindings_show_the_timer_schedule_http_routes_and_queues() -> None:
    bindings = {name: json.loads(fn.get_function_json())["bindings"][0]
                for name, fn in FUNCTIONS.items()}
    # The schedule is the app setting's (infra/ and local.settings.example.json set it).
    assert bindings["scheduled_sync"]["schedule"] == SCHEDULE == "%EMPLY_SYNC_SCHEDULE%"
    routes = {(b["route"], tuple(b["methods"]), b["authLevel"])
              for b in bindings.values() if b["type"] == "httpTrigger"}
    assert routes == {
        ("sync", ("POST",), "FUNCTION"),
        ("sync/runs", ("GET",), "FUNCTION"),
        ("sync/runs/{runId}", ("GET",), "FUNCTION"),
        ("users/{user}/explain", ("GET",), "FUNCTION"),
        ("users/{key}/sync", ("POST",), "FUNCTION"),  # one user now (webhook_http/user_sync.py)
        # Probes carry no key: up or down only (see test_health_says_up_or_down_only).
        ("health", ("GET",), "ANONYMOUS"),
        ("health/details", ("GET",), "FUNCTION"),
        # The Emply side (webhook_http/emply_document.py, settings.py, roles.py, users.py,
        # employees.py).
        ("emply", ("GET",), "FUNCTION"), ("emply", ("PUT",), "FUNCTION"),
        ("settings", ("GET",), "FUNCTION"), ("settings", ("PUT",), "FUNCTION"),
        ("roles", ("GET",), "FUNCTION"), ("roles", ("PUT",), "FUNCTION"),
        ("users", ("GET",), "FUNCTION"),
        ("users/{id}", ("GET",), "FUNCTION"), ("users/{id}", ("PUT",), "FUNCTION"),
        ("users/{id}", ("PATCH",), "FUNCTION"), ("employees", ("GET",), "FUNCTION"),
        ("employees/{id}", ("GET",), "FUNCTION"), ("employees/{id}", ("PUT",), "FUNCTION"),
        ("employees/{id}", ("PATCH",), "FUNCTION"), ("openapi.json", ("GET",), "FUNCTION"),
        # Graph change notifications (webhook_http/notifications.py): a named function key.
        ("graph/notifications", ("POST",), "FUNCTION"),
        # The change feed (webhook_http/changes.py).
        ("changes", ("GET",), "FUNCTION"),
        # R13's calendar choice and R15's outbound events.
        ("users/{id}/calendars/{cid}", ("PUT",), "FUNCTION"),
        ("outbound-events/{id}", ("GET",), "FUNCTION"),
        ("outbound-events/{id}", ("PUT",), "FUNCTION"),
        ("outbound-events/{id}", ("DELETE",), "FUNCTION"),  # webhook_http/outbound_delete.py
    }
    queues = {(b["queueName"], b["connection"])
              for b in bindings.values() if b["type"] == "queueTrigger"}
    assert queues == {("emply-sync-runs", "EMPLY_SYNC_QUEUE"),
                      ("emply-sync-runs-poison", "EMPLY_SYNC_QUEUE"),
                      ("emply-sync-notify", "EMPLY_SYNC_QUEUE"),
                      ("emply-sync-notify-poison", "EMPLY_SYNC_QUEUE"),
                      ("emply-sync-mailboxes", "EMPLY_SYNC_QUEUE"),
                      ("emply-sync-mailboxes-poison", "EMPLY_SYNC_QUEUE")}


async def deliver_next(world: Any) -> dict[str, Any]:
    """What the host does with the next run request: the worker function runs it; the
    run's record as GET /api/sync/runs/{runId} then shows it."""
    delivery = rq.receive(world.azurite.connection_string)
    assert delivery is not None, "no run request was queued"
    await function("run_requested_sync")(delivery.message)
    rq.complete(world.azurite.connection_string, delivery)
    run_id = json.loads(delivery.message.get_body())["runId"]
    return await get_run(run_id)


async def get_run(run_id: str) -> dict[str, Any]:
    response = await function("get_run")(request("GET", "/x", route_params={"runId": run_id}))
    assert response.status_code == 200
    report: dict[str, Any] = json.loads(response.get_body())
    return report


async def sync_over_http(world: Any, body: Any = None) -> dict[str, Any]:
    """POST /api/sync (202), the queue worker runs it, GET the run: its final report."""
    response = await function("manual_sync")(request("POST", "/api/sync", body))
    assert response.status_code == 202, response.get_body()
    report = await deliver_next(world)
    assert report["runId"] == json.loads(response.get_body())["runId"]
    return report


def world_with_staff(make_world: Any, latency_ms: float = 0) -> Any:
    people = t.staff(10)
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []}),
                       latency_ms=latency_ms)
    world.import_state(t.emply_state())
    return world


async def test_two_concurrent_manual_syncs_give_one_202_and_one_409(make_world: Any) -> None:
    world = world_with_staff(make_world)
    sync = function("manual_sync")
    first, second = await asyncio.gather(
        sync(request("POST", "/api/sync", {})), sync(request("POST", "/api/sync", None))
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [202, 409]
    ok, busy = (first, second) if first.status_code == 202 else (second, first)
    queued, conflict = json.loads(ok.get_body()), json.loads(busy.get_body())
    assert conflict["runId"] == queued["runId"]
    assert rq.count(world.azurite.connection_string) == 1
    report = await deliver_next(world)
    assert report["runId"] == queued["runId"]
    assert report["counts"] == {"create_user": 10}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        ({"dryRun": "yes"}, "dryRun"),
        ({"approveDeactivations": True}, "approveDeactivations"),
        ({"approveDeactivations": -1}, "approveDeactivations"),
        ({"approveDeactivations": "12:nothex"}, "approveDeactivations"),
        ({"approveDeactivations": "x" * 3000}, "approveDeactivations"),
        ({"approveDeactivations": 1.5}, "approveDeactivations"),
        ({"approveDeletions": 4}, "approveDeletions"),
        ({"approveDeletions": "4:nothex"}, "approveDeletions"),
        ({"dryrun": True}, "dryrun"),
        (b"{" + b" " * 5000 + b"}", "body"),
    ],
)
async def test_bad_sync_bodies_get_400_naming_the_field_and_change_nothing(
    make_world: Any, body: Any, field: str
) -> None:
    world = world_with_staff(make_world)
    before = world.export()
    response = await function("manual_sync")(request("POST", "/api/sync", body))
    assert response.status_code == 400
    problem = json.loads(response.get_body())
    assert problem["field"] == field
    assert problem["status"] == 400 and problem["detail"]
    assert response.mimetype == "application/problem+json"
    assert world.export() == before
    runs = await function("list_runs")(request("GET", "/api/sync/runs"))
    assert json.loads(runs.get_body())["runs"] == []
    assert rq.count(world.azurite.connection_string) == 0


async def test_runs_run_report_explain_and_health(make_world: Any) -> None:
    world = world_with_staff(make_world)
    report = await sync_over_http(world, {"dryRun": False})
    assert report["trigger"] == "http" and report["status"] == "succeeded"

    runs = json.loads((await function("list_runs")(
        request("GET", "/api/sync/runs", params={"limit": "5"}))).get_body())["runs"]
    assert [r["runId"] for r in runs] == [report["runId"]]
    bad_limit = await function("list_runs")(request("GET", "/api/sync/runs",
                                                    params={"limit": "lots"}))
    assert bad_limit.status_code == 400

    one = await function("get_run")(request("GET", "/x", route_params={"runId": report["runId"]}))
    assert json.loads(one.get_body()) == report
    missing = await function("get_run")(request("GET", "/x", route_params={"runId": "nope"}))
    assert missing.status_code == 404

    explained = await function("explain_user")(
        request("GET", "/x", route_params={"user": "person2.staff@contoso.com"}))
    body = json.loads(explained.get_body())
    assert explained.status_code == 200
    assert body["user"]["status"] == "active"
    assert body["groups"][0]["displayName"] == "Employee"
    assert body["lastChange"]["kind"] == "create_user"
    unknown = await function("explain_user")(request("GET", "/x",
                                                     route_params={"user": "nobody"}))
    assert unknown.status_code == 404

    health = await function("health_details")(request("GET", "/api/health/details"))
    status = json.loads(health.get_body())
    assert health.status_code == 200
    assert status["checks"] == {"storage": {"ok": True}, "graph": {"ok": True}}
    assert status["lastRun"]["runId"] == report["runId"]


async def test_health_says_up_or_down_only(make_world: Any) -> None:
    """The anonymous probe reveals nothing beyond up/down: no reason, no last run."""
    world = world_with_staff(make_world)
    await sync_over_http(world)
    up = await function("health")(request("GET", "/api/health"))
    assert (up.status_code, json.loads(up.get_body())) == (200, {"status": "up"})
    world.sim.set_faults("/organization", 503, times=-1)
    down = await function("health")(request("GET", "/api/health"))
    assert (down.status_code, json.loads(down.get_body())) == (503, {"status": "down"})
    details = await function("health_details")(request("GET", "/api/health/details"))
    assert details.status_code == 503
    assert json.loads(details.get_body())["checks"]["graph"]["ok"] is False


async def test_timer_runs_a_sync_and_logs_past_due(
    make_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world = world_with_staff(make_world)
    timer = azure.functions.timer.TimerRequest(past_due=True)
    with caplog.at_level("INFO", logger="emply_sync"):
        await function("scheduled_sync")(timer)
    messages = [r.getMessage() for r in caplog.records]
    assert "emply_sync.timer_past_due" in messages
    run_record = next(r for r in caplog.records if r.getMessage() == "emply_sync.run")
    assert run_record.trigger == "timer"  # type: ignore[attr-defined]
    assert run_record.status == "succeeded"  # type: ignore[attr-defined]
    assert json.loads(run_record.changes) == {"create_user": 10}  # type: ignore[attr-defined]
    assert len(world.users()) == 10


async def test_a_failed_run_ends_as_a_failed_report(make_world: Any) -> None:
    world = world_with_staff(make_world)
    world.sim.set_faults("/groups/delta", 503, times=-1)
    report = await sync_over_http(world, {})
    assert report["status"] == "failed" and report["errors"][0]["reason"] == "graph_unavailable"
    assert report["errors"][0]["temporary"] is True
    assert world.users() == {}


async def test_http_dry_run_reports_and_changes_nothing(make_world: Any) -> None:
    world = world_with_staff(make_world)
    before = world.export()
    report = await sync_over_http(world, {"dryRun": True})
    assert report["dryRun"] is True and report["counts"] == {"create_user": 10}
    assert world.export() == before


async def test_an_approval_by_count_and_digest_over_http(make_world: Any) -> None:
    """R7 through POST /api/sync: the held set's digest, as the report shows it."""
    people = t.staff(40)
    tenant = t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})
    world = make_world(tenant)
    world.import_state(t.emply_state())
    world.sync()
    tenant["groups"][0]["members"] = tenant["groups"][0]["members"][12:]
    world.sim.put_tenant(tenant)
    held = await sync_over_http(world, {})
    assert held["status"] == "needs_approval" and len(held["held"]) == 12
    approval = {"approveDeactivations": f"12:{held['heldDigest']}"}
    report = await sync_over_http(world, approval)
    assert report["status"] == "succeeded" and report["counts"] == {"deactivate_user": 12}
