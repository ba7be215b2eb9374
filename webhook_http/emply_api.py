"""HTTP triggers of the Emply side: the state document, settings, users and employees
(ETags, If-Match, paging, filters), and the OpenAPI document of every route.

Thin as the other handlers: parse, call `shared.app.emply_api`, answer. A refused request
is a 4xx problem body naming the field and changes nothing; values from the request
are never echoed into a message or a log (ids and bodies may carry anything).
See docs/emply-api.md.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import azure.functions as func

from shared.app import boundary, emply_api, emply_pages, emply_roles
from shared.emply import document as emply_doc
from shared.emply import schema as emply_schema
from webhook_http import (
    BadRequest,
    bp,
    failures_as_problems,
    problem,
    respond,
    role_required,
    run_in_progress,
)
from webhook_http import openapi as oa

MAX_DOCUMENT_BYTES = 128 * 1024 * 1024
"""A whole Emply state document (100,000 users is about 40 MB of JSON)."""
MAX_ENTITY_BYTES = 1024 * 1024
"""One entity: Table Storage's own limit for a row."""
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
ALLOWED_PARAMS = frozenset({"code"})
"""Query parameters every route takes: `code` is the function key."""


class _Refused(Exception):
    """A request answered with a problem body (nothing changed)."""

    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__("refused")
        self.response = response


def _bad(field: str, detail: str) -> _Refused:
    return _Refused(problem(400, "Bad request", detail, field=field))


def _params(req: func.HttpRequest, allowed: frozenset[str]) -> Mapping[str, str]:
    for name in req.params:
        if name not in allowed and name not in ALLOWED_PARAMS:
            raise _bad("query", "unknown query parameter; allowed: "
                       + (", ".join(sorted(allowed)) or "none"))
    params: Mapping[str, str] = req.params
    return params


def _body(req: func.HttpRequest, limit: int) -> bytes:
    raw = req.get_body() or b""
    if len(raw) > limit:
        raise _Refused(problem(413, "Body too large",
                               f"body is {len(raw)} bytes; at most {limit} allowed",
                               field="body"))
    return raw


def _json(req: func.HttpRequest, limit: int = MAX_ENTITY_BYTES) -> Any:
    raw = _body(req, limit)
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except BadRequest as exc:
        raise _bad(exc.field, str(exc)) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad("body", "body is not valid JSON") from None
    except RecursionError:
        raise _bad("body", "body is nested too deeply") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest("body", "a field appears more than once in one object")
        out[key] = value
    return out


def _document_problem(exc: emply_doc.DocumentError) -> func.HttpResponse:
    """400 naming every problem's path (the paths and details are built from the schema
    and the body's own ids, JSON-encoded, so nothing raw is echoed)."""
    return problem(400, "Bad request", "the body was refused; nothing was written",
                   field=exc.path or "body", **exc.to_json())


def _entity_id(req: func.HttpRequest) -> str:
    entity_id = str(req.route_params.get("id", ""))
    if not entity_id.strip() or len(entity_id) > 255:
        raise _bad("id", "id must be 1 to 255 characters, not only spaces")
    return entity_id


def _if_match(req: func.HttpRequest) -> str | None:
    header = req.headers.get("If-Match")
    if header is None:
        return None
    value = str(header).strip()
    if not value or len(value) > 200 or "," in value:
        raise _bad("If-Match", "If-Match must be one ETag (as the ETag header gave it) or *")
    return value


def _answer(status: int, body: Any, etag: str | None = None,
            headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    response = respond(status, body)
    if etag is not None:
        response.headers["ETag"] = etag
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


async def _guarded(run: Callable[[], Awaitable[func.HttpResponse]]) -> func.HttpResponse:
    """Map the Emply API's refusals to their status codes."""
    try:
        return await run()
    except _Refused as exc:
        return exc.response
    except emply_doc.DocumentError as exc:
        return _document_problem(exc)
    except emply_api.NotFound as exc:
        return problem(404, "Not found", str(exc), field="id")
    except emply_api.PreconditionFailed:
        return problem(412, "Precondition failed",
                       "the entity changed since that ETag was read (or does not exist); "
                       "GET it again and retry with its ETag", field="If-Match")
    except emply_api.BadCursor as exc:
        return problem(400, "Bad request", str(exc), field="next")
    except boundary.RunInProgress as exc:
        return run_in_progress(exc, "A sync or an import is running")
    except emply_api.ConcurrentChange:
        return problem(409, "Changed meanwhile",
                       "the Emply side changed while this request was written; nothing was "
                       "written, retry", retry_after=1, reason="concurrent_change",
                       temporary=True)


# --- the whole document ------------------------------------------------------------

@bp.route(route="emply", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def export_emply(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = _params(req, frozenset({"pageSize", "next"}))
        if "pageSize" not in params and "next" not in params:
            async with boundary.open_deps() as deps:
                try:
                    await emply_pages.check_one_shot(deps.store)
                except emply_pages.TooLarge as exc:
                    return problem(413, "Too large for one response", str(exc),
                                   field="pageSize")
                body = await emply_api.export_document(deps.store)
            return func.HttpResponse(body, status_code=200, mimetype="application/json")
        size = _page_size(params)
        after = params.get("next")
        if after is not None and (not after or len(after) > 2000):
            raise _bad("next", "next is not a cursor this service handed out")
        try:
            async with boundary.open_deps() as deps:
                found = await emply_pages.page(deps.store, after, size)
        except emply_pages.BadCursor as exc:
            return problem(400, "Bad request", str(exc), field="next")
        cursor = found.pop("next")
        found["next"] = None if cursor is None else (
            f"/api/emply?next={quote(cursor, safe='')}&pageSize={size}")
        return respond(200, found)
    return await _guarded(run)


@bp.route(route="emply", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def import_emply(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = _params(req, frozenset({"replace"}))
        replace = params.get("replace", "false")
        if replace not in ("true", "false"):
            raise _bad("replace", "replace must be true or false")
        raw = _body(req, MAX_DOCUMENT_BYTES)
        async with boundary.open_deps() as deps:
            counts = await emply_api.import_document(deps.store, raw, replace=replace == "true",
                                                     graph=deps.graph)
        return respond(200, {"imported": counts, "replaced": replace == "true"})
    return await _guarded(run)


# --- settings ----------------------------------------------------------------------

@bp.route(route="settings", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def get_settings(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        async with boundary.open_deps() as deps:
            settings, etag = await emply_api.get_settings(deps.store)
        return _answer(200, settings, etag)
    return await _guarded(run)


@bp.route(route="settings", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def put_settings(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        if_match = _if_match(req)
        body = _json(req)
        async with boundary.open_deps() as deps:
            settings, etag = await emply_api.put_settings(deps.store, body, if_match,
                                                          deps.graph)
        return _answer(200, settings, etag)
    return await _guarded(run)


# --- roles -------------------------------------------------------------------------

@bp.route(route="roles", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def list_roles(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        async with boundary.open_deps() as deps:
            roles, etag = await emply_roles.get_roles(deps.store)
        return _answer(200, {"roles": roles}, etag)
    return await _guarded(run)


@bp.route(route="roles", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def put_roles(req: func.HttpRequest) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        if_match = _if_match(req)
        body = _json(req)
        async with boundary.open_deps() as deps:
            roles, etag = await emply_roles.put_roles(deps.store, body, if_match)
        return _answer(200, {"roles": roles}, etag)
    return await _guarded(run)


# --- users and employees -----------------------------------------------------------

_LIST_PARAMS = {"users": frozenset({"pageSize", "next", "status", "source", "linked"}),
                "employees": frozenset({"pageSize", "next", "status"})}
_STATUSES = {"users": emply_doc.USER_STATUSES, "employees": emply_doc.EMPLOYEE_STATUSES}


def _page_size(params: Mapping[str, str]) -> int:
    raw = params.get("pageSize", str(DEFAULT_PAGE_SIZE))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise _bad("pageSize", f"pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def _filters(kind: str, params: Mapping[str, str]) -> tuple[dict[str, str], bool | None]:
    equals: dict[str, str] = {}
    status = params.get("status")
    if status is not None:
        if status not in _STATUSES[kind]:
            raise _bad("status", "status must be one of " + ", ".join(_STATUSES[kind]))
        equals["status"] = status
    source = params.get("source")
    if source is not None:
        if not source.strip() or len(source) > 255:
            raise _bad("source", "source must be 1 to 255 characters")
        equals["source"] = source
    linked = params.get("linked")
    if linked is not None and linked not in ("true", "false"):
        raise _bad("linked", "linked must be true or false")
    return equals, None if linked is None else linked == "true"


async def _list(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        params = _params(req, _LIST_PARAMS[kind])
        size = _page_size(params)
        equals, linked = _filters(kind, params)
        after = params.get("next")
        if after is not None and (not after or len(after) > 2000):
            raise _bad("next", "next is not a cursor this service handed out")
        async with boundary.open_deps() as deps:
            items, cursor = await emply_api.list_page(deps.store, kind, page_size=size,
                                                      after=after, filters=equals,
                                                      linked=linked)
        body: dict[str, Any] = {"items": [{**item, "etag": etag} for item, etag in items],
                                "next": None}
        if cursor is not None:
            query = {k: v for k, v in params.items() if k not in ("next", "code")}
            query["next"] = cursor
            body["next"] = f"/api/{kind}?" + "&".join(
                f"{k}={quote(v, safe='')}" for k, v in sorted(query.items()))
        return respond(200, body)
    return await _guarded(run)


async def _get(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        entity_id = _entity_id(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.get_entity(deps.store, kind, entity_id)
        return _answer(200, item, etag)
    return await _guarded(run)


async def _put(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        entity_id = _entity_id(req)
        if_match = _if_match(req)
        body = _json(req)
        async with boundary.open_deps() as deps:
            item, etag, created = await emply_api.put_entity(deps.store, kind, entity_id,
                                                             body, if_match)
        return _answer(201 if created else 200, item, etag)
    return await _guarded(run)


async def _patch(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        entity_id = _entity_id(req)
        if_match = _if_match(req)
        body = _json(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.patch_entity(deps.store, kind, entity_id, body,
                                                      if_match)
        return _answer(200, item, etag)
    return await _guarded(run)


@bp.route(route="users", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def list_users(req: func.HttpRequest) -> func.HttpResponse:
    return await _list(req, "users")


@bp.route(route="users/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def get_user(req: func.HttpRequest) -> func.HttpResponse:
    return await _get(req, "users")


@bp.route(route="users/{id}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def put_user(req: func.HttpRequest) -> func.HttpResponse:
    return await _put(req, "users")


@bp.route(route="users/{id}", methods=["PATCH"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def patch_user(req: func.HttpRequest) -> func.HttpResponse:
    return await _patch(req, "users")


@bp.route(route="employees", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def list_employees(req: func.HttpRequest) -> func.HttpResponse:
    return await _list(req, "employees")


@bp.route(route="employees/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def get_employee(req: func.HttpRequest) -> func.HttpResponse:
    return await _get(req, "employees")


@bp.route(route="employees/{id}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def put_employee(req: func.HttpRequest) -> func.HttpResponse:
    return await _put(req, "employees")


@bp.route(route="employees/{id}", methods=["PATCH"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def patch_employee(req: func.HttpRequest) -> func.HttpResponse:
    return await _patch(req, "employees")


@bp.route(route="users/{id}/calendars/{cid}", methods=["PUT"],
          auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def put_user_calendar(req: func.HttpRequest) -> func.HttpResponse:
    """R13: the user enables or disables one of its calendars."""
    async def run() -> func.HttpResponse:
        _params(req, frozenset())
        user_id = _entity_id(req)
        calendar_id = str(req.route_params.get("cid", ""))
        if not calendar_id.strip() or len(calendar_id) > 255:
            raise _bad("cid", "cid must be 1 to 255 characters, not only spaces")
        if_match = _if_match(req)
        body = _json(req)
        async with boundary.open_deps() as deps:
            item, etag = await emply_api.set_calendar(deps.store, user_id, calendar_id, body,
                                                      if_match)
        return _answer(200, item, etag)
    return await _guarded(run)


@bp.route(route="outbound-events/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def get_outbound_event(req: func.HttpRequest) -> func.HttpResponse:
    return await _get(req, "outboundEvents")


@bp.route(route="outbound-events/{id}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def put_outbound_event(req: func.HttpRequest) -> func.HttpResponse:
    """R15: an event Emply created, for the sync to create in the user's M365 calendar."""
    return await _put(req, "outboundEvents")


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return respond(200, oa.document())


# --- the OpenAPI declarations of the routes above ----------------------------------

def _declare() -> None:
    etag = {"ETag": {"description": "the entity's ETag, for If-Match",
                     "schema": {"type": "string"}}}
    if_match = {"name": "If-Match", "in": "header", "required": False,
                "description": "write only if the entity's ETag is this one (or * : it "
                               "exists); else 412", "schema": {"type": "string"}}
    section_page = oa.schema("EmplyPage", {
        "type": "object", "required": ["next"],
        "description": "one page of the document: the first holds settings and roles, "
                       "each later one a section's entities",
        "properties": {
            "settings": {"anyOf": [oa.ref("#/components/schemas/Settings"),
                                   {"type": "null"}]},
            **{kind: {"type": "array", "items": oa.ref(f"#/components/schemas/{name}")}
               for kind, name in emply_schema.NAMES.items() if kind != "settings"},
            "next": {"type": ["string", "null"],
                     "description": "the next page's URL; null after the last"}}})
    oa.operation("/emply", "get", operation_id="exportEmply", tags=("emply",),
                 summary="The whole Emply state document (as `emply-sync emply export`), "
                         "or with pageSize a page of it",
                 parameters=[
                     {"name": "pageSize", "in": "query", "required": False,
                      "description": "page the document (required above "
                                     f"{emply_pages.ONE_SHOT_MAX} users and employees)",
                      "schema": {"type": "integer", "minimum": 1,
                                 "maximum": MAX_PAGE_SIZE}},
                     {"name": "next", "in": "query", "required": False,
                      "description": "the cursor of a previous page's next link",
                      "schema": {"type": "string"}}],
                 problems=("400", "413"),
                 responses={"200": {"description": "the document, or a page of it",
                                    "schema": {"anyOf": [
                                        oa.ref("#/components/schemas/EmplyDocument"),
                                        oa.ref(section_page)]}}})
    counts = oa.schema("ImportResult", {
        "type": "object", "required": ["imported", "replaced"],
        "properties": {"imported": {"type": "object",
                                    "additionalProperties": {"type": "integer"}},
                       "replaced": {"type": "boolean"}}})
    oa.operation("/emply", "put", operation_id="importEmply", tags=("emply",),
                 summary="Import the Emply state document (all or nothing)",
                 parameters=[{"name": "replace", "in": "query", "required": False,
                              "schema": {"type": "string", "enum": ["true", "false"]}}],
                 request={"required": True, **oa.json_body(
                     oa.ref("#/components/schemas/EmplyDocument"))},
                 responses={"200": {"description": "imported", "schema": oa.ref(counts)}},
                 problems=("400", "409", "413"))
    settings = oa.ref("#/components/schemas/Settings")
    oa.operation("/settings", "get", operation_id="getSettings", tags=("emply",),
                 summary="The settings", problems=("400", "404"),
                 responses={"200": {"description": "the settings", "schema": settings,
                                    "headers": etag}})
    oa.operation("/settings", "put", operation_id="putSettings", tags=("emply",),
                 summary="Replace the settings", parameters=[if_match],
                 request={"required": True, **oa.json_body(settings)},
                 responses={"200": {"description": "written", "schema": settings,
                                    "headers": etag}},
                 problems=("400", "409", "412", "413"))
    roles = oa.schema("RoleList", {
        "type": "object", "required": ["roles"],
        "properties": {"roles": {"type": "array",
                                 "items": oa.ref("#/components/schemas/Role")}}})
    oa.operation("/roles", "get", operation_id="listRoles", tags=("emply",),
                 summary="Every role", responses={"200": {"description": "the roles",
                                                          "schema": oa.ref(roles),
                                                          "headers": etag}})
    oa.operation("/roles", "put", operation_id="putRoles", tags=("emply",),
                 summary="Replace the list of roles (a role still referenced by the "
                         "settings or a user cannot be removed)",
                 parameters=[if_match], request={"required": True, **oa.json_body(
                     oa.ref(roles))},
                 responses={"200": {"description": "written", "schema": oa.ref(roles),
                                    "headers": etag}},
                 problems=("400", "409", "412", "413"))
    for kind, name in (("users", "User"), ("employees", "Employee")):
        entity = oa.ref(f"#/components/schemas/{name}")
        with_etag = oa.ref(f"#/components/schemas/{name}Item")
        page = oa.schema(f"{name}Page", {
            "type": "object", "required": ["items", "next"],
            "properties": {"items": {"type": "array", "items": with_etag},
                           "next": {"type": ["string", "null"],
                                    "description": "the next page's URL; null at the end"}}})
        params: list[dict[str, Any]] = [
            {"name": "pageSize", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
                        "default": DEFAULT_PAGE_SIZE}},
            {"name": "next", "in": "query", "required": False,
             "description": "the cursor of a previous page's next link",
             "schema": {"type": "string"}},
            {"name": "status", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(_STATUSES[kind])}}]
        if kind == "users":
            params += [{"name": "source", "in": "query", "required": False,
                        "schema": {"type": "string"}},
                       {"name": "linked", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": ["true", "false"]}}]
        oa.operation(f"/{kind}", "get", operation_id=f"list{name}s", tags=("emply",),
                     summary=f"A page of {kind}", parameters=params,
                     responses={"200": {"description": "a page", "schema": oa.ref(page)}})
        path_id = {"name": "id", "in": "path", "required": True,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
        oa.operation(f"/{kind}/{{id}}", "get", operation_id=f"get{name}", tags=("emply",),
                     summary=f"One {kind[:-1]}", parameters=[path_id],
                     problems=("400", "404"),
                     responses={"200": {"description": "found", "schema": entity,
                                        "headers": etag}})
        written = {"description": "written", "schema": entity, "headers": etag}
        oa.operation(f"/{kind}/{{id}}", "put", operation_id=f"put{name}", tags=("emply",),
                     summary=f"Create or replace one {kind[:-1]}",
                     parameters=[path_id, if_match],
                     request={"required": True, **oa.json_body(
                         oa.ref(f"#/components/schemas/{name}Body"))},
                     responses={"200": written, "201": {**written, "description": "created"}},
                     problems=("400", "409", "412", "413"))
        oa.operation(f"/{kind}/{{id}}", "patch", operation_id=f"patch{name}",
                     tags=("emply",), summary=f"Merge-patch one {kind[:-1]} (RFC 7396)",
                     parameters=[path_id, if_match],
                     request={"required": True, **oa.json_body(
                         oa.ref(f"#/components/schemas/{name}Patch"))},
                     responses={"200": written},
                     problems=("400", "404", "409", "412", "413"))
    _declare_calendars_and_outbound(etag, if_match)
    oa.operation("/openapi.json", "get", operation_id="openapi", tags=("meta",),
                 summary="This document", problems=(),
                 responses={"200": {"description": "OpenAPI 3.1",
                                    "schema": {"type": "object"}}})



def _declare_calendars_and_outbound(etag: dict[str, Any], if_match: dict[str, Any]) -> None:
    path_id = {"name": "id", "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
    cid = {**path_id, "name": "cid"}
    calendar = oa.ref("#/components/schemas/Calendar")
    choice = oa.schema("CalendarChoice", {
        "type": "object", "required": ["enabled"], "additionalProperties": False,
        "properties": {"enabled": {"type": "boolean"}}})
    oa.operation("/users/{id}/calendars/{cid}", "put", operation_id="putUserCalendar",
                 tags=("emply",),
                 summary="Enable or disable one of the user's calendars (R13; the default "
                         "calendar cannot be disabled)",
                 parameters=[path_id, cid, if_match],
                 request={"required": True, **oa.json_body(oa.ref(choice))},
                 responses={"200": {"description": "written", "schema": calendar,
                                    "headers": etag}},
                 problems=("400", "404", "409", "412", "413"))
    event = oa.ref("#/components/schemas/OutboundEvent")
    oa.operation("/outbound-events/{id}", "get", operation_id="getOutboundEvent",
                 tags=("emply",), summary="One outbound event, with its graphId and status",
                 parameters=[path_id], problems=("400", "404"),
                 responses={"200": {"description": "found", "schema": event,
                                    "headers": etag}})
    written = {"description": "written", "schema": event, "headers": etag}
    oa.operation("/outbound-events/{id}", "put", operation_id="putOutboundEvent",
                 tags=("emply",),
                 summary="Create or replace an outbound event (R15: created once in the "
                         "user's default M365 calendar by the next run)",
                 parameters=[path_id, if_match],
                 request={"required": True, **oa.json_body(
                     oa.ref("#/components/schemas/OutboundEventBody"))},
                 responses={"200": written, "201": {**written, "description": "created"}},
                 problems=("400", "409", "412", "413"))


_declare()
