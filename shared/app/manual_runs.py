"""Manual runs through the queue: request (POST /api/sync), work (the queue trigger),
give up (poison), wait (`?wait=N`).

Azure's front end cuts an HTTP request at 230 seconds, so the request only records a
`queued` run and puts a run request on the queue (`shared.app.run_queue`); the worker runs
it with the same service code as the timer, under the same run id. One manual run at
a time: a marker entity (created only if absent, so two requests cannot both win)
names the queued or running request until its run is final; another request meanwhile
gets `RunInProgress` with that run's id, as it does while any run holds the lease (R1).

A request that keeps failing is never lost silently: on its last delivery
(`MAX_DEQUEUE_COUNT`, host.json's `maxDequeueCount`) the worker records the run
`failed` with the reason; should the host move it to the poison queue all the same
(the worker killed on that delivery), the poison trigger does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from shared import errors, telemetry
from shared import store as store_mod
from shared.app import boundary, run_queue
from shared.run import lease
from shared.run import report as run_report
from shared.store import protocols

TRIGGER = "http"
MAX_WAIT_SECONDS = 20
"""`?wait=N`'s bound: well inside the front end's 230 s and a client's patience."""
MAX_DEQUEUE_COUNT = 5
"""host.json's extensions.queues.maxDequeueCount (a test holds the two equal)."""
BUSY_RETRY_SECONDS = 60
"""When another run (the timer's, the CLI's) holds the lease, look again this much later."""
MAX_BUSY_WAITS = 60
"""…at most this many times (an hour, twice the timer's period) before giving up."""
STALE_MARKER_SECONDS = 300
"""A marker without a run record this long is left over from a request that failed."""
LOST_SECONDS = (MAX_BUSY_WAITS + 10) * BUSY_RETRY_SECONDS
"""A run still `queued` after this was lost: nothing will run it any more."""
QUEUED, RUNNING = "queued", "running"


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """A queue message: which run, with what options."""

    run_id: str
    queued_at: str
    dry_run: bool = False
    approve: str | None = None
    """`Approval`'s text form ("N", "N:DIGEST" or "DIGEST"), or None."""
    busy_waits: int = 0
    approve_deletions: str | None = None
    """The same for held Entra deletions (R9 delete)."""
    user: str | None = None
    """One user now (`POST /api/users/{key}/sync` whose reads Graph throttled): its key."""

    def to_json(self) -> dict[str, Any]:
        out = {"runId": self.run_id, "queuedAt": self.queued_at, "dryRun": self.dry_run,
               "approveDeactivations": self.approve, "busyWaits": self.busy_waits,
               "approveDeletions": self.approve_deletions}
        if self.user is not None:
            out["user"] = self.user
        return out

    @classmethod
    def parse(cls, raw: str | bytes) -> RunRequest:
        """A message as `to_json` wrote it; ValueError naming what is wrong otherwise."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("the run request is not JSON") from exc
        if not isinstance(data, dict):
            raise ValueError("the run request is not a JSON object")
        run_id, queued_at = data.get("runId"), data.get("queuedAt")
        approve, waits = data.get("approveDeactivations"), data.get("busyWaits", 0)
        deletions = data.get("approveDeletions")
        if not isinstance(run_id, str) or not run_id or len(run_id) > 64:
            raise ValueError("the run request has no valid runId")
        if not isinstance(queued_at, str):
            raise ValueError("the run request has no queuedAt")
        if approve is not None:
            if not isinstance(approve, str):
                raise ValueError("the run request's approveDeactivations is not a string")
            boundary.Approval.parse(approve)  # raises ValueError when malformed
        if deletions is not None:
            if not isinstance(deletions, str):
                raise ValueError("the run request's approveDeletions is not a string")
            boundary.Approval.parse(deletions)
        if type(waits) is not int or waits < 0:
            raise ValueError("the run request's busyWaits is not a count")
        user = data.get("user")
        if user is not None and (not isinstance(user, str) or not user.strip()):
            raise ValueError("the run request's user is not a key")
        return cls(run_id=run_id, queued_at=queued_at, dry_run=data.get("dryRun") is True,
                   approve=approve, busy_waits=waits, approve_deletions=deletions,
                   user=user)

    @property
    def trigger(self) -> str:
        return TRIGGER if self.user is None else boundary.ON_DEMAND


def is_final(report: Mapping[str, Any] | None) -> bool:
    return report is not None and report.get("status") not in (QUEUED, RUNNING)


async def request_run(*, dry_run: bool = False, approve: boundary.Approval | None = None,
                      approve_deletions: boundary.Approval | None = None,
                      user: str | None = None, run_id: str | None = None,
                      environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Record a queued run and queue its request; returns the queued record. Raises
    `boundary.RunInProgress` while another run is queued or running (nothing changed),
    and a `shared.errors.SyncFailure` when storage or the queue is unavailable (then
    the record, if it was written, says `failed` and no run will follow). `user`: one
    user's run (`shared.app.user_sync`), under `run_id` when it was begun already."""
    async with boundary.open_deps(environ=environ) as deps:
        store = deps.store
        now = deps.clock()
        await lease.refuse_if_running(store, now)
        request = RunRequest(run_id=run_id or boundary.new_run_id(now),
                             queued_at=run_report.iso(now),
                             dry_run=dry_run, approve=None if approve is None else str(approve),
                             approve_deletions=(None if approve_deletions is None
                                                else str(approve_deletions)), user=user)
        await _take_marker(store, request, now)
        report = run_report.new_report(request.trigger, dry_run, now, run_id=request.run_id,
                                       queued_at=request.queued_at).to_json()
        report["status"] = QUEUED
        try:
            await store.save_run(report)
            async with run_queue.open_run_queue(environ) as queue:
                await queue.send(request.to_json())
        except Exception as exc:
            failure = errors.classify(exc) or errors.TemporaryFailure(
                "queue_unavailable", f"the run request could not be queued "
                f"({type(exc).__name__}); nothing will run")
            with contextlib.suppress(Exception):  # storage itself may be what failed
                await _finish(store, report, failure.to_json())
            raise failure from exc
        telemetry.log.info("emply_sync.run_queued", extra={
            "runId": request.run_id, "trigger": request.trigger, "dryRun": dry_run})
        return report


async def wait_for(run_id: str, seconds: float,
                   environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The run's final report if it is final within `seconds`, else None."""
    deadline = time.monotonic() + min(seconds, MAX_WAIT_SECONDS)
    pause = 0.2
    async with boundary.open_deps(environ=environ) as deps:
        while True:
            report = await deps.store.get_run(run_id)
            if is_final(report):
                return report
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)


async def work(raw: str | bytes, dequeue_count: int,
               environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Run one queued request (the queue trigger's body). Returns the run's report, or
    None when there was nothing to run (a repeated delivery, a run still waiting for the
    lease). Raises to have the host deliver it again, except on the last delivery, when
    the run is recorded failed instead."""
    try:
        request = RunRequest.parse(raw)
    except ValueError as exc:
        # Nothing to run and no run to record it on: say so, and let it go.
        telemetry.log.error("emply_sync.run_request_invalid", extra={
            "trigger": TRIGGER, "reason": str(exc), "dequeueCount": dequeue_count})
        return None
    async with boundary.open_deps(environ=environ) as deps:
        record = await deps.store.get_run(request.run_id)
    if not _runnable(record):
        telemetry.log.info("emply_sync.run_request_done_already", extra={
            "runId": request.run_id, "trigger": TRIGGER, "dequeueCount": dequeue_count})
        return None
    try:
        report = await _run(request, environ)
    except boundary.RunInProgress as exc:
        return await _wait_for_lease(request, exc, environ)
    except (boundary.UserNotFound, boundary.AmbiguousUser) as exc:
        # The key named one user when it was queued; Emply or Entra changed since.
        await give_up(request.run_id, {"reason": "user_not_found", "message": str(exc)},
                      dequeue_count, environ)
        return None
    except Exception as exc:
        # A bug in the run: the service recorded the run failed and logged the
        # traceback; delivering it again would only repeat that.
        if await _recorded_final(request.run_id, environ):
            await _release_marker_quietly(request.run_id, environ)
            return None
        if dequeue_count < MAX_DEQUEUE_COUNT:
            raise
        await give_up(request.run_id, run_report.failure(exc), dequeue_count, environ)
        return None
    if report.get("failedBeforeStart") and _temporary(report):
        # Storage refused before the run could start: another delivery may find it
        # working; on the last one the run is recorded as given up.
        if dequeue_count < MAX_DEQUEUE_COUNT:
            raise errors.TemporaryFailure(str(report["errors"][-1]["reason"]),
                                          "the run could not start; the host delivers "
                                          "it again")
        await give_up(request.run_id, report["errors"][-1], dequeue_count, environ)
        return None
    await _release_marker_quietly(request.run_id, environ)
    return report


async def _run(request: RunRequest, environ: Mapping[str, str] | None) -> dict[str, Any]:
    if request.user is not None:
        return await boundary.sync_user(request.user, dry_run=request.dry_run,
                                        environ=environ, run_id=request.run_id,
                                        queued_at=request.queued_at)
    return await boundary.sync(
        trigger=TRIGGER, dry_run=request.dry_run, environ=environ,
        approve_deactivations=(boundary.Approval.parse(request.approve)
                               if request.approve else None),
        approve_deletions=(boundary.Approval.parse(request.approve_deletions)
                           if request.approve_deletions else None),
        run_id=request.run_id, queued_at=request.queued_at)


async def give_up(run_id: str, error: Mapping[str, Any], attempts: int | None,
                  environ: Mapping[str, str] | None = None) -> None:
    """Record a run request that will not be tried again as a failed run (if its run is
    not final already) and free the way for the next request."""
    tries = f" after {attempts} attempts" if attempts else ""
    entry = {**error, "reason": "run_request_failed", "cause": error.get("reason"),
             "temporary": False,
             "message": f"the run request failed{tries} and is not tried again: "
                        f"{error.get('message', 'see the logs')}"}
    async with boundary.open_deps(environ=environ) as deps:
        record = await deps.store.get_run(run_id)
        if record is None or _runnable(record):
            await _finish(deps.store, record or _placeholder(run_id, deps.clock()), entry)
        await _release_marker(deps.store, run_id)
    telemetry.log.error("emply_sync.run_request_failed", extra={
        "runId": run_id, "trigger": TRIGGER, "reason": entry["cause"], "attempts": attempts})


async def poisoned(raw: str | bytes, dequeue_count: int,
                   environ: Mapping[str, str] | None = None) -> None:
    """The poison queue's trigger: a request the host gave up on ends as a failed run."""
    try:
        request = RunRequest.parse(raw)
    except ValueError as exc:
        telemetry.log.error("emply_sync.run_request_invalid", extra={
            "trigger": TRIGGER, "reason": str(exc), "poison": True})
        return
    await give_up(request.run_id, {
        "reason": "poison", "message": "the Functions host moved it to the poison queue "
        "after repeated failures (see the logs for each attempt)"}, None, environ)


async def _recorded_final(run_id: str, environ: Mapping[str, str] | None) -> bool:
    try:
        async with boundary.open_deps(environ=environ) as deps:
            record = await deps.store.get_run(run_id)
    except Exception:  # storage is what failed: the delivery is tried again
        return False
    return is_final(record) and not _runnable(record)


def _runnable(record: Mapping[str, Any] | None) -> bool:
    if record is None:
        return False
    if not is_final(record):
        return True
    # Failed before it started because storage was briefly down: a redelivery may run it.
    return bool(record.get("failedBeforeStart")) and _temporary(record)


def _temporary(report: Mapping[str, Any]) -> bool:
    errs = report.get("errors") or []
    return bool(errs) and bool(errs[-1].get("temporary"))


async def _wait_for_lease(request: RunRequest, exc: store_mod.RunInProgress,
                          environ: Mapping[str, str] | None) -> dict[str, Any] | None:
    """Another run (the timer's, the CLI's) holds the lease: queue the request again,
    invisible for a while, and stay queued; after MAX_BUSY_WAITS give up."""
    if request.busy_waits >= MAX_BUSY_WAITS:
        await give_up(request.run_id, {
            "reason": "run_in_progress", "message": f"run {exc.running_run_id} held the "
            f"lease through {MAX_BUSY_WAITS} waits of {BUSY_RETRY_SECONDS} s"}, None, environ)
        return None
    again = dataclasses.replace(request, busy_waits=request.busy_waits + 1)
    async with run_queue.open_run_queue(environ) as queue:
        await queue.send(again.to_json(), delay_seconds=BUSY_RETRY_SECONDS)
    telemetry.log.info("emply_sync.run_request_waiting", extra={
        "runId": request.run_id, "trigger": TRIGGER, "runningRunId": exc.running_run_id,
        "busyWaits": again.busy_waits})
    return None


async def _take_marker(store: protocols.SyncStore, request: RunRequest,
                       now: dt.datetime) -> None:
    for _attempt in range(5):
        if await store.create_marker(request.run_id, request.queued_at):
            return
        current = await store.read_marker()
        if current is None:
            continue  # released in between: try again
        other = str(current.get("runId"))
        record = await store.get_run(other)
        queued = dt.datetime.fromisoformat(str(current.get("queuedAt")).replace("Z", "+00:00"))
        age = (now - queued).total_seconds()
        # Still queued long after any wait for the lease would have ended: its request
        # was lost (queued record written, message and failed record not).
        lost = record is not None and record.get("status") == QUEUED and age > LOST_SECONDS
        stale = is_final(record) or lost or (record is None and age > STALE_MARKER_SECONDS)
        if not stale:
            raise store_mod.RunInProgress(other, TRIGGER, str(current.get("queuedAt")))
        if lost and record is not None:
            await _finish(store, record, {
                "reason": "run_request_failed", "cause": "lost", "temporary": False,
                "message": "the run request was never run (its queue message was lost); "
                "a later request took its place"})
        await store.delete_marker(current["etag"])
    raise errors.TemporaryFailure("storage_conflict",
                                  "could not settle which run is queued; try again")


async def _release_marker(store: protocols.RunMarker, run_id: str) -> None:
    """Free the way for the next request, if the marker is still this run's."""
    current = await store.read_marker()
    if current is not None and current.get("runId") == run_id:
        await store.delete_marker(current["etag"])


async def _release_marker_quietly(run_id: str, environ: Mapping[str, str] | None) -> None:
    try:
        async with boundary.open_deps(environ=environ) as deps:
            await _release_marker(deps.store, run_id)
    except Exception as exc:  # the next request finds the run final and clears it then
        telemetry.log.warning("emply_sync.marker_not_released",
                              extra={"runId": run_id, "error": type(exc).__name__})


async def _finish(store: protocols.SyncStore, report: Mapping[str, Any],
                  error: Mapping[str, Any]) -> None:
    """Record a run that will not run (or not again) as failed, with `error`."""
    failed = {**report, "status": "failed", "finishedAt": run_report.iso(boundary.utcnow()),
              "errors": [*(report.get("errors") or ()), dict(error)]}
    failed.pop("progress", None)
    try:
        await store.save_run(failed)
    finally:
        await _release_marker(store, str(report["runId"]))
    telemetry.log_run(failed)


def _placeholder(run_id: str, now: dt.datetime) -> dict[str, Any]:
    """A record for a request whose queued record was never written."""
    report = run_report.new_report(TRIGGER, False, now, run_id=run_id).to_json()
    report["status"] = QUEUED
    return report
