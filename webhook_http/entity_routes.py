"""What the one-entity routes of the Emply API share (users, employees, outbound
events): list a page, get, put and merge-patch one entity, and their declarations.

Thin as every handler: parse (`webhook_http.requests`), call `shared.app.emply_api`,
answer. See docs/emply-api.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import azure.functions as func

from shared.app import boundary, emply_api
from shared.emply import document as emply_doc
from webhook_http import openapi as oa
from webhook_http import requests as rq
from webhook_http.answers import bad, respond
from webhook_http.routes import Area, Route

LIST_PARAMS = {"users": frozenset({"pageSize", "next", "status", "source", "linked"}),
               "employees": frozenset({"pageSize", "next", "status"})}
STATUSES = {"users": emply_doc.USER_STATUSES, "employees": emply_doc.EMPLOYEE_STATUSES}
NAMES = {"users": "User", "employees": "Employee", "outboundEvents": "OutboundEvent"}


def _filters(kind: str, params: Mapping[str, str]) -> tuple[dict[str, str], bool | None]:
    equals: dict[str, str] = {}
    status = params.get("status")
    if status is not None:
        if status not in STATUSES[kind]:
            raise bad("status", "status must be one of " + ", ".join(STATUSES[kind]))
        equals["status"] = status
    source = params.get("source")
    if source is not None:
        if not source.strip() or len(source) > 255:
            raise bad("source", "source must be 1 to 255 characters")
        equals["source"] = source
    linked = params.get("linked")
    if linked is not None and linked not in ("true", "false"):
        raise bad("linked", "linked must be true or false")
    return equals, None if linked is None else linked == "true"


async def list_page(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = rq.params(req, LIST_PARAMS[kind])
        size = rq.page_size(params)
        equals, linked = _filters(kind, params)
        after = rq.cursor(params, "next")
        async with boundary.open_deps() as deps:
            items, cursor = await emply_api.list_page(deps.store, kind, page_size=size,
                                                      after=after, filters=equals,
                                                      linked=linked)
        body: dict[str, Any] = {"items": [{**item, "etag": etag} for item, etag in items],
                                "next": None}
        if cursor is not None:
            query = {k: v for k, v in params.items() if k not in ("next", "code")}
            query["next"] = cursor
            body["next"] = f"/api/{kind}?" + "&".join(
                f"{k}={quote(v, safe='')}" for k, v in sorted(query.items()))
        return respond(200, body)
    return await rq.guarded(run)


async def get_one(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        entity_id = rq.route_id(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.get_entity(deps.store, kind, entity_id)
        return rq.answer(200, item, etag)
    return await rq.guarded(run)


async def put_one(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        entity_id = rq.route_id(req)
        if_match = rq.if_match(req)
        body = rq.json_body(req)
        async with boundary.open_deps() as deps:
            item, etag, created = await emply_api.put_entity(deps.store, kind, entity_id,
                                                             body, if_match)
        return rq.answer(201 if created else 200, item, etag)
    return await rq.guarded(run)


async def patch_one(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        entity_id = rq.route_id(req)
        if_match = rq.if_match(req)
        body = rq.json_body(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.patch_entity(deps.store, kind, entity_id, body,
                                                      if_match)
        return rq.answer(200, item, etag)
    return await rq.guarded(run)


# --- declarations ----------------------------------------------------------------------

def list_route(area: Area, kind: str) -> Route:
    """`GET /api/{kind}`: a page of users or employees (registers the page schema)."""
    name = NAMES[kind]
    page = area.schema(f"{name}Page", {
        "type": "object", "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": oa.component(f"{name}Item")},
                       "next": {"type": ["string", "null"],
                                "description": "the next page's URL; null at the end"}}})
    params: list[dict[str, Any]] = [
        {"name": "pageSize", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": rq.MAX_PAGE_SIZE,
                    "default": rq.DEFAULT_PAGE_SIZE}},
        {"name": "next", "in": "query", "required": False,
         "description": "the cursor of a previous page's next link",
         "schema": {"type": "string"}},
        {"name": "status", "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(STATUSES[kind])}}]
    if kind == "users":
        params += [{"name": "source", "in": "query", "required": False,
                    "schema": {"type": "string"}},
                   {"name": "linked", "in": "query", "required": False,
                    "schema": {"type": "string", "enum": ["true", "false"]}}]
    return Route("get", f"/{kind}", operation_id=f"list{name}s", tags=("emply",),
                 summary=f"A page of {kind}", parameters=tuple(params),
                 responses={"200": {"description": "a page", "schema": page}})


def get_route(path: str, kind: str, summary: str) -> Route:
    return Route("get", path, operation_id=f"get{NAMES[kind]}", tags=("emply",),
                 summary=summary, parameters=(oa.PATH_ID,), problems=("400", "404"),
                 responses={"200": {"description": "found",
                                    "schema": oa.component(NAMES[kind]),
                                    "headers": oa.ETAG_HEADERS}})


def put_route(path: str, kind: str, summary: str) -> Route:
    name = NAMES[kind]
    written = {"description": "written", "schema": oa.component(name),
               "headers": oa.ETAG_HEADERS}
    return Route("put", path, operation_id=f"put{name}", tags=("emply",), summary=summary,
                 parameters=(oa.PATH_ID, oa.IF_MATCH),
                 request=oa.request_body(oa.component(f"{name}Body")),
                 responses={"200": written, "201": {**written, "description": "created"}},
                 problems=("400", "409", "412", "413"))


def patch_route(path: str, kind: str) -> Route:
    name = NAMES[kind]
    return Route("patch", path, operation_id=f"patch{name}", tags=("emply",),
                 summary=f"Merge-patch one {kind[:-1]} (RFC 7396)",
                 parameters=(oa.PATH_ID, oa.IF_MATCH),
                 request=oa.request_body(oa.component(f"{name}Patch")),
                 responses={"200": {"description": "written", "schema": oa.component(name),
                                    "headers": oa.ETAG_HEADERS}},
                 problems=("400", "404", "409", "412", "413"))
