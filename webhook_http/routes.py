"""Route declarations: one `Area` (an Azure Functions Blueprint) per HTTP area, and a
`Route` beside each handler saying what the OpenAPI document says of it.

`Area.route(Route(...))` does three things at once, so they cannot drift apart: it
registers the handler on the area's Blueprint (route, method, the Functions auth
level), wraps it in the one failure and caller check every route of that kind makes
(`Auth`), and keeps the declaration for `webhook_http.openapi`. Nothing registers
itself by being imported elsewhere: `function_app.py` registers each area's Blueprint,
and the OpenAPI area lists the areas it describes.

Invariants: every route but the anonymous probe needs a function key (the host checks
it); every `Auth.CALLER` route makes the same app-role check (`webhook_http.caller`)
before its handler runs; a classified failure (`shared.errors`) is a problem body, a
bug propagates (the host's 500, its traceback in the logs).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import azure.functions as func

from shared import errors, telemetry
from webhook_http import answers, caller

Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
log = logging.getLogger("emply_sync.http")


class Auth(enum.Enum):
    """Who may call a route."""

    CALLER = "caller"
    """A function key, and with Entra ID authentication on the app role (Emply,
    operators)."""
    PROBE = "probe"
    """Anonymous: a health probe carries no key and learns up or down only."""
    GRAPH = "graph"
    """A function key in the URL Graph calls; Graph sends no Entra token, so no app role:
    each notification's secret clientState authenticates it."""


@dataclasses.dataclass(frozen=True)
class Route:
    """One route as the OpenAPI document describes it.

    `responses`: status -> {"description", "schema"?, "headers"?, "media"?};
    `problems`: the error statuses answered with a problem body (503 always)."""

    method: str
    path: str
    """The OpenAPI path under `/api`, e.g. "/users/{id}" (the Functions route without
    its leading slash)."""
    operation_id: str
    summary: str
    responses: Mapping[str, Mapping[str, Any]]
    problems: tuple[str, ...] = ("400",)
    parameters: tuple[Mapping[str, Any], ...] = ()
    request: Mapping[str, Any] | None = None
    tags: tuple[str, ...] = ()
    auth: Auth = Auth.CALLER


class Area:
    """One HTTP area: its Blueprint, its routes' declarations and component schemas."""

    def __init__(self, name: str) -> None:
        self.name = name
        # azure-functions does not annotate Blueprint.__init__ (its decorators are typed).
        self.bp = func.Blueprint()  # type: ignore[no-untyped-call]
        self.routes: list[Route] = []
        self.schemas: dict[str, dict[str, Any]] = {}

    def schema(self, name: str, value: dict[str, Any]) -> dict[str, str]:
        """Declare a component schema of this area; returns its `$ref`."""
        self.schemas[name] = value
        return {"$ref": f"#/components/schemas/{name}"}

    def route(self, spec: Route) -> Callable[[Handler], Handler]:
        """Register the decorated handler as `spec` says (see the module docstring)."""

        def register(handler: Handler) -> Handler:
            checked = handler if spec.auth is not Auth.CALLER else role_required(handler)
            wrapped = failures_as_problems(checked)
            level = func.AuthLevel.ANONYMOUS if spec.auth is Auth.PROBE \
                else func.AuthLevel.FUNCTION
            self.bp.route(route=spec.path.removeprefix("/"), methods=[spec.method.upper()],
                          auth_level=level)(wrapped)
            self.routes.append(spec)
            return wrapped

        return register


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
            # The classified message says what is down, never where: no traceback (the
            # exception's own text names the host and port).
            log.warning("emply_sync.http_dependency_failed", extra={
                "reason": failure.reason, "error": type(exc).__name__,
                "detail": failure.message})
            return answers.failure_problem(failure)
        finally:
            telemetry.flush()

    return wrapper


def role_required(handler: Handler) -> Handler:
    """With Entra ID authentication on, the caller's token must carry the app role
    (`webhook_http.caller`): 403 otherwise, before the handler runs."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        refused = caller.refusal(req.headers)
        if refused is not None:
            log.warning("emply_sync.http_caller_refused", extra={"method": req.method})
            return answers.problem(403, "Forbidden", refused)
        return await handler(req)

    return wrapper
