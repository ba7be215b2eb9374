"""Errors of the Emply store.

    StoreError                   anything the store refuses or cannot do
    ├── ConcurrentChangeError    an entity changed since it was loaded (ETag)
    │   ├── EmplyReplaced        the Emply side was replaced (import) meanwhile
    │   └── UniqueTaken          another user holds (or is taking) that username/entraId
    ├── OutcomeUnknown           a write was sent and its answer lost: it may have been made
    ├── ImportFailed             an import's write failed; nothing was imported
    ├── RunInProgress            another run holds the sync lease
    └── LeaseLost                our lease expired and another run took it
    shared.emply.document.DocumentError (ValueError): a bad Emply state document

Transport failures surface as azure-core's `HttpResponseError` /
`ServiceRequestError` unchanged; `shared.errors.classify` names them at the
service boundary (`storage_unavailable`, `storage_forbidden`, ...).
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of the store's own errors."""


class ConcurrentChangeError(StoreError):
    """An entity loaded with an ETag was changed (or deleted) by someone else."""

    def __init__(self, kind: str, entity_id: str) -> None:
        super().__init__(f"{kind} {entity_id!r} was changed by someone else since it was loaded")
        self.kind = kind
        self.entity_id = entity_id


class RunInProgress(StoreError):
    """Another run holds the lease (R1: one run at a time)."""

    def __init__(self, running_run_id: str, trigger: str, started_at: str) -> None:
        super().__init__(
            f"run {running_run_id} ({trigger}, started {started_at}) is in progress")
        self.running_run_id = running_run_id
        self.trigger = trigger
        self.started_at = started_at


class LeaseLost(StoreError):
    """Renewing a lease that is no longer ours."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} no longer holds the sync lease")
        self.run_id = run_id


class EmplyReplaced(ConcurrentChangeError):
    """The Emply side was replaced as a whole (an import switched it to a new generation)
    while a writer held entities loaded from the previous one, or another writer changed
    it while an import was being written (the import then changes nothing)."""

    def __init__(self, detail: str) -> None:
        StoreError.__init__(self, detail)
        self.kind = "emply"
        self.entity_id = "*"


class UniqueTaken(ConcurrentChangeError):
    """A user's `field` (username, entraId) is held by another user, or being taken by a
    write at the same time (`shared.store.unique_index`): nothing of the user written."""

    def __init__(self, kind: str, entity_id: str, field: str) -> None:
        StoreError.__init__(self, f"{kind} {entity_id!r}: its {field} is held by another "
                                  "user (or was taken by a write at the same time)")
        self.kind = kind
        self.entity_id = entity_id
        self.field = field


class OutcomeUnknown(StoreError):
    """A transaction was sent and no answer came back (the connection dropped, a
    timeout): it may have been applied. Read the entities back to know."""

    def __init__(self, kind: str, cause: str) -> None:
        super().__init__(f"storage did not answer a write of {kind} ({cause}); it may have "
                         "been made: read it back before writing again")
        self.kind = kind


class ImportFailed(StoreError):
    """Writing an import failed before it took effect: nothing was imported, the Emply
    side is as it was. `cause` is the storage error (temporary: try again)."""

    def __init__(self, cause: BaseException, *, outcome_unknown: bool = False) -> None:
        if outcome_unknown:
            detail = ("could not tell whether the import took effect: check with "
                      "`emply-sync emply export` before importing again")
        else:
            detail = "nothing was imported; the Emply side is unchanged (try again)"
        super().__init__(f"the import failed while writing ({_what(cause)}); {detail}")
        self.cause = cause
        self.outcome_unknown = outcome_unknown


def _what(cause: BaseException) -> str:
    """A storage failure in words that name no host or port (they end up in HTTP bodies
    and logs): its type, and the service's status and error code when it answered."""
    status = getattr(cause, "status_code", None)
    code = getattr(cause, "error_code", None)
    if status is None:
        return type(cause).__name__
    return f"{type(cause).__name__}: HTTP {status}" + (f", {code}" if code else "")
