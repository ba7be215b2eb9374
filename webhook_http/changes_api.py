"""HTTP trigger of the change feed: `GET /api/changes?after=CURSOR[&pageSize=N]`.

Every change the sync applied, in order (`shared.run.change_feed`), a page at a time with
an opaque cursor and a `next` link; caught up, the page is empty and the cursor the
same. A cursor past the feed's retention is a 410 problem saying what to do.
See docs/emply-api.md "Change feed".
"""

from __future__ import annotations

from urllib.parse import quote

import azure.functions as func

from shared.app import boundary, changes
from webhook_http import bp, failures_as_problems, problem, respond, role_required
from webhook_http import openapi as oa
from webhook_http.emply_api import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, _bad, _guarded, _params
from webhook_http.emply_api import _page_size as page_size


@bp.route(route="changes", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def list_changes(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = _params(req, frozenset({"after", "pageSize"}))
        size = page_size(params)
        after = params.get("after")
        if after is not None and (not after or len(after) > 2000):
            raise _bad("after", "after is not a cursor this service handed out")
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
    return await _guarded(run)


def _declare() -> None:
    nullable = {"type": ["string", "null"]}
    change = oa.schema("ChangeEntry", {
        "type": "object", "required": ["kind", "userId", "entraId", "reason", "before",
                                       "after", "runId", "at"],
        "properties": {
            "kind": {"type": "string", "description": "what was done (README reason "
                                                      "codes: create_user, link_user, ...)"},
            "userId": nullable, "entraId": nullable, "employeeId": {"type": "string"},
            "reason": {"type": "string"}, "rule": {"type": "string"},
            "before": {"type": "object"}, "after": {"type": "object"},
            "message": {"type": "string"},
            "runId": {"type": "string", "description": "the run that applied it"},
            "at": {"type": "string", "description": "when the run recorded it (UTC)"}}})
    feed_page = oa.schema("ChangePage", {
        "type": "object", "required": ["items", "cursor", "next"],
        "properties": {
            "items": {"type": "array", "items": oa.ref(change)},
            "cursor": {"type": "string", "description": "the position after this page; "
                                                        "the same when caught up"},
            "next": {"type": "string", "description": "the next page's URL (poll it "
                                                      "later when this page was empty)"}}})
    oa.operation("/changes", "get", operation_id="listChanges", tags=("emply",),
                 summary="The changes the sync applied, in order, after a cursor",
                 parameters=[
                     {"name": "after", "in": "query", "required": False,
                      "description": "a previous page's cursor; without it, the feed's "
                                     "start (what retention kept)",
                      "schema": {"type": "string"}},
                     {"name": "pageSize", "in": "query", "required": False,
                      "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
                                 "default": DEFAULT_PAGE_SIZE}}],
                 problems=("400", "410"),
                 responses={"200": {"description": "a page", "schema": oa.ref(feed_page)}})


_declare()
