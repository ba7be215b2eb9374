"""How every HTTP area answers: JSON bodies, RFC 9457 problem bodies, Retry-After.

A refused request is a problem body naming the field and changes nothing; a dependency
that is down is a 503 naming *what* is down (the reason code of `shared.errors`), never
*where*. Values from the request are never echoed into a message or a log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from shared import errors
from shared.app import boundary

POLL_AFTER_SECONDS = 5
"""Retry-After on a 202: how soon polling the run is worth it."""
BUSY_RETRY_AFTER_SECONDS = 30
"""Retry-After on a 409 while a run is queued or running: a run takes from seconds to
minutes and how long is not known in advance; polling the run tells when it is done."""
UNAVAILABLE_RETRY_AFTER_SECONDS = 30
"""Retry-After on a 503 whose cause is temporary (storage or Graph down or throttling)."""


class BadRequest(ValueError):
    """A request refused with a 400 naming `field`."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


class Refused(Exception):
    """A request answered with a problem body (nothing changed)."""

    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__("refused")
        self.response = response


def respond(status: int, body: Any, headers: Mapping[str, str] | None = None
            ) -> func.HttpResponse:
    mimetype = "application/problem+json" if status >= 400 else "application/json"
    response = func.HttpResponse(json.dumps(body), status_code=status,
                                 mimetype=mimetype)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def problem(status: int, title: str, detail: str, *, retry_after: int | None = None,
            **extra: Any) -> func.HttpResponse:
    response = respond(status, {"type": "about:blank", "title": title, "status": status,
                                "detail": detail, **extra})
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def bad(field: str, detail: str) -> Refused:
    """A 400 naming `field`, to raise."""
    return Refused(problem(400, "Bad request", detail, field=field))


def run_in_progress(exc: boundary.RunInProgress, title: str) -> func.HttpResponse:
    """409 naming the run that holds the way (R1), with when to try again."""
    return problem(409, title, str(exc), retry_after=BUSY_RETRY_AFTER_SECONDS,
                   runId=exc.running_run_id, trigger=exc.trigger, startedAt=exc.started_at)


def failure_problem(failure: errors.SyncFailure) -> func.HttpResponse:
    """503 for a dependency that is down or refusing (what, not where), 409 for a missing
    configuration; the reason code and whether retrying later helps."""
    if isinstance(failure, errors.NotConfigured):
        return problem(409, "Not configured", failure.message, reason=failure.reason,
                       temporary=False)
    return problem(503, "A dependency is unavailable", failure.message,
                   retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS if failure.temporary else None,
                   reason=failure.reason, temporary=failure.temporary)
