"""One shape for every step of a run, and the one place their outcomes are folded.

A step is a module with a `STEP` object of this shape::

    read(run)                 its own reads (Graph, mostly per user), kept in run.reads
    plan_input(run, entra)    what it read, added to the planner's Entra snapshot (pure)
    apply(run, applied)       its part of the plan, carried out -> StepOutcome
    preview(run, plan)        a dry run's: what apply would do, nothing written
                              (a step that plans apart, a group of users at a time)

The pipeline reads with every step, makes one pure plan from everything read
(`shared.reconcile.planner.plan`), then applies step by step in the same order. A step
never edits the run's report: it says what happened in its `StepOutcome` (changes that
did not happen as planned, changes made that were not planned, errors, progress), and
`Applied` folds the outcomes once (kopf's "one patch per cycle"). Which changes a later
step still has to carry out is `Applied.pending`: a change an earlier step dropped
(a user Emply changed meanwhile) is not written to Entra either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from shared.reconcile import model
from shared.run import conflicts
from shared.run.context import Run
from shared.run.report import Json


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """What one step's apply did, apart from what the plan says."""

    step: str
    dropped: tuple[model.Change, ...] = ()
    """Planned changes that did not happen (left out of the report's changes and counts;
    the next run plans them again)."""
    added: tuple[model.Change, ...] = ()
    """Changes made that the plan did not hold (the links of users created in Entra)."""
    errors: tuple[Json, ...] = ()
    progress: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Counts for the run's phase log and progress."""
    conflicts: conflicts.Skipped = dataclasses.field(default_factory=conflicts.Skipped)
    """Emply entities not written because Emply changed them during the run."""
    wrote: int = 0
    """Emply entities written (the sync state's snapshot is kept when none was)."""
    skips: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Counted under the report's `skips`: what was left for a later run, by reason
    (write-back's `entra_write_deferred`)."""
    reusable: bool = True
    """False: this run's outcome must not be reused by an unchanged next run (a write
    that failed, or work Graph's delta would not show again)."""
    requests: int = 0
    """Graph requests the step made while applying (the report's `entraRead` counts
    them with the reads')."""
    throttled: int = 0
    shards: Mapping[str, Any] | None = None
    """Mailbox shards this step put on the queue (`shared.run.mailboxes.queued`): the run
    is finished only when they are."""


class Step:
    """The default of each phase: nothing to read, nothing to add, nothing to apply."""

    name = "step"

    async def read(self, run: Run) -> None:
        return None

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        return entra

    async def apply(self, run: Run, applied: Applied) -> StepOutcome:
        return StepOutcome(self.name)

    async def preview(self, run: Run, plan: model.Plan) -> StepOutcome:
        return StepOutcome(self.name)


@dataclasses.dataclass(frozen=True)
class Applied:
    """A plan and the outcomes of the steps applied so far."""

    plan: model.Plan
    outcomes: tuple[StepOutcome, ...] = ()

    def then(self, outcome: StepOutcome) -> Applied:
        return dataclasses.replace(self, outcomes=(*self.outcomes, outcome))

    @property
    def conflicts(self) -> conflicts.Skipped:
        found = conflicts.Skipped()
        for outcome in self.outcomes:
            found = found | outcome.conflicts
        return found

    @property
    def reusable(self) -> bool:
        return all(o.reusable for o in self.outcomes)

    @property
    def wrote(self) -> int:
        return sum(o.wrote for o in self.outcomes)

    @property
    def shards(self) -> Mapping[str, Any] | None:
        """What a step put on the mailbox queue, if any."""
        return next((o.shards for o in self.outcomes if o.shards), None)

    @property
    def requests(self) -> tuple[int, int]:
        """Graph's requests and 429s while applying."""
        return (sum(o.requests for o in self.outcomes),
                sum(o.throttled for o in self.outcomes))

    def _dropped(self) -> frozenset[int]:
        # Changes are values that may compare equal; a plan holds each one once, so
        # identity tells "this planned change" apart.
        return frozenset(id(c) for o in self.outcomes for c in o.dropped)

    def pending(self, kinds: Iterable[str]) -> list[model.Change]:
        """The plan's changes of `kinds` that no step has dropped."""
        wanted = frozenset(kinds)
        dropped = self._dropped()
        return [c for c in self.plan.changes if c.kind in wanted and id(c) not in dropped]

    def changes(self) -> list[model.Change]:
        """What the run did: the plan's changes less the dropped, plus the added."""
        dropped = self._dropped()
        return [*(c for c in self.plan.changes if id(c) not in dropped),
                *(c for o in self.outcomes for c in o.added)]

    def counts(self) -> dict[str, int]:
        counts = self.plan.counts()
        for outcome in self.outcomes:
            for change in outcome.dropped:
                counts[change.kind] -= 1
                if not counts[change.kind]:
                    del counts[change.kind]
            for change in outcome.added:
                counts[change.kind] = counts.get(change.kind, 0) + 1
        return counts

    def errors(self) -> Sequence[Json]:
        return [e for o in self.outcomes for e in o.errors]

    def skips(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for outcome in self.outcomes:
            for reason, count in outcome.skips.items():
                out[reason] = out.get(reason, 0) + count
        return out


@runtime_checkable
class GraphUsage(Protocol):
    """What a step's read says of its Graph traffic."""

    @property
    def requests(self) -> int: ...

    @property
    def throttled(self) -> int: ...


def usage(run: Run) -> tuple[int, int]:
    """Graph's requests and 429s of the steps' reads."""
    found = [r for r in run.reads.values() if isinstance(r, GraphUsage)]
    return sum(r.requests for r in found), sum(r.throttled for r in found)

