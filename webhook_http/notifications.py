"""HTTP area "Graph notifications": `POST /api/graph/notifications`, where Microsoft
Graph sends change and lifecycle notifications (`shared.notify.inbox`).

Function auth: Graph calls the URL the subscription names, which carries a named
function key (`?code=`, infra's `graph-notifications` host key). Graph sends no Entra
token, so the app-role check of the other routes does not apply here (`Auth.GRAPH`);
the subscription's secret clientState authenticates each notification.

- `?validationToken=…` and no body (Graph's handshake when a subscription is created):
  the token echoed as text/plain, 200, at once (Graph waits 10 seconds at most).
- a notification collection: 202 with no body, after checks and at most one queue
  message (never a sync in the request: Graph wants an answer within 3 seconds).
- a body that is not a notification collection: 400 naming the field.
Nothing here logs the URL (it carries the key) or a payload.
"""

from __future__ import annotations

import azure.functions as func

from shared.emply import gate
from shared.notify import inbox
from shared.notify import settings as notify_settings
from webhook_http.answers import problem
from webhook_http.routes import Area, Auth, Route

area = Area("graph notifications")
bp = area.bp

MAX_TOKEN_CHARS = 1024


@area.route(Route(
    "post", f"/{notify_settings.ROUTE}", operation_id="graphNotifications", tags=("graph",),
    summary="Microsoft Graph change and lifecycle notifications (and its validation "
            "handshake)",
    auth=Auth.GRAPH,
    parameters=({"name": "validationToken", "in": "query", "required": False,
                 "schema": {"type": "string", "maxLength": MAX_TOKEN_CHARS}},),
    request={"content": {"application/json": {"schema": {
        "type": "object", "required": ["value"],
        "properties": {"value": {"type": "array", "minItems": 1,
                                 "maxItems": inbox.MAX_ITEMS,
                                 "items": {"type": "object"}}}}}}},
    responses={"200": {"description": "the validation token, echoed",
                       "schema": {"type": "string"}, "media": "text/plain"},
               "202": {"description": "accepted (checked; a run queued when due)"}}))
async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    token = req.params.get("validationToken")
    body = req.get_body() or b""
    # Graph's handshake has no body; with a body it is a notification, checked as one.
    if token is not None and not body.strip():
        try:  # echoed as text: no control character, no lone surrogate
            gate.text(token, "validationToken", max_chars=MAX_TOKEN_CHARS)
        except gate.GateError as exc:
            return problem(400, "Bad request", exc.detail, field="validationToken")
        return func.HttpResponse(token, status_code=200, mimetype="text/plain")
    try:
        await inbox.receive(body)
    except inbox.BadNotification as exc:
        return problem(400, "Bad request", str(exc), field=exc.field)
    return func.HttpResponse(status_code=202)
