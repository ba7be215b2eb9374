"""The directory step: the plan's users and employees, written to the Emply side.

The directory itself (users, groups, organization) is read by the pipeline before any
step (`shared.run.prepare`): it is the one read that is all or nothing (R7). Here the
plan's user and employee changes are written, each entity conditionally on the ETag it
was loaded with: an entity Emply changed meanwhile is left out
(`shared.run.conflicts`), reported as `concurrent_change`, and its changes are dropped
from the report (and so from the change feed and from write-back); the next run plans
that user again from what Emply wrote.
"""

from __future__ import annotations

from shared.reconcile import entity_writes
from shared.run import conflicts
from shared.run.context import Run
from shared.run.steps import base


class DirectoryStep(base.Step):
    name = "directory"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        store, loaded, plan = run.deps.store, run.loaded, applied.plan
        users = {u["id"]: u for u in run.doc.get("users", ())}
        employees = {e["id"]: e for e in run.doc.get("employees", ())}
        if loaded.served_from_cache:
            # The cached copy has no lastChange/history: rewrite whole entities only (a
            # user that had none is whole in the copy already). One Emply changed
            # meanwhile is not read; its write below finds the conflict.
            touched = {c.user_id for c in plan.changes if c.employee_id is None and c.user_id}
            touched.update(b.user_id for b in plan.bookkeeping)
            touched -= loaded.whole
            users.update(await store.read_entities(
                "users", (i for i in touched if i in users), loaded=loaded,
                skip_conflicts=True))
        writes = entity_writes.PlannedWrites(users, employees, plan, run.run_id, run.at)
        skipped = conflicts.Skipped(
            frozenset(await store.write_built("users", writes.user_ids, writes.user,
                                              loaded=loaded, skip_conflicts=True)),
            frozenset(await store.write_built("employees", writes.employee_ids,
                                              writes.employee, loaded=loaded,
                                              skip_conflicts=True)))
        return base.StepOutcome(
            self.name, dropped=conflicts.left_out(plan.changes, skipped),
            errors=tuple(skipped.errors()), conflicts=skipped,
            wrote=len(writes.user_ids) + len(writes.employee_ids),
            progress={"usersWritten": len(writes.user_ids),
                      "employeesWritten": len(writes.employee_ids),
                      "concurrentChanges": len(skipped.users) + len(skipped.employees)})


STEP = DirectoryStep()
