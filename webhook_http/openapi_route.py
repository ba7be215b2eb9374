"""HTTP area "OpenAPI": `GET /api/openapi.json`, the OpenAPI 3.1 document of every
route, built from the declarations of the areas listed here (`webhook_http.openapi`).

`AREAS` is every HTTP area `function_app.py` registers, this one included
(tests/e2e/test_openapi.py holds the two lists and the registered routes to the
document). The route makes the same caller check as every other.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from webhook_http import (
    changes,
    employees,
    emply_document,
    notifications,
    operators,
    outbound_events,
    roles,
    settings,
    sync_routes,
    user_sync,
    users,
)
from webhook_http import openapi as oa
from webhook_http.answers import respond
from webhook_http.routes import Area, Route

area = Area("openapi")
bp = area.bp

AREAS: tuple[Area, ...] = (
    sync_routes.area, operators.area, emply_document.area, settings.area, roles.area,
    users.area, user_sync.area, employees.area, outbound_events.area, changes.area,
    notifications.area, area)


def document() -> dict[str, Any]:
    """The OpenAPI document of every HTTP area."""
    return oa.document(AREAS)


@area.route(Route(
    "get", "/openapi.json", operation_id="openapi", tags=("meta",), summary="This document",
    problems=(), responses={"200": {"description": "OpenAPI 3.1",
                                    "schema": {"type": "object"}}}))
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return respond(200, document())
