"""HTTP area "roles": the whole list of roles at once, with one ETag for the list
(`shared.app.emply_roles`). See docs/emply-api.md."""

from __future__ import annotations

import azure.functions as func

from shared.app import boundary, emply_roles
from webhook_http import openapi as oa
from webhook_http import requests as rq
from webhook_http.routes import Area, Route

area = Area("roles")
bp = area.bp
_ROLES = area.schema("RoleList", {
    "type": "object", "required": ["roles"],
    "properties": {"roles": {"type": "array", "items": oa.component("Role"),
                             "maxItems": emply_roles.MAX_ROLES}}})


@area.route(Route(
    "get", "/roles", operation_id="listRoles", tags=("emply",), summary="Every role",
    responses={"200": {"description": "the roles", "schema": _ROLES,
                       "headers": oa.ETAG_HEADERS}}))
async def list_roles(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        async with boundary.open_deps() as deps:
            roles, etag = await emply_roles.get_roles(deps.store)
        return rq.answer(200, {"roles": roles}, etag)
    return await rq.guarded(run)


@area.route(Route(
    "put", "/roles", operation_id="putRoles", tags=("emply",),
    summary="Replace the list of roles (a role still referenced by the settings or a "
            "user cannot be removed)",
    parameters=(oa.IF_MATCH,), request=oa.request_body(_ROLES),
    responses={"200": {"description": "written", "schema": _ROLES,
                       "headers": oa.ETAG_HEADERS}},
    problems=("400", "409", "412", "413")))
async def put_roles(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        if_match = rq.if_match(req)
        body = rq.json_body(req)
        async with boundary.open_deps() as deps:
            roles, etag = await emply_roles.put_roles(deps.store, body, if_match)
        return rq.answer(200, {"roles": roles}, etag)
    return await rq.guarded(run)
