"""The bodies of the sync, run and health routes, as typed models and JSON Schemas.

For the OpenAPI document (`GET /api/openapi.json`): `SCHEMAS` are component schemas
and `OPERATIONS` the routes, each a dict of the keyword arguments of the OpenAPI
registry's `operation(...)` (`webhook_http/openapi.py`), with `$ref`s into
`#/components/schemas/`. `declare(operation, schema)` registers them all. The
TypedDicts are what the handlers build; tests hold the three (handlers, TypedDicts,
schemas) to the same fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NotRequired, TypedDict

from shared.app import manual_runs


class SyncRequest(TypedDict, total=False):
    """POST /api/sync's body (both optional; nothing else allowed)."""

    dryRun: bool
    approveDeactivations: int | str
    """A count N, or "N:DIGEST" / "DIGEST" (R7; the held run's `heldDigest`)."""
    approveDeletions: str
    """"N:DIGEST" of the Entra deletions the guard held (R9 delete; no bare count)."""


class SyncQueued(TypedDict):
    """POST /api/sync's 202 body."""

    runId: str
    status: Literal["queued"]
    queuedAt: str
    location: str


class Progress(TypedDict):
    phase: str
    """`read`, `planned`, …; the other keys are that phase's counts."""


class RunRecord(TypedDict):
    """GET /api/sync/runs/{runId}: a queued, running or final run (the run report)."""

    runId: str
    trigger: str
    status: str
    dryRun: bool
    startedAt: str
    finishedAt: str | None
    queuedAt: NotRequired[str]
    progress: NotRequired[Progress]


class Health(TypedDict):
    """GET /api/health (anonymous): up or down, nothing else."""

    status: Literal["up", "down"]


RUN_STATUSES = ["queued", "running", "succeeded", "needs_approval", "failed", "abandoned",
                "disabled"]

SCHEMAS: dict[str, dict[str, Any]] = {
    "SyncRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "dryRun": {"type": "boolean"},
            "approveDeactivations": {"anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+|\d+:[0-9a-f]{12}|[0-9a-f]{12})\s*$"},
            ]},
            "approveDeletions": {"type": "string",
                                 "pattern": r"^\s*\d+:[0-9a-f]{12}\s*$"},
        },
    },
    "SyncQueued": {
        "type": "object", "additionalProperties": False,
        "required": ["runId", "status", "queuedAt", "location"],
        "properties": {"runId": {"type": "string"}, "status": {"const": "queued"},
                       "queuedAt": {"type": "string", "format": "date-time"},
                       "location": {"type": "string"}},
    },
    "RunRecord": {
        "type": "object",
        "required": ["runId", "trigger", "status", "dryRun", "startedAt", "finishedAt"],
        "properties": {
            "runId": {"type": "string"}, "trigger": {"type": "string"},
            "status": {"enum": RUN_STATUSES}, "dryRun": {"type": "boolean"},
            "startedAt": {"type": "string"}, "finishedAt": {"type": ["string", "null"]},
            "queuedAt": {"type": "string"},
            "progress": {"type": "object", "required": ["phase"],
                         "properties": {"phase": {"type": "string"}}},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "changes": {"type": "array", "items": {"type": "object"}},
            "held": {"type": "array", "items": {"type": "object"}},
            "heldDigest": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    },
    "RunList": {
        "type": "object", "required": ["runs"],
        "properties": {"runs": {"type": "array", "items": {"type": "object"}}},
    },
    "Health": {
        "type": "object", "additionalProperties": False, "required": ["status"],
        "properties": {"status": {"enum": ["up", "down"]}},
    },
    "HealthDetails": {
        "type": "object", "required": ["status", "checks"],
        "properties": {"status": {"enum": ["healthy", "unhealthy"]},
                       "checks": {"type": "object"},
                       "lastRun": {"type": ["object", "null"]}},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_RUN_ID = {"name": "runId", "in": "path", "required": True, "schema": {"type": "string"}}
_WAIT = {"name": "wait", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 0,
                    "maximum": manual_runs.MAX_WAIT_SECONDS}}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": 200}}
_LOCATION = {"Location": {"schema": {"type": "string"}},
             "Retry-After": {"schema": {"type": "integer"}}}

OPERATIONS: list[dict[str, Any]] = [
    {"path": "/sync", "method": "post", "operation_id": "startSync", "tags": ("sync",),
     "summary": "Queue a sync; 202 with where to poll (200 with the report under ?wait)",
     "parameters": [_WAIT], "problems": ("400", "409"),
     "request": {"required": False,
                 "content": {"application/json": {"schema": _ref("SyncRequest")}}},
     "responses": {
         "202": {"description": "Queued", "schema": _ref("SyncQueued"), "headers": _LOCATION},
         "200": {"description": "With ?wait: the run finished in time; its report",
                 "schema": _ref("RunRecord")}}},
    {"path": "/sync/runs", "method": "get", "operation_id": "listRuns", "tags": ("sync",),
     "summary": "Run history, newest first", "parameters": [_LIMIT], "problems": ("400",),
     "responses": {"200": {"description": "Run summaries", "schema": _ref("RunList")}}},
    {"path": "/sync/runs/{runId}", "method": "get", "operation_id": "getRun",
     "tags": ("sync",), "summary": "One run: queued, running (progress) or its report",
     "parameters": [_RUN_ID], "problems": ("404",),
     "responses": {"200": {"description": "The run", "schema": _ref("RunRecord")}}},
    {"path": "/health", "method": "get", "operation_id": "health", "tags": ("health",),
     "summary": "Probe (anonymous): up or down", "problems": (),
     "responses": {"200": {"description": "Up", "schema": _ref("Health")},
                   "503": {"description": "Down", "schema": _ref("Health")}}},
    {"path": "/health/details", "method": "get", "operation_id": "healthDetails",
     "tags": ("health",), "summary": "Storage and Graph checks, last run (operators)",
     "problems": (),
     "responses": {"200": {"description": "Healthy", "schema": _ref("HealthDetails")},
                   "503": {"description": "Storage or Graph is down",
                           "schema": _ref("HealthDetails")}}},
]
"""The explain route (operators) is described by the registry's own core routes."""


def declare(operation: Callable[..., None], schema: Callable[[str, dict[str, Any]], str]
            ) -> None:
    """Register these schemas and routes with the OpenAPI registry's functions."""
    for name, value in SCHEMAS.items():
        schema(name, value)
    for op in OPERATIONS:
        spec = dict(op)
        operation(spec.pop("path"), spec.pop("method"), **spec)
