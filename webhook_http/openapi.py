"""The OpenAPI 3.1 document of every HTTP route, served at `GET /api/openapi.json`.

A small registry: each module that declares routes calls `operation(...)` beside them,
so a route added elsewhere appears too. The Emply entity schemas come from
`shared.emply.schema` (built from the schema table that validates the bodies), so the
document and the validation cannot disagree. Errors are `application/problem+json`.
"""

from __future__ import annotations

import copy
from typing import Any

from shared.emply import schema as emply_schema
from webhook_http import sync_models

_OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {}
_SCHEMAS: dict[str, dict[str, Any]] = {}

PROBLEM = "#/components/schemas/Problem"
PROBLEM_RESPONSES = {
    "400": "The request is malformed or its body refused; the problem names the field",
    "404": "Not found",
    "409": "A sync or an import holds the lease, or the service is not configured",
    "412": "If-Match does not name the entity's current ETag",
    "410": "The cursor is past the change feed's retention; the body says what to do",
    "413": "The body is larger than the route takes",
    "503": "A dependency (storage, Graph) is unavailable; retry later",
}


RETRY_AFTER = {"description": "seconds to wait before trying again (on a 409 while a run "
                              "is queued or running, and on a temporary 503)",
               "required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def schema(name: str, value: dict[str, Any]) -> str:
    """Register a component schema; returns its `$ref`."""
    _SCHEMAS[name] = value
    return f"#/components/schemas/{name}"


def ref(target: str) -> dict[str, Any]:
    return {"$ref": target}


def json_body(target: dict[str, Any], *, media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": target}}}


def operation(path: str, method: str, *, operation_id: str, summary: str,
              responses: dict[str, dict[str, Any]], problems: tuple[str, ...] = ("400",),
              parameters: list[dict[str, Any]] | None = None,
              request: dict[str, Any] | None = None, tags: tuple[str, ...] = ()) -> None:
    """Declare one route. `responses`: status -> {"description", "schema"?, "headers"?};
    `problems`: the error statuses it answers with a problem body (503 always)."""
    out: dict[str, Any] = {}
    for status, spec in responses.items():
        answer: dict[str, Any] = {"description": spec["description"]}
        if "schema" in spec:
            answer.update(json_body(spec["schema"],
                                    media=spec.get("media", "application/json")))
        if "headers" in spec:
            answer["headers"] = spec["headers"]
        out[status] = answer
    # The Functions host refuses a missing or wrong function key before any handler runs.
    out.setdefault("401", {"description": "No or a wrong function key (answered by the "
                                          "Functions host, without a body)"})
    for status in (*problems, "503"):
        out.setdefault(status, {"description": PROBLEM_RESPONSES[status],
                                **json_body(ref(PROBLEM), media="application/problem+json")})
        if status in ("409", "503"):
            out[status].setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER)
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                          "responses": out, "tags": list(tags)}
    if parameters:
        op["parameters"] = parameters
    if request is not None:
        op["requestBody"] = request
    _OPERATIONS.setdefault(path, {})[method.lower()] = op


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route declared so far."""
    schemas = {**emply_schema.components(), **_SCHEMAS,
               "Problem": {
                   "type": "object", "required": ["title", "status", "detail"],
                   "properties": {
                       "type": {"type": "string"}, "title": {"type": "string"},
                       "status": {"type": "integer"}, "detail": {"type": "string"},
                       "field": {"type": "string",
                                 "description": "the field or parameter at fault"},
                       "reason": {"type": "string"}, "temporary": {"type": "boolean"},
                       "runId": {"type": ["string", "null"]},
                       "total": {"type": "integer"},
                       "errors": {"type": "array", "items": {
                           "type": "object", "required": ["path", "detail"],
                           "properties": {"path": {"type": "string"},
                                          "detail": {"type": "string"}}}},
                   }}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "emply-entra-sync", "version": "1",
                 "description": "The contract between Emply and the sync service "
                                "(docs/emply-api.md)."},
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}],
        "paths": copy.deepcopy(dict(sorted(_OPERATIONS.items()))),
        "components": {
            "schemas": copy.deepcopy(schemas),
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header",
                                                "name": "x-functions-key"}},
        },
    }


def _declare_core_routes() -> None:
    """The routes of `webhook_http/__init__.py`: the sync, runs and health routes as
    `webhook_http.sync_models` describes them; explain here."""
    sync_models.declare(operation, schema)
    operation("/users/{user}/explain", "get", operation_id="explainUser", tags=("operators",),
              summary="Why the sync does what it does for a user (personal data)",
              problems=("400", "404"),
              parameters=[{"name": "user", "in": "path", "required": True,
                           "schema": {"type": "string"}}],
              responses={"200": {"description": "the explanation",
                                 "schema": {"type": "object"}}})


_declare_core_routes()
