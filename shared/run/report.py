"""A run's report, as typed, frozen records; `RunReport.to_json` is its one dict form.

The report's JSON keys and their presence are those of docs/cli.md's "run report":
`skips` and `entraRead` once a plan was made or reused, `reusedPlanOf` only when
reused, `planned` only on failure, `durationMs` once finished. Records hold the bulky
JSON parts (changes, held deactivations, errors) by reference, read-only: nothing is
copied per user. Steps never edit the report: each returns a `StepOutcome`
(`shared.run.steps.base`) and the pipeline folds them in once (`with_applied`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from shared import errors
from shared.reconcile import model
from shared.run.changelog import ChangeLog

Json = dict[str, Any]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: object) -> dt.datetime | None:
    """A stored ISO 8601 time with its zone (`Z` or an offset); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def new_run_id(now: dt.datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A plan's outcome apart from its changes: what a report shows of it, and what the
    next run with nothing changed reports again (`Residual`)."""

    status: str
    held: tuple[Json, ...] = ()
    errors: tuple[Json, ...] = ()
    skips: Mapping[str, int] = dataclasses.field(default_factory=dict)
    held_digest: str | None = None
    """R7: the digest of the held set, what an approval of exactly these names."""

    @classmethod
    def of(cls, plan: model.Plan) -> Outcome:
        return cls(
            status=plan.status,
            held=tuple(c.to_json() for c in plan.held),
            errors=tuple(p.to_json() for p in plan.errors),
            skips=dict(plan.skips),
            held_digest=plan.held_digest,
        )


@dataclasses.dataclass(frozen=True)
class EntraReadSummary:
    full_read: bool
    reason: str | None
    requests: int
    throttled: int

    def to_json(self) -> Json:
        return {"fullRead": self.full_read, "reason": self.reason,
                "requests": self.requests, "throttled": self.throttled}


@dataclasses.dataclass(frozen=True)
class RunReport:
    """One run's report (README "run report"); `to_json` is its only dict form."""

    run_id: str
    trigger: str
    dry_run: bool
    started_at: str
    status: str = "running"
    finished_at: str | None = None
    duration_ms: int | None = None
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    changes: Sequence[Json] = ()
    held: tuple[Json, ...] = ()
    errors: tuple[Json, ...] = ()
    skips: Mapping[str, int] | None = None
    entra_read: EntraReadSummary | None = None
    reused_plan_of: str | None = None
    planned: Sequence[Json] | None = None
    held_digest: str | None = None
    queued_at: str | None = None
    """When the run was requested, for a run that waited in the queue (POST /api/sync)."""
    progress: Mapping[str, Any] | None = None
    """While it runs: the phase reached and its counts (GET /api/sync/runs/{runId})."""
    mailbox_shards: Mapping[str, Any] | None = None
    """The mailbox shards the run put on the queue: it stays `running` until they are
    done, then its report has their changes (`shared.run.mailboxes.queued`)."""
    answer: Mapping[str, Any] | None = None
    """An on-demand run's steps for its one user (`shared.reconcile.answer`)."""

    def with_outcome(self, outcome: Outcome, entra_read: EntraReadSummary,
                     counts: Mapping[str, int], *, warnings: Sequence[Json] = ()
                     ) -> RunReport:
        """The report of a plan (or of a reused residual): its outcome, the read, the
        counts; `warnings` (problems the read recovered from) come first among errors."""
        return dataclasses.replace(
            self, status=outcome.status, counts=dict(counts), held=outcome.held,
            errors=(*warnings, *outcome.errors), skips=dict(outcome.skips),
            entra_read=entra_read, held_digest=outcome.held_digest)

    def with_skips(self, more: Mapping[str, int]) -> RunReport:
        """The report with `more` skips counted in (users a step's read or apply left
        for a later run)."""
        if not more:
            return self
        skips = dict(self.skips or {})
        for reason, count in more.items():
            skips[reason] = skips.get(reason, 0) + count
        return dataclasses.replace(self, skips=skips)

    def with_error(self, error: Json) -> RunReport:
        return dataclasses.replace(self, errors=(*self.errors, error))

    def failed(self, error: Json, planned: Sequence[Json]) -> RunReport:
        """What was planned is kept for the operator, but not reported as done."""
        return dataclasses.replace(self, status="failed", changes=(), counts={},
                                   planned=planned, errors=(*self.errors, error))

    def to_json(self) -> Json:
        out: Json = {
            "runId": self.run_id,
            "trigger": self.trigger,
            "status": self.status,
            "dryRun": self.dry_run,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.duration_ms is not None:
            out["durationMs"] = self.duration_ms
        out["counts"] = dict(self.counts)
        # The list itself when it is one (an initial sync's 133,000 changes, not copied),
        # or the run's compressed `ChangeLog`, decoded only by those who read it.
        out["changes"] = (self.changes if isinstance(self.changes, list | ChangeLog)
                          else list(self.changes))
        out["held"] = list(self.held)
        out["errors"] = list(self.errors)
        if self.skips is not None:
            out["skips"] = dict(self.skips)
        if self.entra_read is not None:
            out["entraRead"] = self.entra_read.to_json()
        if self.held_digest is not None:
            out["heldDigest"] = self.held_digest
        if self.reused_plan_of is not None:
            out["reusedPlanOf"] = self.reused_plan_of
        if self.queued_at is not None:
            out["queuedAt"] = self.queued_at
        if self.progress is not None:
            out["progress"] = dict(self.progress)
        if self.mailbox_shards is not None:
            out["mailboxShards"] = dict(self.mailbox_shards)
        if self.answer is not None:
            out["user"] = dict(self.answer)
        if self.planned is not None:
            out["planned"] = self.planned if isinstance(self.planned, list) else list(
                self.planned)
        return out


def failure(exc: BaseException) -> Json:
    """The report's error entry for what ended a run (`shared.errors`' reason codes)."""
    classified = errors.classify(exc)
    if classified is None:
        return {"reason": errors.BUG_REASON, "temporary": False,
                "message": f"a bug in the sync ({type(exc).__name__}: {exc}); see the logs"}
    return classified.to_json()


def new_report(trigger: str, dry_run: bool, started: dt.datetime, *,
               run_id: str | None = None, queued_at: str | None = None) -> RunReport:
    """A run's report before it starts."""
    return RunReport(run_id=run_id or new_run_id(started), trigger=trigger, dry_run=dry_run,
                     started_at=iso(started), queued_at=queued_at)
