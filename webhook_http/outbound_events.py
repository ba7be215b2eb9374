"""HTTP area "outbound events" (R15): an event Emply created, for the sync to keep in
step in the user's default M365 calendar (created, updated, cancelled, deleted). See
docs/emply-api.md."""

from __future__ import annotations

import azure.functions as func

from shared.app import boundary, emply_api
from webhook_http import entity_routes as er
from webhook_http import openapi as oa
from webhook_http import requests as rq
from webhook_http.routes import Area, Route

area = Area("outbound events")
bp = area.bp


@area.route(er.get_route("/outbound-events/{id}", "outboundEvents",
                         "One outbound event, with its graphId and status"))
async def get_outbound_event(req: func.HttpRequest) -> func.HttpResponse:
    return await er.get_one(req, "outboundEvents")


@area.route(er.put_route("/outbound-events/{id}", "outboundEvents",
                         "Create or replace an outbound event (R15: created once in the "
                         "user's default M365 calendar by the next run)"))
async def put_outbound_event(req: func.HttpRequest) -> func.HttpResponse:
    """R15: an event Emply created, for the sync to create in the user's M365 calendar."""
    return await er.put_one(req, "outboundEvents")


@area.route(Route(
    "delete", "/outbound-events/{id}", operation_id="deleteOutboundEvent", tags=("emply",),
    summary="Delete an outbound event (R15): the next run deletes it in M365, when M365 "
            "holds it, then removes it from Emply; until then it is kept with "
            "deleteRequested: true",
    parameters=(oa.PATH_ID, oa.IF_MATCH),
    responses={"202": {"description": "marked for deletion: the event as it is kept until "
                                      "the next run",
                       "schema": oa.component("OutboundEvent"), "headers": oa.ETAG_HEADERS}},
    problems=("400", "404", "409", "412")))
async def delete_outbound_event(req: func.HttpRequest) -> func.HttpResponse:
    """R15: marked `deleteRequested` at once; the next run deletes it in M365 (Outlook
    tells a meeting's attendees), then in Emply, so a run killed half-way repeats nothing
    that happened. Asking again is harmless; `If-Match` makes it conditional (412)."""
    async def run() -> func.HttpResponse:
        rq.params(req, frozenset())
        entity_id = rq.route_id(req)
        if_match = rq.if_match(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.delete_outbound_event(deps.store, entity_id,
                                                               if_match)
        return rq.answer(202, item, etag)
    return await rq.guarded(run)
