"""HTTP trigger: the manual sync Emply calls, run history, explain, health (function key)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from shared import service
from shared import store as store_mod
from shared.graph.errors import GraphError
from shared.reconcile import explain as explain_mod

MAX_BODY_BYTES = 4096
SYNC_FIELDS: Mapping[str, type] = {"dryRun": bool, "approveDeactivations": int}
log = logging.getLogger("emply_sync.http")
bp = func.Blueprint()


class BadRequest(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


def respond(status: int, body: Any) -> func.HttpResponse:
    mimetype = "application/problem+json" if status >= 400 else "application/json"
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype=mimetype)


def problem(status: int, title: str, detail: str, **extra: Any) -> func.HttpResponse:
    return respond(status, {"type": "about:blank", "title": title, "status": status,
                            "detail": detail, **extra})


def parse_sync_body(raw: bytes) -> dict[str, Any]:
    """`{"dryRun": bool, "approveDeactivations": n}`, both optional; anything else is refused."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("body", f"body is {len(raw)} bytes; at most {MAX_BODY_BYTES} allowed")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("body", f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body", "body must be a JSON object")
    for key, value in body.items():
        expected = SYNC_FIELDS.get(key)
        if expected is None:
            raise BadRequest(key, f"unknown field {key!r}; allowed: {', '.join(SYNC_FIELDS)}")
        # bool is an int in Python: refuse true as a count and 1 as a flag.
        if type(value) is not expected:
            raise BadRequest(key, f"{key} must be a {expected.__name__}, got {value!r}")
    approve = body.get("approveDeactivations")
    if approve is not None and approve < 0:
        raise BadRequest("approveDeactivations", "approveDeactivations must be ≥ 0")
    return body


Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def unavailable_as_problem(handler: Handler) -> Handler:
    """Storage or Graph out of reach → 503 with a problem body instead of a bare host 500."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await handler(req)
        except (GraphError, store_mod.StoreError, AzureError, OSError) as exc:
            log.exception("emply_sync.http_dependency_failed")
            return problem(503, "A dependency is unavailable", f"{type(exc).__name__}: {exc}")

    return wrapper


@bp.route(route="sync", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@unavailable_as_problem
async def manual_sync(req: func.HttpRequest) -> func.HttpResponse:
    try:
        body = parse_sync_body(req.get_body() or b"")
    except BadRequest as exc:
        return problem(400, "Bad request", str(exc), field=exc.field)
    try:
        async with service.open_deps() as deps:
            report = await service.run_sync(
                deps,
                trigger="http",
                dry_run=bool(body.get("dryRun", False)),
                approve_deactivations=body.get("approveDeactivations"),
            )
    except store_mod.RunInProgress as exc:
        return problem(409, "A sync is already running", str(exc),
                       runId=exc.running_run_id, trigger=exc.trigger, startedAt=exc.started_at)
    # 200 whatever the outcome: the report says succeeded, needs_approval or failed (as
    # the HTTP contract in the README says); a dependency that fails outside a run is a 503 problem.
    return respond(200, report)


@bp.route(route="sync/runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@unavailable_as_problem
async def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    raw = req.params.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 200:
        return problem(400, "Bad request", "limit must be a whole number from 1 to 200",
                       field="limit")
    async with service.open_deps() as deps:
        return respond(200, {"runs": await deps.store.list_runs(int(raw))})


@bp.route(route="sync/runs/{runId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@unavailable_as_problem
async def get_run(req: func.HttpRequest) -> func.HttpResponse:
    run_id = req.route_params.get("runId", "")
    async with service.open_deps() as deps:
        report = await deps.store.get_run(run_id)
    if report is None:
        return problem(404, "Not found", f"no run {run_id!r}", field="runId")
    return respond(200, report)


@bp.route(route="users/{user}/explain", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@unavailable_as_problem
async def explain_user(req: func.HttpRequest) -> func.HttpResponse:
    key = req.route_params.get("user", "")
    try:
        async with service.open_deps() as deps:
            return respond(200, await service.explain_user(deps, key))
    except explain_mod.NotFound as exc:
        return problem(404, "Not found", str(exc), field="user")
    except explain_mod.AmbiguousUser as exc:
        return problem(400, "Bad request", str(exc), field="user")
    except service.NotConfigured as exc:
        return problem(409, "Not configured", str(exc))


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    checks: dict[str, Any] = {}
    async with service.open_deps() as deps:
        checks["storage"] = await _check(deps.store.ping())
        checks["graph"] = await _check(deps.graph.get_json("organization?$select=id"))
        last = await _safe(deps.store.last_run()) if checks["storage"]["ok"] else None
    healthy = all(c["ok"] for c in checks.values())
    return respond(200 if healthy else 503,
                   {"status": "healthy" if healthy else "unhealthy", "checks": checks,
                    "lastRun": last})


async def _check(awaitable: Any) -> dict[str, Any]:
    try:
        await awaitable
    except Exception as exc:  # health reports every failure instead of raising
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True}


async def _safe(awaitable: Any) -> Any:
    try:
        return await awaitable
    except Exception:  # the last run is informative only
        log.exception("emply_sync.health_last_run_failed")
        return None
