"""The user-faults step: per-user read faults (R7) noted while reading, kept between runs.

The steps that read per user (photos, calendars, the mailbox pass) ask `book(run)` which users
to leave alone this run (`skip_waiting`: their last read failed and their next try is to
come; counted in the report's `skips`), and tell it what they asked for and what failed
(`note`): each failure becomes an error on that user in the run's report — in dry runs
and `explain` too, since it is found while reading — or one error for the run when Graph
refused every user alike (`shared.run.user_faults`). A real run then saves the records
(`apply`), after the reads' Emply writes; dry runs and explanations save nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from shared.graph import failures
from shared.run import user_faults
from shared.run.context import Run
from shared.run.steps import base

MAILBOX = user_faults.MAILBOX
"""What a user's calendars and events are read from (the calendars and events steps)."""
PHOTO = user_faults.PHOTO
RETRY_LATER = user_faults.RETRY_LATER


@dataclasses.dataclass
class Book:
    """One run's view of the faults: as stored, and what this run asked and saw fail."""

    stored: user_faults.Faults
    now: dt.datetime
    asked: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    failed: dict[str, dict[str, failures.UserReadFailure]] = dataclasses.field(
        default_factory=dict)

    def result(self) -> user_faults.Faults:
        """The records this run leaves."""
        out = self.stored
        for kind in user_faults.KINDS:
            if kind in self.asked or kind in self.failed:
                out = out.after(kind, self.asked.get(kind, ()), self.failed.get(kind, {}),
                                self.now)
        return out

    def record(self, kind: str, entra_id: str) -> user_faults.Fault | None:
        """The user's record as this run leaves it (None: no fault)."""
        failure = self.failed.get(kind, {}).get(entra_id)
        previous = self.stored.of(kind).get(entra_id)
        if failure is not None:
            return user_faults.next_fault(previous, failure, self.now)
        if entra_id in self.asked.get(kind, ()):
            return None
        return previous


def book_of(run: Run) -> Book | None:
    found = run.reads.get(STEP.name)
    return found if isinstance(found, Book) else None


async def book(run: Run) -> Book:
    """The run's book, the stored part read once (by the first step that asks)."""
    found = book_of(run)
    if found is None:
        stored = user_faults.Faults.from_json(
            await run.deps.store.load_state_part(user_faults.STATE_PART))
        found = run.reads[STEP.name] = Book(stored, run.started)
    return found


async def skip_waiting(run: Run, kind: str, entra_ids: Iterable[str]) -> list[str]:
    """`entra_ids` less the users whose next try of `kind` is still to come (counted
    under the report's `skips`). An on-demand run (`run.try_waiting`) tries its user
    now: someone asked for that user, and its outcome is recorded like any other."""
    found = await book(run)
    if run.try_waiting:
        return list(entra_ids)
    waiting = found.stored.waiting(kind, found.now)
    ids = list(entra_ids)
    kept = [i for i in ids if i not in waiting]
    if len(kept) < len(ids):
        reason = user_faults.RETRY_LATER[kind]
        run.skips[reason] = run.skips.get(reason, 0) + len(ids) - len(kept)
    return kept


async def note(run: Run, kind: str, read: str, asked: Collection[str],
               failed: Sequence[failures.UserReadFailure], items: int | None = None) -> None:
    """What a read of `kind` (`read`: its name in errors) asked for (Entra ids) and what
    failed; `items`: how many things were read when that is not one per user (events:
    calendars). The errors go into the run's warnings (reported by dry runs too)."""
    run.warnings = (*run.warnings, *await noted(run, kind, read, asked, failed, items))


async def noted(run: Run, kind: str, read: str, asked: Collection[str],
                failed: Sequence[failures.UserReadFailure], items: int | None = None
                ) -> list[dict[str, Any]]:
    """`note`'s book-keeping; the errors returned instead (a step that reads after the
    plan, the mailbox pass, reports them in its outcome)."""
    return book_noted(await book(run), kind, read, asked, failed, items)


def book_noted(found: Book, kind: str, read: str, asked: Collection[str],
               failed: Sequence[failures.UserReadFailure], items: int | None = None
               ) -> list[dict[str, Any]]:
    """`noted` on a book of its own (a run that reuses the last outcome has no `Run`)."""
    found.asked.setdefault(kind, set()).update(asked)
    mine = found.failed.setdefault(kind, {})
    for failure in failed:
        mine.setdefault(failure.entra_id, failure)
    records = {f.entra_id: r for f in failed
               if (r := found.record(kind, f.entra_id)) is not None}
    return user_faults.errors(read, len(asked) if items is None else items, failed, records)


def explained(result: dict[str, Any], user: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """`explain`'s answer with why the user's calendars or photo are not synced now (its
    failure and next try), when a read of them failed."""
    found, entra_id = book_of(run), user.get("entraId")
    if found is None or not isinstance(entra_id, str):
        return result
    words = [user_faults.explain_words(kind, fault) for kind in user_faults.KINDS
             if (fault := found.record(kind, entra_id)) is not None]
    return {**result, "why": [*result.get("why", ()), *words]} if words else result


class UserFaultsStep(base.Step):
    name = "user_faults"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        found = book_of(run)
        if found is None:
            return base.StepOutcome(self.name)
        after = found.result()
        if after != found.stored:
            await run.deps.store.save_state_part(user_faults.STATE_PART, after.to_json())
        return base.StepOutcome(self.name, progress={
            "mailboxesFailing": len(after.of(user_faults.MAILBOX)),
            "photosFailing": len(after.of(user_faults.PHOTO))})


STEP = UserFaultsStep()
