"""`/_sim/...` control routes: tenant, state, request counts, faults, token expiry, latency,
answers held back after the work is done, and Graph's documented habits switched on
(`/_sim/quirks`, `/_sim/users/{id}/quirks`: `graph_simulator.quirks`).

These drive tests and demos, so they need no token and are not counted as Graph
requests. Their errors use a plain `{"error": {code, message}}` naming the bad
field, not Graph's error shape, to say which control input was wrong. Faults are
all validated before any is armed, so a bad list arms nothing.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from aiohttp import web

from graph_simulator import quirks, subscriptions
from graph_simulator.pipeline import Fault
from graph_simulator.protocol import GRAPH_PREFIX
from graph_simulator.tenant import JSON, TenantFileError, export_tenant
from graph_simulator.transport import SIMULATOR_KEY, read_json


def _error(message: str, code: str = "invalidRequest") -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=400)


async def put_tenant(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body, ok = await read_json(request)
    if not ok:
        return _error("body is not valid JSON")
    old = sim.current
    try:
        snap = sim.replace_tenant(body)
    except TenantFileError as err:
        return _error(str(err), "invalidTenant")
    # Graph's change notifications for what changed, before answering (tests and the
    # latency bench see them delivered when the PUT returns).
    await subscriptions.deliver_changes(sim, old, snap)
    return web.json_response({"version": snap.version, "users": len(snap.users),
                              "groups": len(snap.groups)})


async def get_tenant(request: web.Request) -> web.StreamResponse:
    return web.json_response(export_tenant(request.app[SIMULATOR_KEY].current))


async def get_state(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    snap = sim.current
    return web.json_response({
        "version": snap.version,
        "users": len(snap.users),
        "groups": len(snap.groups),
        "deletedUsers": len(sim.deleted_items),
        "latencyMs": sim.latency_ms,
        "tokenEpoch": sim.token_epoch,
    })


async def get_requests(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body: JSON = {"total": sim.total, "faulted": sim.faulted,
                  "byEndpoint": dict(sorted(sim.counts.items()))}
    if request.query.get("log", "").lower() in ("1", "true"):
        body["log"] = list(sim.log)
    return web.json_response(body)


async def delete_requests(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    sim.counts.clear()
    sim.log.clear()
    sim.total = 0
    sim.faulted = 0
    return web.Response(status=204)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_fault(raw: Any) -> Fault:
    """A fault from its JSON form; ValueError names the bad field."""
    if not isinstance(raw, dict):
        raise ValueError("fault: must be an object")
    method = raw.get("method", "*")
    if not isinstance(method, str) or not method:
        raise ValueError("fault.method: must be an HTTP method or '*'")
    path = raw.get("path")
    if not isinstance(path, str) or not (path.startswith("/") or path == "*"):
        raise ValueError(
            "fault.path: required, a route template or path starting with '/', or '*'"
        )
    # Stored as the pipeline sees paths: without /v1.0 and without a trailing slash.
    path = path.removeprefix(GRAPH_PREFIX) or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    status = raw.get("status")
    if not _is_int(status) or not 400 <= status <= 599:
        raise ValueError("fault.status: required, an HTTP error status (400-599)")
    times = raw.get("times", 1)
    if not _is_int(times) or times == 0 or times < -1:
        raise ValueError("fault.times: a positive count, or -1 for always")
    retry = raw.get("retryAfter")
    if retry is not None and (not _is_int(retry) or retry < 0):
        raise ValueError("fault.retryAfter: a non-negative number of seconds")
    in_batch = raw.get("inBatch", False)
    if not isinstance(in_batch, bool):
        raise ValueError("fault.inBatch: true (only items inside a $batch) or false")
    return Fault(method.upper(), path, status, times, retry, in_batch)


def _faults_response(faults: list[Fault]) -> web.Response:
    return web.json_response({"faults": [
        {"method": f.method, "path": f.path, "status": f.status, "times": f.times,
         "retryAfter": f.retry_after, "inBatch": f.in_batch}
        for f in faults
    ]})


async def post_faults(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body, ok = await read_json(request)
    if not ok:
        return _error("body is not valid JSON")
    items = body if isinstance(body, list) else [body]
    try:
        faults = [parse_fault(item) for item in items]
    except ValueError as err:
        return _error(str(err))
    sim.faults.extend(faults)
    return _faults_response(sim.faults)


async def get_faults(request: web.Request) -> web.StreamResponse:
    return _faults_response(request.app[SIMULATOR_KEY].faults)


async def delete_faults(request: web.Request) -> web.StreamResponse:
    request.app[SIMULATOR_KEY].faults.clear()
    return web.Response(status=204)


async def expire_tokens(request: web.Request) -> web.StreamResponse:
    request.app[SIMULATOR_KEY].expire_delta_tokens()
    return web.Response(status=204)


async def put_latency(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body, ok = await read_json(request)
    value = body.get("ms") if ok and isinstance(body, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        return _error("latency.ms: required, a non-negative number of milliseconds")
    sim.latency_ms = float(value)
    return web.json_response({"ms": sim.latency_ms})


async def put_hold(request: web.Request) -> web.StreamResponse:
    """`{"method", "path": route template, "ms"}`: requests that run this route are done
    at once but answered `ms` later (0 stops holding them)."""
    sim = request.app[SIMULATOR_KEY]
    body, ok = await read_json(request)
    if not ok or not isinstance(body, dict):
        return _error("body: required, a JSON object")
    method, path, ms = body.get("method"), body.get("path"), body.get("ms")
    if not isinstance(method, str) or not method:
        return _error("hold.method: required, an HTTP method")
    if not isinstance(path, str) or not path.startswith("/"):
        return _error("hold.path: required, a route template starting with '/'")
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
        return _error("hold.ms: required, a non-negative number of milliseconds")
    key = (method.upper(), path.removeprefix(GRAPH_PREFIX))
    if ms:
        sim.held_answers[key] = ms / 1000
    else:
        sim.held_answers.pop(key, None)
    return web.json_response({"held": [{"method": m, "path": p, "ms": s * 1000}
                                       for (m, p), s in sorted(sim.held_answers.items())]})


async def post_lifecycle(request: web.Request) -> web.StreamResponse:
    """`{"event": "reauthorizationRequired" | "subscriptionRemoved" | "missed"}` to the
    subscription's lifecycle URL; `subscriptionRemoved` also removes it."""
    sim = request.app[SIMULATOR_KEY]
    body, ok = await read_json(request)
    event = body.get("event") if ok and isinstance(body, dict) else None
    if event not in subscriptions.LIFECYCLE_EVENTS:
        return _error("lifecycle.event: one of " + ", ".join(subscriptions.LIFECYCLE_EVENTS))
    subscription_id = request.match_info["id"]
    if subscription_id not in sim.subscriptions:
        return web.json_response({"error": {"code": "notFound", "message":
                                            f"no subscription {subscription_id}"}}, status=404)
    return web.json_response(
        await subscriptions.deliver_lifecycle(sim, subscription_id, str(event)))


async def get_deliveries(request: web.Request) -> web.StreamResponse:
    return web.json_response({"deliveries": list(request.app[SIMULATOR_KEY].deliveries)})


async def get_quirks(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[SIMULATOR_KEY].quirks.as_json())


async def put_quirks(request: web.Request) -> web.StreamResponse:
    """`{"deltaLagSeconds", "emptyFirstPages", "writeQuota"}`: the fields given change
    (`graph_simulator.quirks`)."""
    sim = request.app[SIMULATOR_KEY]
    body, ok = await read_json(request)
    if not ok:
        return _error("body is not valid JSON")
    try:
        quirks.apply_settings(sim.quirks, body)
    except ValueError as err:
        return _error(str(err))
    return web.json_response(sim.quirks.as_json())


async def delete_quirks(request: web.Request) -> web.StreamResponse:
    """Every behaviour off again, for every user."""
    sim = request.app[SIMULATOR_KEY]
    sim.quirks = quirks.Quirks()
    return web.Response(status=204)


async def put_user_quirks(request: web.Request) -> web.StreamResponse:
    """`{"mailbox", "photo", "privileged", "loopingCalendars"}` for the user the path names
    (an id or a UPN): replaces what that user had."""
    sim = request.app[SIMULATOR_KEY]
    raw_id = request.match_info["id"]
    user_id = sim.current.find_user(raw_id)
    if user_id is None:
        return web.json_response({"error": {"code": "notFound", "message":
                                            f"no user {raw_id} in the tenant"}}, status=404)
    body, ok = await read_json(request)
    if not ok:
        return _error("body is not valid JSON")
    try:
        mine = quirks.parse_user_quirks(body)
    except ValueError as err:
        return _error(str(err))
    sim.quirks.users[user_id] = mine
    return web.json_response({"id": user_id, **mine.as_json()})


def add_control_routes(app: web.Application) -> None:
    app.router.add_put("/_sim/hold", put_hold)
    app.router.add_post("/_sim/subscriptions/{id}/lifecycle", post_lifecycle)
    app.router.add_get("/_sim/deliveries", get_deliveries)
    app.router.add_put("/_sim/tenant", put_tenant)
    app.router.add_get("/_sim/tenant", get_tenant)
    app.router.add_get("/_sim/state", get_state)
    app.router.add_get("/_sim/requests", get_requests)
    app.router.add_delete("/_sim/requests", delete_requests)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_post("/_sim/faults", post_faults)
    app.router.add_delete("/_sim/faults", delete_faults)
    app.router.add_post("/_sim/expire-delta-tokens", expire_tokens)
    app.router.add_put("/_sim/latency", put_latency)
    app.router.add_get("/_sim/quirks", get_quirks)
    app.router.add_put("/_sim/quirks", put_quirks)
    app.router.add_delete("/_sim/quirks", delete_quirks)
    app.router.add_put("/_sim/users/{id}/quirks", put_user_quirks)
