"""`shared.errors.classify`: what each adapter error is called, and whether waiting helps."""

from __future__ import annotations

import pytest
from azure.core import exceptions as azure_errors

from shared import errors
from shared.graph import errors as graph_errors
from shared.store import errors as store_errors


def http_error(status: int, code: str = "SomeCode",
               kind: type[azure_errors.HttpResponseError] = azure_errors.HttpResponseError,
               ) -> azure_errors.HttpResponseError:
    error = kind(message="Server at account.table.core.windows.net:443 said no")
    error.status_code, error.error_code = status, code
    return error


@pytest.mark.parametrize(
    ("exc", "reason", "temporary"),
    [
        (graph_errors.GraphReadError("/users/delta", 503, "serviceNotAvailable", "down"),
         "graph_unavailable", True),
        (graph_errors.GraphReadError("/users/delta", None, "transport_error", "reset"),
         "graph_unavailable", True),
        (graph_errors.GraphReadError("/groups/delta", 429, "TooManyRequests", "slow down"),
         "graph_throttled", True),
        (graph_errors.GraphReadError("/users", 403, "Authorization_RequestDenied", "no"),
         "graph_read_failed", False),
        (graph_errors.DeltaExpired("/users/delta", 410, "syncStateNotFound", "gone"),
         "graph_read_failed", False),
        (graph_errors.TenantMismatch("t-1", "t-2"), "tenant_mismatch", False),
        (store_errors.ConcurrentChangeError("user", "u-1"), "concurrent_change", True),
        (store_errors.LeaseLost("run-1"), "lease_lost", True),
        (store_errors.StoreError("could not settle the sync lease"), "storage_unavailable",
         True),
        (http_error(403, "AuthorizationFailure"), "storage_forbidden", False),
        (http_error(401, "InvalidAuthenticationInfo", azure_errors.ClientAuthenticationError),
         "storage_forbidden", False),
        (http_error(503, "ServerBusy"), "storage_unavailable", True),
        (http_error(500, "InternalError"), "storage_unavailable", True),
        (http_error(400, "InvalidInput"), "run_failed", False),
        (azure_errors.ServiceRequestError("Cannot connect to host 127.0.0.1:10002"),
         "storage_unavailable", True),
        (azure_errors.ServiceResponseError("connection reset by 10.0.0.4:443"),
         "storage_unavailable", True),
        (azure_errors.ClientAuthenticationError("ManagedIdentityCredential unavailable"),
         "auth_failed", False),
        (errors.NotConfigured("no settings"), "not_configured", False),
    ],
)
def test_adapter_errors_get_one_reason_code(exc: BaseException, reason: str,
                                            temporary: bool) -> None:
    failure = errors.classify(exc)
    assert failure is not None
    assert (failure.reason, failure.temporary) == (reason, temporary)
    assert isinstance(failure, errors.TemporaryFailure if temporary else errors.PermanentFailure)
    assert failure.to_json() == {"reason": reason, "message": failure.message,
                                 "temporary": temporary}


@pytest.mark.parametrize(
    "exc",
    [
        http_error(503, "ServerBusy"),
        azure_errors.ServiceRequestError("Cannot connect to host 127.0.0.1:10002"),
        azure_errors.ServiceResponseError("connection reset by 10.0.0.4:443"),
    ],
)
def test_storage_failures_say_what_is_down_not_where(exc: BaseException) -> None:
    failure = errors.classify(exc)
    assert failure is not None
    for where in ("127.0.0.1", "10002", "10.0.0.4", "core.windows.net"):
        assert where not in failure.message


@pytest.mark.parametrize(
    "exc",
    [KeyError("x"), ValueError("planner invariant"), TypeError("bad"), RecursionError(),
     OSError("disk")],
)
def test_anything_else_is_a_bug(exc: BaseException) -> None:
    assert errors.classify(exc) is None


def test_run_in_progress_is_not_a_failure() -> None:
    assert errors.classify(store_errors.RunInProgress("r", "timer", "2026-12-01")) is None


def test_reason_codes_are_snake_case_and_each_in_one_branch() -> None:
    both = errors.TEMPORARY_REASONS | errors.PERMANENT_REASONS
    assert not errors.TEMPORARY_REASONS & errors.PERMANENT_REASONS
    assert all(r.isascii() and r == r.lower() and " " not in r for r in both)
    with pytest.raises(ValueError, match="not a TemporaryFailure reason"):
        errors.TemporaryFailure("not_configured", "x")
    for reason in both:
        assert reason in (errors.__doc__ or "")
