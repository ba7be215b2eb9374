"""HTTP area "users": Emply's login accounts, one at a time (ETags, If-Match, paging,
filters), and a user's choice for one of its calendars (R13). See docs/emply-api.md."""

from __future__ import annotations

import azure.functions as func

from shared.app import boundary, emply_api
from webhook_http import entity_routes as er
from webhook_http import openapi as oa
from webhook_http import requests as rq
from webhook_http.routes import Area, Route

area = Area("users")
bp = area.bp


@area.route(er.list_route(area, "users"))
async def list_users(req: func.HttpRequest) -> func.HttpResponse:
    return await er.list_page(req, "users")


@area.route(er.get_route("/users/{id}", "users", "One user"))
async def get_user(req: func.HttpRequest) -> func.HttpResponse:
    return await er.get_one(req, "users")


@area.route(er.put_route("/users/{id}", "users", "Create or replace one user"))
async def put_user(req: func.HttpRequest) -> func.HttpResponse:
    return await er.put_one(req, "users")


@area.route(er.patch_route("/users/{id}", "users"))
async def patch_user(req: func.HttpRequest) -> func.HttpResponse:
    return await er.patch_one(req, "users")


_CHOICE = area.schema("CalendarChoice", {
    "type": "object", "required": ["enabled"], "additionalProperties": False,
    "properties": {"enabled": {"type": "boolean"}}})


@area.route(Route(
    "put", "/users/{id}/calendars/{cid}", operation_id="putUserCalendar", tags=("emply",),
    summary="Enable or disable one of the user's calendars (R13; the default calendar "
            "cannot be disabled)",
    parameters=(oa.PATH_ID, {**oa.PATH_ID, "name": "cid"}, oa.IF_MATCH),
    request=oa.request_body(_CHOICE),
    responses={"200": {"description": "written", "schema": oa.component("Calendar"),
                       "headers": oa.ETAG_HEADERS}},
    problems=("400", "404", "409", "412", "413")))
async def put_user_calendar(req: func.HttpRequest) -> func.HttpResponse:
    """R13: the user enables or disables one of its calendars."""
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        user_id = rq.route_id(req)
        calendar_id = rq.route_id(req, "cid")
        if_match = rq.if_match(req)
        body = rq.json_body(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.set_calendar(deps.store, user_id, calendar_id, body,
                                                      if_match)
        return rq.answer(200, item, etag)
    return await rq.guarded(run)
