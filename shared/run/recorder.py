"""The report of a run under way: its progress (for GET /api/sync/runs/{runId} and the
phase log), what was planned (for a run that then fails), and its failure."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from shared import errors, telemetry
from shared.reconcile import model
from shared.run import report as run_report
from shared.store import protocols


class Recorder:
    """The report of a run under way, and its progress for GET /api/sync/runs/{runId}."""

    def __init__(self, store: protocols.RunLog, report: run_report.RunReport) -> None:
        self.store = store
        self.report = report
        self.clock0 = time.monotonic()
        self.plan: model.Plan | None = None
        self.applying = False
        self.logged = False
        """Its `emply_sync.run` record was logged (a sharded run logs `running` before
        its shards may finish it, so its final record is always the later one)."""

    def failed(self, exc: BaseException) -> None:
        """The report of a run `exc` ended: what was planned is kept, not reported done."""
        error = run_report.failure(exc)
        if error["reason"] == errors.BUG_REASON:
            telemetry.log.exception("emply_sync.bug", extra={
                "runId": self.report.run_id, "trigger": self.report.trigger})
        if self.applying:
            error["message"] += (
                " (while applying: some changes may be applied; delta links did not "
                "advance and the next run plans again from the current state)"
            )
        self.report = self.report.failed(
            error, [c.to_json() for c in self.plan.changes] if self.plan is not None else [])

    def progress(self, phase: str, **counts: Any) -> None:
        """One log record per phase, so a long run shows where it is (ids and counts
        only); the counts also go in the report, which `saved_progress` shows."""
        telemetry.log.info("emply_sync.phase", extra={
            "runId": self.report.run_id, "trigger": self.report.trigger, "phase": phase,
            "elapsedMs": int((time.monotonic() - self.clock0) * 1000), **counts})
        self.report = dataclasses.replace(self.report, progress={"phase": phase, **counts})

    async def saved_progress(self, phase: str, **counts: Any) -> None:
        """`progress`, and the running record saved with it. Only informative: a failed
        write is logged and the run goes on."""
        self.progress(phase, **counts)
        try:
            await self.store.save_run(self.report.to_json())
        except Exception:
            telemetry.log.warning("emply_sync.progress_not_saved",
                                  extra={"runId": self.report.run_id}, exc_info=True)
