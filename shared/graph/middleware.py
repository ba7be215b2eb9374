"""The two pieces this package adds to msgraph-core's default middleware chain.

- :class:`BoundedRetryHandler` is the SDK's ``RetryHandler`` (429, 503, 504;
  ``Retry-After`` honoured exactly, as the SDK parses it) with two bounds the
  SDK lacks: a total waiting budget per request, and a configurable backoff
  (the SDK always adds up to one second of jitter and a 3 s base delay).
- :class:`StatsMiddleware` sits *inside* the retry handler, next to the
  transport, so it sees every HTTP exchange, retried ones included: it counts
  requests by endpoint template and the 429 answers (throttling) among them.

Counting also goes to every :class:`GraphStats` opened with :func:`track` in
the current context (``contextvars`` are inherited by the tasks a read
gathers), which is how one read reports its own figures even when the client
is shared.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from kiota_http.middleware import RetryHandler
from kiota_http.middleware.middleware import BaseMiddleware
from kiota_http.middleware.options import RetryHandlerOption

# Where the handler keeps the seconds already waited for one request.
_WAITED_KEY = "emply_sync_retry_waited_seconds"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for 429/503/504.

    A ``Retry-After`` header is always waited exactly; without one the wait is
    ``backoff_factor * 2**n`` before retry n+1, plus up to ``max_jitter`` seconds. A
    request is not retried when the next wait would take the total waited for
    it beyond ``max_total_delay`` seconds (then the last answer is the error).
    """

    max_retries: int = 5
    backoff_factor: float = 1.0
    max_jitter: float = 1.0
    max_total_delay: float = 120.0

    def __post_init__(self) -> None:
        if not 0 <= self.max_retries <= RetryHandlerOption.MAX_MAX_RETRIES:
            raise ValueError(f"max_retries must be 0..{RetryHandlerOption.MAX_MAX_RETRIES}")
        if self.backoff_factor < 0 or self.max_jitter < 0 or self.max_total_delay < 0:
            raise ValueError("retry delays must not be negative")


GRAPH_RETRY_POLICY = RetryPolicy()
"""Against Microsoft Graph: up to 5 retries, at most two minutes of waiting."""

SIMULATOR_RETRY_POLICY = RetryPolicy(
    max_retries=3, backoff_factor=0.05, max_jitter=0.05, max_total_delay=30.0
)
"""Against the loopback simulator: same logic, short backoff (Retry-After still exact)."""


class BoundedRetryHandler(RetryHandler):
    """The SDK's retry handler with :class:`RetryPolicy` bounds (see module doc)."""

    def __init__(self, policy: RetryPolicy) -> None:
        # delay=0: the SDK adds this "base delay" to every backoff; the policy owns backoff.
        super().__init__(RetryHandlerOption(delay=0.0, max_retries=policy.max_retries))
        self.policy = policy
        self.backoff_factor = policy.backoff_factor

    def get_delay_time(
        self,
        retry_count: int,
        response: httpx.Response | None = None,
        delay: float = RetryHandlerOption.DEFAULT_DELAY,
    ) -> float:
        retry_after = self._get_retry_after(response)
        if retry_after:
            wanted = float(retry_after)
        else:
            wanted = self.policy.backoff_factor * 2**retry_count + random.uniform(
                0.0, self.policy.max_jitter
            )
        if response is None or response.status_code not in self.retry_on_status_codes:
            return wanted
        extensions = response.request.extensions
        waited = float(extensions.get(_WAITED_KEY, 0.0))
        if waited + wanted > self.policy.max_total_delay:
            # The SDK handler never retries when the delay reaches MAX_DELAY.
            return RetryHandlerOption.MAX_DELAY
        extensions[_WAITED_KEY] = waited + wanted
        return wanted


@dataclass
class GraphStats:
    """HTTP exchanges with Graph: by endpoint template, and how many were 429s."""

    requests: Counter[str] = field(default_factory=Counter)
    throttled: int = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def record(self, endpoint: str, status: int) -> None:
        self.requests[endpoint] += 1
        if status == 429:
            self.throttled += 1


_trackers: contextvars.ContextVar[tuple[GraphStats, ...]] = contextvars.ContextVar(
    "emply_sync_graph_trackers", default=()
)


@contextlib.contextmanager
def track() -> Iterator[GraphStats]:
    """Count the Graph exchanges made in this context (and tasks started from it)."""
    stats = GraphStats()
    token = _trackers.set((*_trackers.get(), stats))
    try:
        yield stats
    finally:
        _trackers.reset(token)


_ID_SEGMENT = re.compile(r"^[A-Za-z$][A-Za-z.$]{0,39}(\(\))?$")


def endpoint_template(url: str | httpx.URL, base_path: str) -> str:
    """``/users/{id}/calendars`` for ``…/v1.0/users/8f3c…/calendars?$select=…``.

    Segments that do not look like a Graph resource or function name (GUIDs,
    UPNs, opaque ids) become ``{id}``; the query string is dropped.
    """
    path = urlsplit(str(url)).path
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :]
    segments = [s for s in path.split("/") if s]
    return "/" + "/".join(s if _ID_SEGMENT.match(s) else "{id}" for s in segments)


class StatsMiddleware(BaseMiddleware):
    """Counts every exchange (see module doc); place it after the retry handler."""

    def __init__(self, stats: GraphStats, base_path: str) -> None:
        super().__init__()
        self.stats = stats
        self.base_path = base_path.rstrip("/")

    async def send(
        self, request: httpx.Request, transport: httpx.AsyncBaseTransport
    ) -> httpx.Response:
        response = await super().send(request, transport)
        endpoint = endpoint_template(request.url, self.base_path)
        self.stats.record(endpoint, response.status_code)
        for tracker in _trackers.get():
            tracker.record(endpoint, response.status_code)
        return response
