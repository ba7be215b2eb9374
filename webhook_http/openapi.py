"""The OpenAPI 3.1 document, built from the route declarations of the HTTP areas.

Each route declares itself beside its handler (`webhook_http.routes.Route`); this
module turns the declarations of the areas it is given into the document, with the
Emply entity schemas of `shared.emply.schema` (built from the schema table that
validates the bodies, so the document and the validation cannot disagree) and each
area's own component schemas. Errors are `application/problem+json`. Pure: the
OpenAPI area (`webhook_http.openapi_route`) says which areas the document covers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from shared.emply import schema as emply_schema
from webhook_http.routes import Area, Route

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

# Pieces many declarations share.
ETAG_HEADERS: Mapping[str, Any] = {"ETag": {"description": "the entity's ETag, for If-Match",
                                            "schema": {"type": "string"}}}
IF_MATCH: Mapping[str, Any] = {
    "name": "If-Match", "in": "header", "required": False,
    "description": "write only if the entity's ETag is this one (or * : it exists); else 412",
    "schema": {"type": "string"}}
PATH_ID: Mapping[str, Any] = {"name": "id", "in": "path", "required": True,
                              "schema": {"type": "string", "minLength": 1, "maxLength": 255}}


def ref(target: str) -> dict[str, Any]:
    return {"$ref": target}


def component(name: str) -> dict[str, Any]:
    """A `$ref` to a component schema by name."""
    return ref(f"#/components/schemas/{name}")


def json_content(schema: Mapping[str, Any], *, media: str = "application/json"
                 ) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def request_body(schema: Mapping[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, **json_content(schema)}


def operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation object of one declaration."""
    out: dict[str, Any] = {}
    for status, spec in route.responses.items():
        answer: dict[str, Any] = {"description": spec["description"]}
        if "schema" in spec:
            answer.update(json_content(spec["schema"],
                                       media=spec.get("media", "application/json")))
        if "headers" in spec:
            answer["headers"] = spec["headers"]
        out[status] = answer
    # The Functions host refuses a missing or wrong function key before any handler runs.
    out.setdefault("401", {"description": "No or a wrong function key (answered by the "
                                          "Functions host, without a body)"})
    for status in (*route.problems, "503"):
        out.setdefault(status, {"description": PROBLEM_RESPONSES[status],
                                **json_content(ref(PROBLEM), media="application/problem+json")})
        if status in ("409", "503"):
            out[status].setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER)
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary,
                          "responses": out, "tags": list(route.tags)}
    if route.parameters:
        op["parameters"] = [dict(p) for p in route.parameters]
    if route.request is not None:
        op["requestBody"] = dict(route.request)
    return op


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "field": {"type": "string", "description": "the field or parameter at fault"},
        "reason": {"type": "string"}, "temporary": {"type": "boolean"},
        "written": {"enum": ["unknown"],
                    "description": "on a 503 only: storage took the write and its answer "
                                   "was lost; read the entity to know (any other 5xx: "
                                   "nothing was written)"},
        "runId": {"type": ["string", "null"]},
        "total": {"type": "integer"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["path", "detail"],
            "properties": {"path": {"type": "string"}, "detail": {"type": "string"}}}},
    }}


def document(areas: Iterable[Area]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the `areas` declare."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = dict(emply_schema.components())
    for area in areas:
        schemas.update(area.schemas)
        for route in area.routes:
            methods = paths.setdefault(route.path, {})
            method = route.method.lower()
            if method in methods:
                raise ValueError(f"{route.method} {route.path} is declared twice")
            methods[method] = operation(route)
    schemas["Problem"] = PROBLEM_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": "emply-entra-sync", "version": "1",
                 "description": "The contract between Emply and the sync service "
                                "(docs/emply-api.md)."},
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}],
        "paths": copy.deepcopy(dict(sorted(paths.items()))),
        "components": {
            "schemas": copy.deepcopy(schemas),
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header",
                                                "name": "x-functions-key"}},
        },
    }
