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

from collections.abc import Collection, Sequence

from shared.reconcile import entity_writes
from shared.run import conflicts
from shared.run.context import Run
from shared.run.steps import base
from shared.store import protocols

READ_CHUNK = 1000
"""Users read whole (with their history) before one write: a churn run that rewrites
10,000 linked users reads and writes them a chunk of partitions at a time, so it never
holds all their histories at once."""


class DirectoryStep(base.Step):
    name = "directory"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        store, loaded, plan = run.deps.store, run.loaded, applied.plan
        users = {u["id"]: u for u in run.doc.get("users", ())}
        employees = {e["id"]: e for e in run.doc.get("employees", ())}
        writes = entity_writes.PlannedWrites(users, employees, plan, run.run_id, run.at)
        unread: set[str] = set()
        if loaded.served_from_cache:
            # The cached copy has no lastChange/history: rewrite whole entities only (a
            # user that had none is whole in the copy already). One Emply changed
            # meanwhile is not read; its write below finds the conflict.
            unread = {c.user_id for c in plan.changes if c.employee_id is None and c.user_id}
            unread.update(b.user_id for b in plan.bookkeeping)
            unread = {i for i in unread - loaded.whole if i in users}
        skipped_users: set[str] = set()
        for chunk in _chunks(store, writes.user_ids, unread):
            wanted = [i for i in chunk if i in unread]
            whole = await store.read_entities("users", wanted, loaded=loaded,
                                              skip_conflicts=True) if wanted else {}
            compact = {i: users[i] for i in whole}
            users.update(whole)
            skipped_users.update(await store.write_built(
                "users", chunk, writes.user, loaded=loaded, skip_conflicts=True))
            users.update(compact)  # written: its history is not held any longer
        skipped = conflicts.Skipped(
            frozenset(skipped_users),
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


def _chunks(store: protocols.EmplyTables, user_ids: Sequence[str], unread: Collection[str]
            ) -> list[list[str]]:
    """The users to write, in chunks of whole write units holding about READ_CHUNK users
    to read first (one chunk when there are few: each is a write of its own)."""
    if len(unread) <= READ_CHUNK:
        return [list(user_ids)] if user_ids else []
    by_unit: dict[str, list[str]] = {}
    for user_id in user_ids:
        by_unit.setdefault(store.write_unit("users", user_id), []).append(user_id)
    chunks: list[list[str]] = [[]]
    reads = 0
    for unit in sorted(by_unit):
        if reads >= READ_CHUNK:
            chunks.append([])
            reads = 0
        chunks[-1].extend(by_unit[unit])
        reads += sum(1 for i in by_unit[unit] if i in unread)
    return chunks


STEP = DirectoryStep()
