"""HTTP trigger: the manual sync Emply calls, run history, explain (function key), health.

`POST /api/sync` only queues the run (`shared.app.manual_runs`; the queue trigger in
`sync_queue` runs it) and answers 202 with where to poll: Azure's front end cuts a
request at 230 s, which a large run outlasts. `GET /api/health` is anonymous for
probes and says up or down, nothing more; `GET /api/health/details` (function key)
names what is down.

Handlers are thin: they parse and answer; `shared.run.pipeline` does the work and
`shared.errors` names what failed. A dependency that is down is a 503 problem body
with the reason code (what is down, never where); a bug propagates (the host's 500,
with the traceback in the logs), it is not dressed up as a failure.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import azure.functions as func

from shared import errors, telemetry
from shared.app import boundary, manual_runs
from webhook_http import caller

MAX_BODY_BYTES = 4096
POLL_AFTER_SECONDS = 5
"""Retry-After on a 202: how soon polling the run is worth it."""
BUSY_RETRY_AFTER_SECONDS = 30
"""Retry-After on a 409 while a run is queued or running: a run takes from seconds to
minutes and how long is not known in advance; polling the run tells when it is done."""
UNAVAILABLE_RETRY_AFTER_SECONDS = 30
"""Retry-After on a 503 whose cause is temporary (storage or Graph down or throttling)."""
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}", re.ASCII)
"""`boundary.new_run_id`'s form."""
SYNC_FIELDS: Mapping[str, tuple[type, ...]] = {"dryRun": (bool,),
                                               "approveDeactivations": (int, str),
                                               "approveDeletions": (str,)}
log = logging.getLogger("emply_sync.http")
# azure-functions does not annotate Blueprint.__init__ (its decorators are typed).
bp = func.Blueprint()  # type: ignore[no-untyped-call]


class BadRequest(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


def respond(status: int, body: Any) -> func.HttpResponse:
    mimetype = "application/problem+json" if status >= 400 else "application/json"
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype=mimetype)


def problem(status: int, title: str, detail: str, *, retry_after: int | None = None,
            **extra: Any) -> func.HttpResponse:
    response = respond(status, {"type": "about:blank", "title": title, "status": status,
                                "detail": detail, **extra})
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def run_in_progress(exc: boundary.RunInProgress, title: str) -> func.HttpResponse:
    """409 naming the run that holds the way (R1), with when to try again."""
    return problem(409, title, str(exc), retry_after=BUSY_RETRY_AFTER_SECONDS,
                   runId=exc.running_run_id, trigger=exc.trigger, startedAt=exc.started_at)


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise BadRequest(key, f"field {key!r} appears more than once")
        seen[key] = value
    return seen


def _describe(value: Any) -> str:
    """A value for an error message: scalars shown (shortened), containers by kind only
    (the repr of a deeply nested list is itself a RecursionError)."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_sync_body(raw: bytes) -> dict[str, Any]:
    """`{"dryRun": bool, "approveDeactivations": n | "N:DIGEST" | "DIGEST"}`, both optional;
    anything else is refused. The approval comes back as a `boundary.Approval`."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("body", f"body is {len(raw)} bytes; at most {MAX_BODY_BYTES} allowed")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("body", f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # a few KB of "[[[[…" nest deeper than the parser goes
        raise BadRequest("body", "body is nested too deeply; expected a flat JSON object") \
            from exc
    if not isinstance(body, dict):
        raise BadRequest("body", "body must be a JSON object")
    for key, value in body.items():
        expected = SYNC_FIELDS.get(key)
        if expected is None:
            raise BadRequest(key, f"unknown field {key!r}; allowed: {', '.join(SYNC_FIELDS)}")
        # bool is an int in Python: refuse true as a count and 1 as a flag.
        if type(value) not in expected:
            kinds = " or ".join("a string" if t is str else f"a {t.__name__}" for t in expected)
            raise BadRequest(key, f"{key} must be {kinds}, got {_describe(value)}")
    approve = body.get("approveDeactivations")
    if isinstance(approve, int) and approve < 0:
        raise BadRequest("approveDeactivations", "approveDeactivations must be ≥ 0")
    _parse_approval(body, "approveDeactivations", "a count N, \"N:DIGEST\" or \"DIGEST\" "
                    "(12 hex digits, shown with the held deactivations)")
    _parse_approval(body, "approveDeletions",
                    "\"N:DIGEST\" (shown with the held Entra deletions)")
    return body


def _parse_approval(body: dict[str, Any], key: str, expected: str) -> None:
    """`body[key]`, when present, as a `boundary.Approval` (R7); a BadRequest otherwise."""
    value = body.get(key)
    if value is None:
        return
    try:
        body[key] = boundary.Approval.parse(str(value))
    except ValueError:
        raise BadRequest(key, f"{key} must be {expected}, got {_describe(value)}") from None


def failure_problem(failure: errors.SyncFailure) -> func.HttpResponse:
    """503 for a dependency that is down or refusing (what, not where), 409 for a missing
    configuration; the reason code and whether retrying later helps."""
    if isinstance(failure, errors.NotConfigured):
        return problem(409, "Not configured", failure.message, reason=failure.reason,
                       temporary=False)
    return problem(503, "A dependency is unavailable", failure.message,
                   retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS if failure.temporary else None,
                   reason=failure.reason, temporary=failure.temporary)


Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def failures_as_problems(handler: Handler) -> Handler:
    """Configure telemetry first; a classified failure becomes a problem body, a bug
    propagates; buffered telemetry is flushed before the answer goes out."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        telemetry.configure()
        try:
            return await handler(req)
        except Exception as exc:
            failure = errors.classify(exc)
            if failure is None:
                # Not the URL: its query string carries the function key.
                log.exception("emply_sync.bug", extra={"method": req.method})
                raise
            log.warning("emply_sync.http_dependency_failed",
                        extra={"reason": failure.reason}, exc_info=exc)
            return failure_problem(failure)
        finally:
            telemetry.flush()

    return wrapper


def parse_wait(params: Mapping[str, str]) -> int:
    """`?wait=N`: whole seconds from 0 to `manual_runs.MAX_WAIT_SECONDS`."""
    raw = params.get("wait", "0")
    if not (raw.isascii() and raw.isdigit()) or int(raw) > manual_runs.MAX_WAIT_SECONDS:
        raise BadRequest("wait", "wait must be a whole number of seconds from 0 to "
                         f"{manual_runs.MAX_WAIT_SECONDS}")
    return int(raw)


def role_required(handler: Handler) -> Handler:
    """With Entra ID authentication on, the caller's token must carry the app role
    (`webhook_http.caller`); every route but the anonymous health probe has this."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        refused = caller.refusal(req.headers)
        if refused is not None:
            log.warning("emply_sync.http_caller_refused", extra={"method": req.method})
            return problem(403, "Forbidden", refused)
        return await handler(req)

    return wrapper


@bp.route(route="sync", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def manual_sync(req: func.HttpRequest) -> func.HttpResponse:
    try:
        wait = parse_wait(req.params)
        body = parse_sync_body(req.get_body() or b"")
    except BadRequest as exc:
        return problem(400, "Bad request", str(exc), field=exc.field)
    try:
        queued = await manual_runs.request_run(
            dry_run=bool(body.get("dryRun", False)),
            approve=body.get("approveDeactivations"),
            approve_deletions=body.get("approveDeletions"),
        )
    except boundary.RunInProgress as exc:
        return run_in_progress(exc, "A sync is already queued or running")
    run_id = queued["runId"]
    if wait:
        report = await manual_runs.wait_for(run_id, wait)
        if report is not None:
            # 200 whatever the outcome: the report says succeeded, needs_approval or failed.
            return respond(200, report)
    location = f"/api/sync/runs/{run_id}"
    response = respond(202, {"runId": run_id, "status": queued["status"],
                             "queuedAt": queued["queuedAt"], "location": location})
    response.headers["Location"] = location
    response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return response


@bp.route(route="sync/runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    raw = req.params.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 200:
        return problem(400, "Bad request", "limit must be a whole number from 1 to 200",
                       field="limit")
    async with boundary.open_deps() as deps:
        return respond(200, {"runs": await deps.store.list_runs(int(raw))})


@bp.route(route="sync/runs/{runId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def get_run(req: func.HttpRequest) -> func.HttpResponse:
    run_id = req.route_params.get("runId", "")
    if not RUN_ID.fullmatch(run_id):
        # Not a run id this service makes: no such run, and the input is not echoed
        # (it may carry quotes, OData or path characters meant for something else).
        return problem(404, "Not found", "no such run; a run id looks like "
                       "20261202T013000Z-1a2b3c4d", field="runId")
    async with boundary.open_deps() as deps:
        report = await deps.store.get_run(run_id)
    if report is None:
        return problem(404, "Not found", f"no run {run_id}", field="runId")
    return respond(200, report)


@bp.route(route="users/{user}/explain", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def explain_user(req: func.HttpRequest) -> func.HttpResponse:
    key = req.route_params.get("user", "")
    try:
        async with boundary.open_deps() as deps:
            return respond(200, await boundary.explain_user(deps, key))
    except boundary.UserNotFound as exc:
        return problem(404, "Not found", str(exc), field="user")
    except boundary.AmbiguousUser as exc:
        return problem(400, "Bad request", str(exc), field="user")


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@failures_as_problems
async def health(req: func.HttpRequest) -> func.HttpResponse:
    # Anonymous, for probes (App Service health check, a load balancer): up or down and
    # nothing else, no reason, no last run. Operators read /api/health/details.
    status = await boundary.health()
    up = status["status"] == "healthy"
    response = func.HttpResponse(json.dumps({"status": "up" if up else "down"}),
                                 status_code=200 if up else 503, mimetype="application/json")
    if not up:
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    return response


@bp.route(route="health/details", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@failures_as_problems
@role_required
async def health_details(req: func.HttpRequest) -> func.HttpResponse:
    status = await boundary.health()
    response = respond(200 if status["status"] == "healthy" else 503, status)
    if response.status_code == 503:
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    return response


# The Emply side's routes (and GET /api/openapi.json) register on `bp` when imported;
# last, as they use the helpers above.
from webhook_http import changes_api as _changes_api  # noqa: E402, F401
from webhook_http import emply_api as _emply_api  # noqa: E402, F401
from webhook_http import notifications as _notifications  # noqa: E402, F401
from webhook_http import outbound_delete as _outbound_delete  # noqa: E402, F401
from webhook_http import user_sync as _user_sync  # noqa: E402, F401
