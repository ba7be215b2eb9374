"""HTTP area "explain and health": why the sync does what it does for a user (R18,
operators: personal data), and health.

`GET /api/health` is anonymous for probes and says up or down, nothing more;
`GET /api/health/details` (function key) names what is down: the reason code, never
where it is.
"""

from __future__ import annotations

import json

import azure.functions as func

from shared.app import boundary
from shared.emply import gate
from webhook_http import answers, sync_models
from webhook_http.answers import problem, respond
from webhook_http.openapi import component
from webhook_http.routes import Area, Auth, Route

area = Area("operators")
bp = area.bp
for _name in ("Health", "HealthDetails"):
    area.schema(_name, sync_models.SCHEMAS[_name])

_DOWN = {"Retry-After": str(answers.UNAVAILABLE_RETRY_AFTER_SECONDS)}


@area.route(Route(
    "get", "/users/{user}/explain", operation_id="explainUser", tags=("operators",),
    summary="Why the sync does what it does for a user (personal data)",
    problems=("400", "404"),
    parameters=({"name": "user", "in": "path", "required": True,
                 "schema": {"type": "string"}},),
    responses={"200": {"description": "the explanation", "schema": {"type": "object"}}}))
async def explain_user(req: func.HttpRequest) -> func.HttpResponse:
    try:
        key = gate.identifier(str(req.route_params.get("user", "")), "user")
    except gate.GateError as exc:
        return problem(400, "Bad request", f"user {exc.detail}", field="user")
    try:
        async with boundary.open_deps() as deps:
            return respond(200, await boundary.explain_user(deps, key))
    except boundary.UserNotFound as exc:
        return problem(404, "Not found", str(exc), field="user")
    except boundary.AmbiguousUser as exc:
        return problem(400, "Bad request", str(exc), field="user")


@area.route(Route(
    "get", "/health", operation_id="health", tags=("health",),
    summary="Probe (anonymous): up or down", problems=(), auth=Auth.PROBE,
    responses={"200": {"description": "Up", "schema": component("Health")},
               "503": {"description": "Down", "schema": component("Health")}}))
async def health(req: func.HttpRequest) -> func.HttpResponse:
    # Anonymous, for probes (App Service health check, a load balancer): up or down and
    # nothing else, no reason, no last run. Operators read /api/health/details.
    status = await boundary.health()
    up = status["status"] == "healthy"
    response = func.HttpResponse(json.dumps({"status": "up" if up else "down"}),
                                 status_code=200 if up else 503, mimetype="application/json")
    if not up:
        response.headers.update(_DOWN)
    return response


@area.route(Route(
    "get", "/health/details", operation_id="healthDetails", tags=("health",),
    summary="Storage and Graph checks, last run (operators)", problems=(),
    responses={"200": {"description": "Healthy", "schema": component("HealthDetails")},
               "503": {"description": "Storage or Graph is down",
                       "schema": component("HealthDetails")}}))
async def health_details(req: func.HttpRequest) -> func.HttpResponse:
    status = await boundary.health()
    up = status["status"] == "healthy"
    return respond(200 if up else 503, status, None if up else _DOWN)
