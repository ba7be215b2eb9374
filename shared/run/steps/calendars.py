"""The calendars step: what the one plan needs of mailboxes, which is only R15's.

R13 and R14 are planned apart, a shard of users at a time, by the mailbox pass (the
`mailboxes` step, `shared.run.mailboxes`): the one plan leaves calendars and events
alone (`EntraSnapshot.calendars_apart`). R15 still plans in it: an outbound event of a
user whose mailbox is not in the cloud is marked failed when planned. So this step
reads the calendars of the users with an outbound event to push, and only theirs
(`shared.graph.mailboxes`), for the planner to tell (`mailbox_not_in_cloud`); an
explanation (R18) reads its user's too, to say why its calendars are (not) synced. A
user whose calendars could not be read is an error on that user, left alone until its
next try (`shared.run.steps.user_faults`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shared.graph import mailboxes
from shared.reconcile import convert, model
from shared.run.context import Run
from shared.run.steps import base, user_faults


def read_of(run: Run) -> mailboxes.CalendarRead | None:
    found = run.reads.get(STEP.name)
    return found if isinstance(found, mailboxes.CalendarRead) else None


def pushing(run: Run) -> list[str]:
    """The Entra ids of the users whose calendars the pass syncs and who have an outbound
    event still to push (R15), or who are being explained (R18)."""
    waiting = {o["userId"] for o in run.doc.get("outboundEvents", ())
               if _pending({"outboundEvents": [o]})}
    if run.only_user is not None:
        waiting.add(run.only_user)
    synced = set(convert.calendar_synced_entra_ids(run.doc, run.directory.mirror["users"]))
    return sorted(u["entraId"] for u in run.doc.get("users", ())
                  if u["id"] in waiting and u.get("entraId") in synced)


class CalendarsStep(base.Step):
    name = "calendars"

    async def read(self, run: Run) -> None:
        if not (run.settings.enabled and run.settings.calendar_sync):
            return
        wanted = await user_faults.skip_waiting(run, user_faults.MAILBOX, pushing(run))
        if wanted:
            found = run.reads[self.name] = await mailboxes.read_calendars(run.deps.graph,
                                                                          wanted)
            # R7: a mailbox Graph would not list is an error on that user.
            await user_faults.note(run, user_faults.MAILBOX, "calendars", wanted,
                                   list(found.failures.values()))

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        found = read_of(run)
        return dataclasses.replace(
            entra, calendars_apart=True,
            mailboxes=None if found is None else convert.mailboxes(found.mailboxes))

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        # An outbound event left pending (its user linked only now, a push that failed)
        # is planned again by the next run: this run's outcome is not one to reuse.
        return base.StepOutcome(self.name, reusable=not _pending(run.doc))


def _pending(doc: Mapping[str, Any]) -> bool:
    return any((o.get("status") or "pending") == "pending" and not o.get("graphId")
               for o in doc.get("outboundEvents", ()))


STEP = CalendarsStep()
