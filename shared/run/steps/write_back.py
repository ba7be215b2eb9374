"""The write-back step (R9): the plan's Entra writes, after the Emply ones.

An Entra write never changes Emply (R5), except the link of a user created in Entra
(`writeBack.create`), carried out in an order that makes a crash harmless:

1. each Emply user to get an Entra user is marked (`entraCreate`: the UPN) before
   anything is sent to Graph;
2. `shared.graph.creator` looks each UPN up, POSTs the users not found, adds them to
   the first configured group;
3. each user now in the group is linked in Emply (`link_user`, reason
   `created_in_entra`), which clears the mark.

A run killed after 2's POST leaves a marked, unlinked Emply user and an Entra user
with its UPN: the next run plans that create again with the Entra user's id
(`shared.reconcile.entra_create`), so it is added to the group and linked, never made
twice; the lookup by UPN guards the same way when the POST's answer was lost.

What was not written is reported per user (or once, for a missing permission) and
dropped from the report; the next run plans it again. Writes the write quota could not
fit are not errors: counted under `skips` (`entra_write_deferred`) and planned again. A
write Graph refused as a privileged user's (`entra_user_protected`) is reported by the
run it was refused in and kept in the sync-state part "refused"
(`shared.run.refused_writes`): the planner does not plan that very write again until
the employee profile or the Entra user changes (or a week has passed). Changes an
earlier step dropped (a user Emply changed meanwhile) are not written either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from shared.graph import client as graph_client
from shared.graph import creator, writer
from shared.reconcile import entity_writes, entra_create, model
from shared.run import refused_writes
from shared.run.context import Run
from shared.run.steps import base
from shared.store import protocols

_WRITES = model.ENTRA_KINDS - {model.ENTRA_CREATE}
DEFERRED = "entra_write_deferred"
"""Skip reason: writes the write quota could not fit before the run's deadline (or still
429): not errors; the next run plans them again."""


class WriteBackStep(base.Step):
    name = "write_back"

    async def read(self, run: Run) -> None:
        if run.settings.enabled and run.settings.write_back:
            run.reads[self.name] = refused_writes.loaded(
                await run.deps.store.load_state_part(refused_writes.STATE_PART), run.started)

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        found = run.reads.get(self.name)
        return dataclasses.replace(entra, refused_writes=found) if found else entra

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        planned = applied.pending(_WRITES)
        creates = applied.pending({model.ENTRA_CREATE})
        if not planned and not creates:
            await self._keep_refused(run, planned, ())
            return base.StepOutcome(self.name)
        before: Mapping[str, model.RefusedWrite] = run.reads.get(self.name) or {}
        result = await writer.write_changes(run.deps.graph, planned, known_protected=before)
        created, links = await create_and_link(run.deps.store, run.deps.graph, creates, run) \
            if creates else (None, ())
        await self._keep_refused(run, planned, result.protected)
        failed = (*result.failed, *(created.failed if created else ()))
        deferred = len(result.deferred) + len(created.deferred if created else ())
        return base.StepOutcome(
            self.name, dropped=failed, added=links,
            errors=(*result.errors, *(created.errors if created else ())),
            wrote=len(links), skips={DEFERRED: deferred} if deferred else {},
            progress={"written": len(result.written), "notWritten": len(failed),
                      "deferred": deferred, "createdInEntra": len(links),
                      "batches": result.batches + (created.batches if created else 0)})

    async def _keep_refused(self, run: Run, planned: Sequence[model.Change],
                            protected: Sequence[model.Change]) -> None:
        """The refused writes the next run's planner skips: this run's, and the earlier
        ones this run did not plan again (see `refused_writes`)."""
        before: Mapping[str, model.RefusedWrite] = run.reads.get(self.name) or {}
        after = refused_writes.after(before, planned, protected, run.started)
        if after != before:
            await run.deps.store.save_state_part(refused_writes.STATE_PART,
                                                 refused_writes.to_json(after))


def group_id(run: Run) -> str:
    return run.settings.groups[0].group_id


def _link(change: model.Change, entra_id: str, run: Run, group: str) -> model.Change:
    upn = str(change.after["userPrincipalName"])
    return model.Change(
        model.LINK_USER, "R9", entra_create.CREATED_IN_ENTRA, change.user_id, entra_id,
        {"entraId": None, "entraCreate": upn},
        {"entraId": entra_id, "tenantId": run.settings.tenant_id, "linkedAt": run.at,
         "linkedDomain": model.upn_domain(upn), "syncGroups": [group],
         "entraCreate": None},
        f"linked to Entra user {upn} ({entra_id}), which this run created in Entra for it "
        f"(writeBack.create) and added to group {group}",
    )


async def create_and_link(store: protocols.EmplyTables, graph: graph_client.GraphClient,
                          changes: Sequence[model.Change], run: Run
                          ) -> tuple[creator.CreateResult, tuple[model.Change, ...]]:
    """Carry out `entra_create` changes (see the module's docstring); the links made."""
    group = group_id(run)
    upns = {c.user_id: str(c.after["userPrincipalName"]) for c in changes if c.user_id}
    users = await store.read_entities("users", upns)
    marked = {i: {**u, "entraCreate": upns[i]} for i, u in users.items()}
    to_mark = [marked[i] for i, u in users.items() if u.get("entraCreate") != upns[i]]
    if to_mark:
        await store.write_entities("users", to_mark)
    result = await creator.create_users(
        graph, [c for c in changes if c.user_id in marked], group)
    links = tuple(_link(change, entra_id, run, group) for change, entra_id in result.created)
    if links:
        writes = entity_writes.PlannedWrites(marked, {}, model.Plan(changes=links),
                                             run.run_id, run.at)
        await store.write_entities("users", [writes.user(i) for i in writes.user_ids])
    return result, links


STEP = WriteBackStep()
