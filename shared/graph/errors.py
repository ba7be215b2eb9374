"""What can go wrong when reading Entra through Microsoft Graph.

::

    GraphError                 anything this package raises on purpose
    ├── GraphReadError         a request failed after the SDK's retries (permanent
    │   │                      for this run: the run must apply nothing, R7)
    │   └── DeltaExpired       Graph no longer knows a delta/skip token (HTTP 410,
    │                          ``syncStateNotFound``, ``resyncRequired``…): read in full
    └── TenantMismatch         the credentials reach another tenant than the settings name

`shared.errors.classify` names these at the service boundary: a read that got
a 5xx or no answer is `graph_unavailable`, a 429 `graph_throttled` (temporary),
any other refusal `graph_read_failed` (permanent).

A read of one user's mailbox or photo that fails raises none of these: it is a
`shared.graph.failures.UserReadFailure` in that read's result (R7: only the directory
read is all-or-nothing). A `$batch` refused as a whole still raises `GraphReadError`.

Every message names the endpoint (a template such as ``/users/delta``, never a
URL with tokens in it) and Graph's own error code, so an operator can act on
the message alone.
"""

from __future__ import annotations


class GraphError(Exception):
    """Base class of the errors this package raises."""


class GraphReadError(GraphError):
    """A Graph request failed (after retries); nothing read in this run may be used."""

    def __init__(self, endpoint: str, status: int | None, code: str | None, message: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.message = message
        status_text = f"HTTP {status}" if status is not None else "no HTTP response"
        super().__init__(
            f"Graph request GET {endpoint} failed: {status_text}, "
            f"error code {code or 'unknown'}: {message}"
        )


class DeltaExpired(GraphReadError):
    """Graph refused a delta or skip token: the resource must be read in full again."""


class TenantMismatch(GraphError):
    """The Graph credentials reach a different tenant than the integration settings."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"tenant mismatch: the integration settings say tenant {expected}, "
            f"but the Graph credentials reach tenant {actual}; nothing was read"
        )
