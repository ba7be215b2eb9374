"""HTTP area "sync": the manual sync Emply calls and the run history.

`POST /api/sync` only queues the run (`shared.app.manual_runs`; the queue trigger in
`sync_queue` runs it) and answers 202 with where to poll: Azure's front end cuts a
request at 230 s, which a large run outlasts. Handlers are thin: they parse and answer;
`shared.app` does the work. See docs/emply-http.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from shared.app import boundary, manual_runs
from shared.emply import gate
from webhook_http import answers, sync_models
from webhook_http.answers import BadRequest, problem, respond
from webhook_http.openapi import component
from webhook_http.routes import Area, Route

area = Area("sync")
bp = area.bp
for _name in ("SyncRequest", "SyncQueued", "RunRecord", "RunList"):
    area.schema(_name, sync_models.SCHEMAS[_name])

MAX_BODY_BYTES = 4096
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}", re.ASCII)
"""`boundary.new_run_id`'s form."""
SYNC_FIELDS: Mapping[str, tuple[type, ...]] = {"dryRun": (bool,),
                                               "approveDeactivations": (int, str),
                                               "approveDeletions": (str,)}
MAX_RUNS_LISTED = 200


def _describe(value: Any) -> str:
    """A value for an error message: scalars shown (shortened), containers by kind only
    (the repr of a deeply nested list is itself a RecursionError)."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_sync_body(raw: bytes) -> dict[str, Any]:
    """`{"dryRun": bool, "approveDeactivations": n | "N:DIGEST" | "DIGEST"}`, both optional;
    anything else is refused. The approval comes back as a `boundary.Approval`."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("body", f"body is {len(raw)} bytes; at most {MAX_BODY_BYTES} allowed")
    if not raw.strip():
        return {}
    try:
        body = gate.parse_json(raw, "body")
    except gate.GateError as exc:
        raise BadRequest(exc.field or "body", exc.detail) from None
    if not isinstance(body, dict):
        raise BadRequest("body", "body must be a JSON object")
    for key, value in body.items():
        expected = SYNC_FIELDS.get(key)
        if expected is None:
            raise BadRequest(key, f"unknown field {key!r}; allowed: {', '.join(SYNC_FIELDS)}")
        # bool is an int in Python: refuse true as a count and 1 as a flag.
        if type(value) not in expected:
            kinds = " or ".join("a string" if t is str else f"a {t.__name__}" for t in expected)
            raise BadRequest(key, f"{key} must be {kinds}, got {_describe(value)}")
    approve = body.get("approveDeactivations")
    if isinstance(approve, int) and approve < 0:
        raise BadRequest("approveDeactivations", "approveDeactivations must be ≥ 0")
    _parse_approval(body, "approveDeactivations", "a count N, \"N:DIGEST\" or \"DIGEST\" "
                    "(12 hex digits, shown with the held deactivations)")
    _parse_approval(body, "approveDeletions",
                    "\"N:DIGEST\" (shown with the held Entra deletions)")
    return body


def _parse_approval(body: dict[str, Any], key: str, expected: str) -> None:
    """`body[key]`, when present, as a `boundary.Approval` (R7); a BadRequest otherwise."""
    value = body.get(key)
    if value is None:
        return
    try:
        body[key] = boundary.Approval.parse(str(value))
    except ValueError:
        raise BadRequest(key, f"{key} must be {expected}, got {_describe(value)}") from None


def parse_wait(params: Mapping[str, str]) -> int:
    """`?wait=N`: whole seconds from 0 to `manual_runs.MAX_WAIT_SECONDS`."""
    raw = params.get("wait", "0")
    if not (raw.isascii() and raw.isdigit()) or int(raw) > manual_runs.MAX_WAIT_SECONDS:
        raise BadRequest("wait", "wait must be a whole number of seconds from 0 to "
                         f"{manual_runs.MAX_WAIT_SECONDS}")
    return int(raw)


_WAIT = {"name": "wait", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 0, "maximum": manual_runs.MAX_WAIT_SECONDS}}
_LOCATION = {"Location": {"schema": {"type": "string"}},
             "Retry-After": {"schema": {"type": "integer"}}}


@area.route(Route(
    "post", "/sync", operation_id="startSync", tags=("sync",),
    summary="Queue a sync; 202 with where to poll (200 with the report under ?wait)",
    parameters=(_WAIT,), problems=("400", "409"),
    request={"required": False,
             "content": {"application/json": {"schema": component("SyncRequest")}}},
    responses={"202": {"description": "Queued", "schema": component("SyncQueued"),
                       "headers": _LOCATION},
               "200": {"description": "With ?wait: the run finished in time; its report",
                       "schema": component("RunRecord")}}))
async def manual_sync(req: func.HttpRequest) -> func.HttpResponse:
    try:
        wait = parse_wait(req.params)
        body = parse_sync_body(req.get_body() or b"")
    except BadRequest as exc:
        return problem(400, "Bad request", str(exc), field=exc.field)
    try:
        queued = await manual_runs.request_run(
            dry_run=bool(body.get("dryRun", False)),
            approve=body.get("approveDeactivations"),
            approve_deletions=body.get("approveDeletions"),
        )
    except boundary.RunInProgress as exc:
        return answers.run_in_progress(exc, "A sync is already queued or running")
    run_id = queued["runId"]
    if wait:
        report = await manual_runs.wait_for(run_id, wait)
        if report is not None:
            # 200 whatever the outcome: the report says succeeded, needs_approval or failed.
            return respond(200, report)
    location = f"/api/sync/runs/{run_id}"
    return respond(202, {"runId": run_id, "status": queued["status"],
                         "queuedAt": queued["queuedAt"], "location": location},
                   {"Location": location, "Retry-After": str(answers.POLL_AFTER_SECONDS)})


@area.route(Route(
    "get", "/sync/runs", operation_id="listRuns", tags=("sync",),
    summary="Run history, newest first",
    parameters=({"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS_LISTED}},),
    responses={"200": {"description": "Run summaries", "schema": component("RunList")}}))
async def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    raw = req.params.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_RUNS_LISTED:
        return problem(400, "Bad request",
                       f"limit must be a whole number from 1 to {MAX_RUNS_LISTED}",
                       field="limit")
    async with boundary.open_deps() as deps:
        return respond(200, {"runs": await deps.store.list_runs(int(raw))})


@area.route(Route(
    "get", "/sync/runs/{runId}", operation_id="getRun", tags=("sync",),
    summary="One run: queued, running (progress) or its report",
    parameters=({"name": "runId", "in": "path", "required": True,
                 "schema": {"type": "string"}},),
    problems=("404",),
    responses={"200": {"description": "The run", "schema": component("RunRecord")}}))
async def get_run(req: func.HttpRequest) -> func.HttpResponse:
    run_id = req.route_params.get("runId", "")
    if not RUN_ID.fullmatch(run_id):
        # Not a run id this service makes: no such run, and the input is not echoed
        # (it may carry quotes, OData or path characters meant for something else).
        return problem(404, "Not found", "no such run; a run id looks like "
                       "20261202T013000Z-1a2b3c4d", field="runId")
    async with boundary.open_deps() as deps:
        report = await deps.store.get_run(run_id)
    if report is None:
        return problem(404, "Not found", f"no run {run_id}", field="runId")
    return respond(200, report)
