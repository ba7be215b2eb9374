"""Errors of the Emply store.

    StoreError                   anything the store refuses or cannot do
    ├── ConcurrentChangeError    an entity changed since it was loaded (ETag)
    ├── RunInProgress            another run holds the sync lease
    └── LeaseLost                our lease expired and another run took it
    shared.emply_doc.DocumentError (ValueError): a bad Emply state document

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
