"""What happens to every Graph request before its handler: routing, auth, faults.

Routes are matched on templates (`/users/{id}`), in table order, so a literal
segment (`/users/delta`) must come before the template that would also match it.
A path that matches with the wrong method is a 405, an unknown path a 400 naming
the segment, as Graph answers.

Injected faults are matched against the route template, the exact path, or `*`;
a fault with `times` left is consumed on use and dropped when spent, and `-1`
never runs out. Fault responses carry the headers clients act on (`Retry-After`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from graph_simulator.protocol import GraphError, Req, Resp
from shared.config import SIMULATOR_TOKEN

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

Handler = Callable[["Simulator", Req], Resp]


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


def compile_route(method: str, template: str, handler: Handler) -> Route:
    parts = re.split(r"(\{[a-zA-Z_]+\})", template)
    regex = "".join(
        f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
    )
    return Route(method, template, re.compile(f"^{regex}/?$"), handler)


def match(
    routes: list[Route], method: str, path: str
) -> tuple[Route | None, dict[str, str], bool]:
    """(route, params, path_known) — path_known is True when only the method is wrong."""
    path_known = False
    for route in routes:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method:
            return route, {k: unquote(v) for k, v in found.groupdict().items()}, True
        path_known = True
    return None, {}, path_known


def no_route(req: Req, path_known: bool) -> GraphError:
    if path_known:
        return GraphError(405, "Request_BadRequest", f"Method {req.method} is not allowed here.")
    segment = req.path.strip("/").split("/")[-1] if req.path.strip("/") else ""
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def authenticate(req: Req) -> None:
    """Accept only `Bearer SIMULATOR_TOKEN`, failing with Graph's 401 bodies."""
    header = req.headers.get("authorization")
    scheme, _, token = (header or "").partition(" ")
    if header and scheme.lower() == "bearer" and token.strip() == SIMULATOR_TOKEN:
        return
    message = (
        "Access token validation failure. Invalid audience."
        if header
        else "Access token is empty."
    )
    raise GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
    )


@dataclasses.dataclass
class Fault:
    method: str  # upper case, or "*"
    path: str
    status: int
    times: int  # -1 = always
    retry_after: int | None
    in_batch: bool = False
    """Only for items inside a `$batch` (a per-item 429, the batch itself answers 200)."""


def take_fault(
    faults: list[Fault], method: str, template: str | None, path: str, *,
    in_batch: bool = False,
) -> tuple[Fault | None, list[Fault]]:
    """(the first fault that applies, the faults still armed after using it)."""
    for fault in faults:
        if fault.method not in ("*", method) or (fault.in_batch and not in_batch):
            continue
        if fault.path not in ("*", template, path, path.rstrip("/")):
            continue
        if fault.times == 0:
            continue
        if fault.times > 0:
            fault.times -= 1
        return fault, [f for f in faults if f.times != 0]
    return None, faults


def fault_response(fault: Fault) -> Resp:
    """The Graph error an injected status stands for, with Graph's code for it."""
    headers: dict[str, str] = {}
    if fault.status == 429:
        headers["Retry-After"] = str(fault.retry_after if fault.retry_after is not None else 1)
        code, message = "TooManyRequests", "Too many requests."
    elif fault.status == 503:
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        code, message = "serviceNotAvailable", "Service unavailable. Try again later."
    elif fault.status == 504:
        code, message = "UnknownError", "Gateway timeout."
    elif fault.status == 410:
        code, message = "syncStateNotFound", "The sync state is not found (injected)."
    else:
        code, message = "generalException", f"Injected failure {fault.status}."
    return GraphError(fault.status, code, message, headers).response()
