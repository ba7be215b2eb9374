"""HTTP area "outbound events" (R15): an event Emply created, for the sync to create
once in the user's default M365 calendar. See docs/emply-api.md."""

from __future__ import annotations

import azure.functions as func

from webhook_http import entity_routes as er
from webhook_http.routes import Area

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
