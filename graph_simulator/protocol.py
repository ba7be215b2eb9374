"""The simulator's transport-free request and response, and Graph's error bodies.

Route handlers take a `Req` and return a `Resp`; they never see aiohttp, so the
same handler serves a plain request and a `$batch` sub-request alike. A handler
reports a Graph failure by raising `GraphError`, which `Simulator.process` turns
into the error body Graph sends (`{"error": {code, message, innerError}}`).

Paging tokens are opaque to clients: url-safe base64 of compact JSON, so a token
survives a round trip through a query string without further quoting.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

GRAPH_PREFIX = "/v1.0"

UPN_TAKEN_MESSAGE = (
    "Another object with the same value for property userPrincipalName already exists."
)


@dataclasses.dataclass
class Resp:
    status: int
    body: Any = None  # JSON value, bytes, or None (no body)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    content_type: str = "application/json"


@dataclasses.dataclass
class Req:
    method: str
    path: str  # without the /v1.0 prefix, decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    origin: str  # scheme://host:port
    params: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.origin + GRAPH_PREFIX


class GraphError(Exception):
    """A Graph failure a handler raises; `response()` is the body Graph would send."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> Resp:
        body = {"error": {"code": self.code, "message": self.message, "innerError": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": str(uuid.uuid4()),
        }}}
        return Resp(self.status, body, dict(self.headers))


def not_found(what: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{what}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def require(value: T | None, what: str) -> T:
    """`value`, or the directory's 404 for `what` when the lookup found nothing."""
    if value is None:
        raise not_found(what)
    return value


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def item_not_found() -> GraphError:
    """Exchange's (calendar and event) not-found, unlike the directory's `not_found`."""
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def body_object(req: Req) -> dict[str, Any]:
    """The JSON object a write request must carry."""
    if not isinstance(req.body, dict):
        raise bad_request("Write requests (excluding DELETE) must contain a JSON object body.",
                          "BadRequest")
    return req.body


def encode_token(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    """The token's JSON object, or None for anything a client mangled or invented."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def now() -> str:
    """Graph's timestamp format (UTC, whole seconds, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
