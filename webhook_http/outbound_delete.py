"""`DELETE /api/outbound-events/{id}` (R15): Emply deletes an outbound event.

The event is marked `deleteRequested` at once (202 with the event and its new ETag);
the next run deletes it in M365 when M365 holds it (Outlook tells a meeting's
attendees) and then removes it from Emply, so a run killed half-way repeats nothing
that happened. Asking again is harmless; `If-Match` makes it conditional (412).
Self-contained beside `webhook_http.emply_api`, whose request helpers it uses.
"""

from __future__ import annotations

import azure.functions as func

from shared.app import boundary, emply_api
from webhook_http import bp, failures_as_problems, role_required
from webhook_http import emply_api as routes
from webhook_http import openapi as oa


@bp.route(route="outbound-events/{id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def delete_outbound_event(req: func.HttpRequest) -> func.HttpResponse:
    """R15: deleted in M365 by the next run, then in Emply."""
    async def run() -> func.HttpResponse:
        routes._params(req, frozenset())
        entity_id = routes._entity_id(req)
        if_match = routes._if_match(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.delete_outbound_event(deps.store, entity_id, if_match)
        return routes._answer(202, item, etag)
    return await routes._guarded(run)


def _declare() -> None:
    oa.operation(
        "/outbound-events/{id}", "delete", operation_id="deleteOutboundEvent",
        tags=("emply",),
        summary="Delete an outbound event (R15): the next run deletes it in M365, when M365 "
                "holds it, then removes it from Emply; until then it is kept with "
                "deleteRequested: true",
        parameters=[{"name": "id", "in": "path", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
                    {"name": "If-Match", "in": "header", "required": False,
                     "description": "delete only if the event's ETag is this one (or * : it "
                                    "exists); else 412", "schema": {"type": "string"}}],
        responses={"202": {"description": "marked for deletion: the event as it is kept "
                                          "until the next run",
                           "schema": oa.ref("#/components/schemas/OutboundEvent"),
                           "headers": {"ETag": {"description": "the entity's ETag",
                                                "schema": {"type": "string"}}}}},
        problems=("400", "404", "409", "412"))


_declare()
