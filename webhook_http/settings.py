"""HTTP area "settings": the integration's settings, read and replaced whole (R10's
hybrid check included). See docs/emply-api.md."""

from __future__ import annotations

import azure.functions as func

from shared.app import boundary, emply_api
from webhook_http import openapi as oa
from webhook_http import requests as rq
from webhook_http.routes import Area, Route

area = Area("settings")
bp = area.bp
_SETTINGS = oa.component("Settings")


@area.route(Route(
    "get", "/settings", operation_id="getSettings", tags=("emply",), summary="The settings",
    problems=("400", "404"),
    responses={"200": {"description": "the settings", "schema": _SETTINGS,
                       "headers": oa.ETAG_HEADERS}}))
async def get_settings(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        async with boundary.open_deps() as deps:
            settings, etag = await emply_api.get_settings(deps.store)
        return rq.answer(200, settings, etag)
    return await rq.guarded(run)


@area.route(Route(
    "put", "/settings", operation_id="putSettings", tags=("emply",),
    summary="Replace the settings", parameters=(oa.IF_MATCH,),
    request=oa.request_body(_SETTINGS),
    responses={"200": {"description": "written", "schema": _SETTINGS,
                       "headers": oa.ETAG_HEADERS}},
    problems=("400", "409", "412", "413")))
async def put_settings(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        if_match = rq.if_match(req)
        body = rq.json_body(req)
        async with boundary.open_deps() as deps:
            settings, etag = await emply_api.put_settings(deps.store, body, if_match,
                                                          deps.graph)
        return rq.answer(200, settings, etag)
    return await rq.guarded(run)
