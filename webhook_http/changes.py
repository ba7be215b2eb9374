"""HTTP area "change feed": `GET /api/changes?after=CURSOR[&pageSize=N]`.

Every change the sync applied, in order (`shared.run.change_feed`), a page at a time
with a sealed cursor (`shared.app.cursors`) and a `next` link; caught up, the page is
empty and the cursor the same. A cursor past the feed's retention is a 410 problem
saying what to do. See docs/emply-api.md "Change feed".
"""

from __future__ import annotations

from urllib.parse import quote

import azure.functions as func

from shared.app import boundary, changes
from webhook_http import requests as rq
from webhook_http.answers import problem, respond
from webhook_http.routes import Area, Route

area = Area("change feed")
bp = area.bp

_NULLABLE = {"type": ["string", "null"]}
_CHANGE = area.schema("ChangeEntry", {
    "type": "object", "required": ["kind", "userId", "entraId", "reason", "before",
                                   "after", "runId", "at"],
    "properties": {
        "kind": {"type": "string", "description": "what was done (README reason "
                                                  "codes: create_user, link_user, ...)"},
        "userId": _NULLABLE, "entraId": _NULLABLE, "employeeId": {"type": "string"},
        "reason": {"type": "string"}, "rule": {"type": "string"},
        "before": {"type": "object"}, "after": {"type": "object"},
        "message": {"type": "string"},
        "runId": {"type": "string", "description": "the run that applied it"},
        "at": {"type": "string", "description": "when the run recorded it (UTC)"}}})
_FEED_PAGE = area.schema("ChangePage", {
    "type": "object", "required": ["items", "cursor", "next"],
    "properties": {
        "items": {"type": "array", "items": _CHANGE},
        "cursor": {"type": "string", "description": "the position after this page; "
                                                    "the same when caught up"},
        "next": {"type": "string", "description": "the next page's URL (poll it "
                                                  "later when this page was empty)"}}})


@area.route(Route(
    "get", "/changes", operation_id="listChanges", tags=("emply",),
    summary="The changes the sync applied, in order, after a cursor",
    parameters=(
        {"name": "after", "in": "query", "required": False,
         "description": "a previous page's cursor; without it, the feed's start (what "
                        "retention kept)",
         "schema": {"type": "string"}},
        {"name": "pageSize", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": rq.MAX_PAGE_SIZE,
                    "default": rq.DEFAULT_PAGE_SIZE}}),
    problems=("400", "410"),
    responses={"200": {"description": "a page", "schema": _FEED_PAGE}}))
async def list_changes(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = rq.params(req, frozenset({"after", "pageSize"}))
        size = rq.page_size(params)
        after = rq.cursor(params, "after")
        try:
            async with boundary.open_deps() as deps:
                items, cursor = await changes.read_page(deps.store, after, size,
                                                        boundary.utcnow())
        except changes.BadCursor as exc:
            return problem(400, "Bad request", str(exc), field="after")
        except changes.CursorExpired as exc:
            return problem(410, "Cursor expired", str(exc), field="after",
                           reason="cursor_expired")
        link = f"/api/changes?after={quote(cursor, safe='')}&pageSize={size}"
        return respond(200, {"items": items, "cursor": cursor, "next": link})
    return await rq.guarded(run)
