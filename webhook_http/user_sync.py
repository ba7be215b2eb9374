"""`POST /api/users/{key}/sync[?dryRun=true]`: one user now, with the steps shown
(`shared.app.user_sync`; operators' key: it changes data and answers with personal data).

- 200 + the run's report, the steps under `user` (scope, match, changes, errors, FAQ);
  a refused key (another tenant's address, the integration removed) is a 200 too, its
  scope step `refused` with the reason;
- 202 + `Location: /api/sync/runs/{runId}` when Graph throttled the reads past 20 s: the
  run was queued, as `POST /api/sync` queues one;
- 404 when nothing answers to the key, 400 for a bad key or parameter (or several users
  answering: ask by id), 409 + `Retry-After` while a run holds the lease; nothing is
  changed or recorded then. A run that failed (storage or Graph down) is a 503 problem
  with its reason and run id.

"""

from __future__ import annotations

from collections.abc import Mapping

import azure.functions as func

from shared.app import boundary, user_sync
from webhook_http.answers import (
    POLL_AFTER_SECONDS,
    UNAVAILABLE_RETRY_AFTER_SECONDS,
    BadRequest,
    problem,
    respond,
    run_in_progress,
)
from webhook_http.openapi import component
from webhook_http.routes import Area, Route

area = Area("one user now")
bp = area.bp

QUERY = frozenset({"dryRun", "code"})
"""`code` is the function key."""

_STEP = {"type": "object", "required": ["step", "status"],
         "properties": {"step": {"enum": ["scope", "match", "changes", "errors"]},
                        "status": {"type": "string"}, "reason": {"type": "string"},
                        "why": {"type": "array", "items": {"type": "string"}}}}
_ANSWER = area.schema("UserSyncAnswer", {
    "type": "object", "required": ["key", "outcome", "steps", "faq"],
    "properties": {
        "key": {"type": "string"},
        "outcome": {"enum": ["applied", "planned", "held", "nothing", "refused"]},
        "emplyUser": {"type": ["object", "null"]},
        "entraUsers": {"type": "array", "items": {"type": "object"}},
        "steps": {"type": "array", "items": _STEP},
        "faq": {"type": "array", "items": {
            "type": "object", "required": ["question", "answer"],
            "properties": {"question": {"type": "string"}, "answer": {"type": "string"}}}}}})
_REPORT = area.schema("UserSyncReport", {"allOf": [
    component("RunRecord"),
    {"type": "object", "required": ["user"], "properties": {"user": _ANSWER}}]})


def _dry_run(params: Mapping[str, str]) -> bool:
    for name in params:
        if name not in QUERY:
            raise BadRequest("query", "unknown query parameter; allowed: dryRun")
    raw = params.get("dryRun", "false")
    if raw not in ("true", "false"):
        raise BadRequest("dryRun", "dryRun must be true or false")
    return raw == "true"


@area.route(Route(
    "post", "/users/{key}/sync", operation_id="syncUser", tags=("operators",),
    summary="One user now: scope, match, the changes applied (or with dryRun shown), "
            "errors and the FAQ answer (personal data; it changes data)",
    problems=("400", "404", "409"),
    parameters=(
        {"name": "key", "in": "path", "required": True,
         "description": "an Emply user id, username or e-mail, or an Entra object id, UPN "
                        "or mail",
         "schema": {"type": "string", "minLength": 1, "maxLength": user_sync.MAX_KEY_CHARS}},
        {"name": "dryRun", "in": "query", "required": False,
         "schema": {"type": "boolean", "default": False}}),
    responses={
        "200": {"description": "the run's report, the steps under `user`", "schema": _REPORT},
        "202": {"description": "Graph throttled the reads past 20 s: the run was queued; "
                               "poll Location",
                "schema": component("SyncQueued"),
                "headers": {"Location": {"schema": {"type": "string"}},
                            "Retry-After": {"schema": {"type": "integer"}}}}}))
async def sync_user(req: func.HttpRequest) -> func.HttpResponse:
    try:
        dry_run = _dry_run(req.params)
    except BadRequest as exc:
        return problem(400, "Bad request", str(exc), field=exc.field)
    if (req.get_body() or b"").strip():
        return problem(400, "Bad request", "this route takes no body", field="body")
    try:
        outcome = await user_sync.sync_user(req.route_params.get("key", ""), dry_run=dry_run)
    except user_sync.BadKey as exc:
        return problem(400, "Bad request", str(exc), field="key")
    except boundary.AmbiguousUser as exc:
        return problem(400, "Bad request", str(exc), field="key")
    except boundary.UserNotFound as exc:
        return problem(404, "Not found", str(exc), field="key")
    except boundary.RunInProgress as exc:
        return run_in_progress(exc, "A sync is queued or running")
    report = outcome.report
    if outcome.queued:
        location = f"/api/sync/runs/{report['runId']}"
        response = respond(202, {"runId": report["runId"], "status": report["status"],
                                 "queuedAt": report["queuedAt"], "location": location})
        response.headers["Location"] = location
        response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
        return response
    if report["status"] == "failed":
        error = report["errors"][-1]
        configured = error.get("reason") != "not_configured"
        return problem(503 if configured else 409,
                       "A dependency is unavailable" if configured else "Not configured",
                       str(error.get("message")), reason=error.get("reason"),
                       temporary=bool(error.get("temporary")), runId=report["runId"],
                       retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS
                       if error.get("temporary") else None)
    return respond(200, report)
