"""The bodies of the sync, run and health routes, as typed models and JSON Schemas.

`SCHEMAS` are the OpenAPI document's component schemas of those bodies (the areas
`webhook_http.sync_routes` and `webhook_http.operators` declare them beside their
routes). The TypedDicts are what the handlers build; tests hold the three (handlers,
TypedDicts, schemas) to the same fields.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


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
