"""HTTP area "the Emply document": the whole Emply state document in (as
`emply-sync emply import`, all or nothing) and out (as `emply export`, or a page at a
time). See docs/emply-api.md "The whole document, paged"."""

from __future__ import annotations

from urllib.parse import quote

import azure.functions as func

from shared.app import boundary, emply_api, emply_pages
from shared.emply import schema as emply_schema
from webhook_http import openapi as oa
from webhook_http import requests as rq
from webhook_http.answers import bad, problem, respond
from webhook_http.routes import Area, Route

area = Area("emply document")
bp = area.bp

MAX_DOCUMENT_BYTES = 128 * 1024 * 1024
"""A whole Emply state document (100,000 users is about 40 MB of JSON)."""

_PAGE = area.schema("EmplyPage", {
    "type": "object", "required": ["next"],
    "description": "one page of the document: the first holds settings and roles, each "
                   "later one a section's entities",
    "properties": {
        "settings": {"anyOf": [oa.component("Settings"), {"type": "null"}]},
        **{kind: {"type": "array", "items": oa.component(name)}
           for kind, name in emply_schema.NAMES.items() if kind != "settings"},
        "next": {"type": ["string", "null"],
                 "description": "the next page's URL; null after the last"}}})
_COUNTS = area.schema("ImportResult", {
    "type": "object", "required": ["imported", "replaced"],
    "properties": {"imported": {"type": "object", "additionalProperties": {"type": "integer"}},
                   "replaced": {"type": "boolean"}}})


@area.route(Route(
    "get", "/emply", operation_id="exportEmply", tags=("emply",),
    summary="The whole Emply state document (as `emply-sync emply export`), or with "
            "pageSize a page of it",
    parameters=(
        {"name": "pageSize", "in": "query", "required": False,
         "description": "page the document (required above "
                        f"{emply_pages.ONE_SHOT_MAX} users and employees)",
         "schema": {"type": "integer", "minimum": 1, "maximum": rq.MAX_PAGE_SIZE}},
        {"name": "next", "in": "query", "required": False,
         "description": "the cursor of a previous page's next link",
         "schema": {"type": "string"}}),
    problems=("400", "413"),
    responses={"200": {"description": "the document, or a page of it",
                       "schema": {"anyOf": [oa.component("EmplyDocument"), _PAGE]}}}))
async def export_emply(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = rq.params(req, frozenset({"pageSize", "next"}))
        if "pageSize" not in params and "next" not in params:
            return await _one_shot()
        size = rq.page_size(params)
        after = rq.cursor(params, "next")
        try:
            async with boundary.open_deps() as deps:
                found = await emply_pages.page(deps.store, after, size)
        except emply_pages.BadCursor as exc:
            raise bad("next", str(exc)) from None
        cursor = found.pop("next")
        found["next"] = None if cursor is None else (
            f"/api/emply?next={quote(cursor, safe='')}&pageSize={size}")
        return respond(200, found)
    return await rq.guarded(run)


async def _one_shot() -> func.HttpResponse:
    """The export's bytes, while the Emply side is small enough for one answer."""
    async with boundary.open_deps() as deps:
        try:
            await emply_pages.check_one_shot(deps.store)
        except emply_pages.TooLarge as exc:
            return problem(413, "Too large for one response", str(exc), field="pageSize")
        body = await emply_api.export_document(deps.store)
    return func.HttpResponse(body, status_code=200, mimetype="application/json")


@area.route(Route(
    "put", "/emply", operation_id="importEmply", tags=("emply",),
    summary="Import the Emply state document (all or nothing)",
    parameters=({"name": "replace", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["true", "false"]}},),
    request=oa.request_body(oa.component("EmplyDocument")),
    responses={"200": {"description": "imported", "schema": _COUNTS}},
    problems=("400", "409", "413")))
async def import_emply(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = rq.params(req, frozenset({"replace"}))
        replace = params.get("replace", "false")
        if replace not in ("true", "false"):
            raise bad("replace", "replace must be true or false")
        raw = rq.body(req, MAX_DOCUMENT_BYTES)
        async with boundary.open_deps() as deps:
            counts = await emply_api.import_document(deps.store, raw, replace=replace == "true",
                                                     graph=deps.graph)
        return respond(200, {"imported": counts, "replaced": replace == "true"})
    return await rq.guarded(run)
