"""The service boundary's one error taxonomy: what went wrong, as a reason code, and
whether waiting helps. The CLI, the HTTP handlers and the timer all see these.

::

    SyncFailure                     a run (or a request) that could not be served;
    │                               its `reason` is the report's reason code
    ├── TemporaryFailure            the same request may well succeed later, as it is
    │   ├── graph_unavailable       Graph answered 5xx, or not at all, after the SDK's retries
    │   ├── graph_throttled         Graph still answered 429 after the SDK's retries
    │   ├── storage_unavailable     Table/Blob Storage unreachable, timed out, or 5xx
    │   ├── concurrent_change       an Emply entity changed under the run (ETag)
    │   └── lease_lost              our lease expired and another run took it
    └── PermanentFailure            fails the same way until someone acts
        ├── graph_read_failed       Graph refused a read (4xx but 429) or answered nonsense
        ├── tenant_mismatch         the settings name another tenant than the credentials reach
        ├── not_configured          NotConfigured: no integration settings imported yet
        ├── bad_configuration       an app setting is invalid (Graph URL, storage endpoints)
        ├── storage_forbidden       storage answered 401/403 (role assignment, firewall)
        ├── auth_failed             no token could be had (managed identity, sign-in)
        └── run_failed              storage refused a request in a way none of the above names

    not failures:
    shared.store.RunInProgress      another run holds the lease: 409, exit 3, the timer skips
    anything else                   a bug: the run is recorded as failed with reason
                                    `internal_error`, logged with its traceback, and raised

`classify(exc)` maps what the adapters raise (`shared.graph.errors`,
`shared.store.errors`, azure-core's exceptions) onto this tree; None means a bug.
A failure's message says *what* is down, never *where* (no host names or ports:
they end up in HTTP bodies); the original exception is chained for the logs.
"""

from __future__ import annotations

from azure.core import exceptions as azure_errors

from shared.graph import errors as graph_errors
from shared.store import errors as store_errors

TEMPORARY_REASONS = frozenset({
    "graph_unavailable", "graph_throttled", "storage_unavailable", "concurrent_change",
    "lease_lost",
})
PERMANENT_REASONS = frozenset({
    "graph_read_failed", "tenant_mismatch", "not_configured", "bad_configuration",
    "storage_forbidden",
    "auth_failed", "run_failed",
})
BUG_REASON = "internal_error"
"""The reason a run report gives for a bug (which is also raised, not swallowed)."""


class SyncFailure(Exception):
    """A run or request that could not be served; `reason` is its snake_case code."""

    temporary = False

    def __init__(self, reason: str, message: str) -> None:
        allowed = TEMPORARY_REASONS if self.temporary else PERMANENT_REASONS
        if reason not in allowed:
            raise ValueError(f"{reason!r} is not a {type(self).__name__} reason")
        super().__init__(message)
        self.reason = reason
        self.message = message

    def to_json(self) -> dict[str, object]:
        """The entry of a report's `errors` (and of an HTTP problem body)."""
        return {"reason": self.reason, "message": self.message, "temporary": self.temporary}


class TemporaryFailure(SyncFailure):
    """Retrying later, unchanged, may succeed (the next timer tick will)."""

    temporary = True


class PermanentFailure(SyncFailure):
    """Someone has to act (settings, permissions, the tenant) before it can succeed."""


class NotConfigured(PermanentFailure):
    """The Emply side has no integration settings yet."""

    def __init__(self, message: str) -> None:
        super().__init__("not_configured", message)


def failure(reason: str, message: str) -> SyncFailure:
    """The failure of `reason`, temporary or permanent as the tree above says."""
    if reason in TEMPORARY_REASONS:
        return TemporaryFailure(reason, message)
    return PermanentFailure(reason, message)


def classify(exc: BaseException) -> SyncFailure | None:
    """`exc` as a failure of the taxonomy, or None when it is a bug."""
    if isinstance(exc, SyncFailure):
        return exc
    if isinstance(exc, graph_errors.GraphError):
        return _graph(exc)
    if isinstance(exc, store_errors.StoreError):
        return _store(exc)
    if isinstance(exc, azure_errors.AzureError):
        return _azure(exc)
    return None


def _graph(exc: graph_errors.GraphError) -> SyncFailure:
    if isinstance(exc, graph_errors.TenantMismatch):
        return failure("tenant_mismatch", str(exc))
    if isinstance(exc, graph_errors.GraphReadError):
        if exc.status is None or exc.status >= 500:
            return failure("graph_unavailable", str(exc))
        if exc.status == 429:
            return failure("graph_throttled", str(exc))
    return failure("graph_read_failed", str(exc))


def _store(exc: store_errors.StoreError) -> SyncFailure | None:
    if isinstance(exc, store_errors.RunInProgress):
        return None  # not a failure: the entry points answer it themselves
    if isinstance(exc, store_errors.ConcurrentChangeError):
        return failure("concurrent_change", str(exc))
    if isinstance(exc, store_errors.LeaseLost):
        return failure("lease_lost", str(exc))
    # The store's own refusals (lease contention that did not settle): try again later.
    return failure("storage_unavailable", str(exc))


def _azure(exc: azure_errors.AzureError) -> SyncFailure:
    """Storage (and azure-identity) errors. Their messages name hosts and ports, so the
    failure's message is built from the status and the service's error code only."""
    name = type(exc).__name__
    if isinstance(exc, azure_errors.HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        code = getattr(exc, "error_code", None) or "unknown"
        detail = f"HTTP {status}, error code {code} ({name})"
        if status in (401, 403):
            return failure("storage_forbidden", "Table/Blob Storage refused access: "
                           f"{detail}; check the identity's storage role assignments")
        if status >= 500 or status in (408, 429):
            return failure("storage_unavailable", f"Table/Blob Storage is unavailable: {detail}")
        return failure("run_failed", f"Table/Blob Storage refused a request: {detail}")
    if isinstance(exc, azure_errors.ClientAuthenticationError):
        return failure("auth_failed", f"no access token could be obtained ({name})")
    if isinstance(exc, azure_errors.ServiceRequestError | azure_errors.ServiceResponseError):
        return failure("storage_unavailable",
                       f"Table/Blob Storage could not be reached ({name})")
    return failure("run_failed", f"Table/Blob Storage failed ({name})")
