"""Structured logs that Application Insights can query.

One record per run (`emply_sync.run`) with run id, trigger, status, duration,
counts per change kind and deactivations (applied and held) per reason; one per
problem (`emply_sync.error`) with its reason code. infra/'s alerts and workbook
query these names; tests/e2e/test_telemetry_queries.py holds the two together.
Properties go in `extra`, which the OpenTelemetry exporter turns into
`customDimensions` (as strings; a None is left out). Only ids, reason codes and
counts are logged: no names, and e-mail addresses only inside messages the FAQ
makes necessary.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from shared import config
from shared.reconcile import model

LOGGER_NAME = "emply_sync"
log = logging.getLogger(LOGGER_NAME)
_configured = False


def configure(environ: Mapping[str, str] | None = None) -> None:
    """Export to Application Insights when its connection string is set (once per process).

    Entry points call this before their first log line: records logged before the
    exporter is installed never reach Application Insights (a cold start's past-due
    line was lost that way)."""
    global _configured
    env = os.environ if environ is None else environ
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)  # run and phase records are INFO; the host's root is not
    if _configured or not env.get(config.APPINSIGHTS_CONNECTION_STRING):
        return
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Application Insights has local auth off (infra/): telemetry is sent with the
    # user-assigned managed identity's Entra token, never an instrumentation key alone.
    credential = (
        ManagedIdentityCredential(client_id=env[config.MANAGED_IDENTITY_CLIENT_ID])
        if env.get(config.MANAGED_IDENTITY_CLIENT_ID)
        else None
    )
    configure_azure_monitor(
        connection_string=env[config.APPINSIGHTS_CONNECTION_STRING],
        logger_name=LOGGER_NAME,
        credential=credential,
    )
    _configured = True


def run_event(report: Mapping[str, Any]) -> dict[str, Any]:
    """The customDimensions of the one record a run logs."""
    read = report.get("entraRead") or {}
    return {
        "runId": report.get("runId"),
        "trigger": report.get("trigger"),
        "status": report.get("status"),
        "dryRun": bool(report.get("dryRun")),
        "durationMs": report.get("durationMs"),
        "changes": json.dumps(report.get("counts") or {}, sort_keys=True),
        "deactivations": _deactivation_reasons(report.get("changes") or ()),
        "held": len(report.get("held") or ()),
        "heldDeactivations": _deactivation_reasons(report.get("held") or ()),
        "errors": len(report.get("errors") or ()),
        "graphRequests": read.get("requests", 0),
        "graphThrottled": read.get("throttled", 0),
        "fullRead": read.get("fullRead"),
        "reusedPlanOf": report.get("reusedPlanOf"),
    }


def _deactivation_reasons(changes: Iterable[Mapping[str, Any]]) -> str:
    """JSON object: deactivation reason (R6) -> count. A JSON string, like `changes`,
    because the exporter sends each dimension as one string."""
    reasons = collections.Counter(
        str(change.get("reason")) for change in changes
        if change.get("kind") == model.DEACTIVATE_USER
    )
    return json.dumps(dict(reasons), sort_keys=True)


def log_run(report: Mapping[str, Any]) -> None:
    level = logging.ERROR if report.get("status") == "failed" else logging.INFO
    log.log(level, "emply_sync.run", extra=run_event(report))
    for error in report.get("errors") or ():
        log.warning(
            "emply_sync.error",
            extra={
                "runId": report.get("runId"),
                "reason": error.get("reason"),
                "entraId": error.get("entraId"),
                "userId": error.get("userId"),
                # A per-user read fault (R7): Graph's code, and when it is tried again.
                **{key: error[key] for key in ("graphCode", "nextTry") if error.get(key)},
            },
        )


def flush() -> None:
    """Send what is buffered now. Entry points call this after the run record: the
    Functions host may freeze or recycle the worker as soon as an invocation returns,
    and the exporter sends in batches on a timer."""
    logger: logging.Logger | None = log
    while logger is not None:
        for handler in logger.handlers:
            handler.flush()
        logger = logger.parent if logger.propagate else None
    if _configured:
        from opentelemetry import _logs, trace

        for provider in (_logs.get_logger_provider(), trace.get_tracer_provider()):
            force_flush = getattr(provider, "force_flush", None)
            if callable(force_flush):
                force_flush()
