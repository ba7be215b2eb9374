"""Outlook's per-mailbox concurrency limit: at most 4 requests for one mailbox at a time.

Graph answers a fifth concurrent request for the same mailbox (calendars, events,
calendarView) with 429 `ApplicationThrottled` ("MailboxConcurrency") and a
`Retry-After`. A request counts from its arrival until its answer (the simulator's
configured latency is when requests overlap); the items of a `$batch` run side by
side, so they count together with each other and with whatever else is in flight
for their mailbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from graph_simulator.protocol import GraphError, Req

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

MAILBOX_CONCURRENCY = 4
RETRY_AFTER_SECONDS = 1
_MAILBOX_SEGMENTS = ("/calendar", "/calendars", "/calendarView", "/events")


def mailbox_of(sim: Simulator, method: str, path: str) -> str | None:
    """The user id whose mailbox the request reads or writes, or None."""
    route, params, _ = sim.match(method, path)
    if route is None or not route.template.startswith("/users/{id}/") or not any(
            route.template[len("/users/{id}"):].startswith(s) for s in _MAILBOX_SEGMENTS):
        return None
    raw = params["id"]
    return sim.current.find_user(raw) or raw.casefold()


def mailboxes_of(sim: Simulator, requests: Iterable[Req]) -> list[str]:
    """The mailboxes these requests occupy (one entry per request that has one)."""
    found = (mailbox_of(sim, r.method, r.path) for r in requests)
    return [m for m in found if m is not None]


def check(concurrent: int) -> None:
    """Refuse a request that would make `concurrent` requests for its mailbox."""
    if concurrent > MAILBOX_CONCURRENCY:
        raise GraphError(
            429, "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)})


def batch_items(body: Any) -> list[dict[str, Any]]:
    """The well-formed items of a `$batch` body (for counting; the batch checks them)."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list):
        return []
    return [i for i in requests if isinstance(i, dict) and isinstance(i.get("url"), str)
            and isinstance(i.get("method"), str) and isinstance(i.get("headers") or {}, dict)]
