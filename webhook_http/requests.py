"""Reading a request of the Emply API: query parameters, bodies, ids, If-Match, paging;
and the Emply API's refusals mapped to their status codes (`guarded`).

Every reader raises `answers.Refused` (a 4xx problem naming the field) for what it
refuses; `guarded` turns that, and the refusals `shared.app.emply_api` raises, into
the answer. Values from the request are never echoed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import azure.functions as func

from shared.app import boundary, emply_api
from shared.emply import document as emply_doc
from shared.emply import gate
from webhook_http import answers
from webhook_http.answers import bad, problem

MAX_ENTITY_BYTES = 1024 * 1024
"""One entity: Table Storage's own limit for a row."""
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_CURSOR_CHARS = 2000
ALLOWED_PARAMS = frozenset({"code"})
"""Query parameters every route takes: `code` is the function key."""


def params(req: func.HttpRequest, allowed: frozenset[str]) -> Mapping[str, str]:
    """The query parameters, refusing any the route does not take and any value that is
    not plain text (`gate.text`: control characters, lone surrogates, oversized)."""
    for name, value in req.params.items():
        if name not in allowed and name not in ALLOWED_PARAMS:
            raise bad("query", "unknown query parameter; allowed: "
                      + (", ".join(sorted(allowed)) or "none"))
        if name in allowed:
            gate.text(value, name, max_chars=MAX_CURSOR_CHARS)
    found: Mapping[str, str] = req.params
    return found


def body(req: func.HttpRequest, limit: int) -> bytes:
    """The raw body, at most `limit` bytes (413 beyond)."""
    raw = req.get_body() or b""
    if len(raw) > limit:
        raise answers.Refused(problem(413, "Body too large",
                                      f"body is {len(raw)} bytes; at most {limit} allowed",
                                      field="body"))
    return raw


def json_body(req: func.HttpRequest, limit: int = MAX_ENTITY_BYTES) -> Any:
    """The body as JSON through the input gate (`shared.emply.gate`): malformed, a name
    given twice, NaN, an integer beyond I-JSON's range, a lone surrogate or nesting too
    deep is a 400 naming the field."""
    try:
        return gate.parse_json(body(req, limit), "body")
    except gate.GateError as exc:
        raise bad(exc.field or "body", exc.detail) from None


def route_id(req: func.HttpRequest, name: str = "id") -> str:
    """A route value naming an entity: 1 to 255 characters, not only spaces, an
    identifier by the gate's rules (NFC, as stored; no invisible character)."""
    value = str(req.route_params.get(name, ""))
    if not value.strip() or len(value) > 255:
        raise bad(name, f"{name} must be 1 to 255 characters, not only spaces")
    try:
        return gate.identifier(value, name)
    except gate.GateError as exc:
        raise bad(name, f"{name} {exc.detail}") from None


def if_match(req: func.HttpRequest) -> str | None:
    header = req.headers.get("If-Match")
    if header is None:
        return None
    value = str(header).strip()
    if not value or len(value) > 200 or "," in value:
        raise bad("If-Match", "If-Match must be one ETag (as the ETag header gave it) or *")
    return value


def page_size(found: Mapping[str, str]) -> int:
    raw = found.get("pageSize", str(DEFAULT_PAGE_SIZE))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad("pageSize", f"pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def cursor(found: Mapping[str, str], name: str) -> str | None:
    """A paging cursor as given (None when absent); blank or oversized is a 400."""
    value = found.get(name)
    if value is not None and (not value or len(value) > MAX_CURSOR_CHARS):
        raise bad(name, f"{name} is not a cursor this service handed out")
    return value


def answer(status: int, item: Any, etag: str | None = None) -> func.HttpResponse:
    """A JSON answer with the entity's ETag header."""
    return answers.respond(status, item, None if etag is None else {"ETag": etag})


def document_problem(exc: emply_doc.DocumentError) -> func.HttpResponse:
    """400 naming every problem's path (the paths and details are built from the schema
    and the body's own ids, JSON-encoded, so nothing raw is echoed)."""
    return problem(400, "Bad request", "the body was refused; nothing was written",
                   field=exc.path or "body", **exc.to_json())


async def guarded(run: Callable[[], Awaitable[func.HttpResponse]]) -> func.HttpResponse:
    """Map the Emply API's refusals to their status codes."""
    try:
        return await run()
    except answers.Refused as exc:
        return exc.response
    except gate.GateError as exc:  # a cursor, value or body the gate refused
        return problem(400, "Bad request", exc.detail, field=exc.field or "body")
    except emply_doc.DocumentError as exc:
        return document_problem(exc)
    except emply_api.NotFound as exc:
        return problem(404, "Not found", str(exc), field="id")
    except emply_api.PreconditionFailed:
        return problem(412, "Precondition failed",
                       "the entity changed since that ETag was read (or does not exist); "
                       "GET it again and retry with its ETag", field="If-Match")
    except emply_api.BadCursor as exc:
        return problem(400, "Bad request", str(exc), field="next")
    except boundary.RunInProgress as exc:
        return answers.run_in_progress(exc, "A sync or an import is running")
    except emply_api.OutcomeUnknown as exc:
        # The one 5xx that does not mean "nothing was written": it says so, and how to tell.
        return problem(503, "Outcome unknown", str(exc),
                       retry_after=answers.UNAVAILABLE_RETRY_AFTER_SECONDS,
                       reason="storage_unavailable", temporary=True, written="unknown")
    except emply_api.ConcurrentChange:
        return problem(409, "Changed meanwhile",
                       "the Emply side changed while this request was written; nothing was "
                       "written, retry", retry_after=1, reason="concurrent_change",
                       temporary=True)
