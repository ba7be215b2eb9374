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
dropped from the report; the next run plans it again. Changes an earlier step dropped
(a user Emply changed meanwhile) are not written either.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.graph import client as graph_client
from shared.graph import creator, writer
from shared.reconcile import entity_writes, entra_create, model
from shared.run.context import Run
from shared.run.steps import base
from shared.store import protocols

_WRITES = model.ENTRA_KINDS - {model.ENTRA_CREATE}


class WriteBackStep(base.Step):
    name = "write_back"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        planned = applied.pending(_WRITES)
        creates = applied.pending({model.ENTRA_CREATE})
        if not planned and not creates:
            return base.StepOutcome(self.name)
        result = await writer.write_changes(run.deps.graph, planned)
        created, links = await create_and_link(run.deps.store, run.deps.graph, creates, run) \
            if creates else (None, ())
        failed = (*result.failed, *(created.failed if created else ()))
        return base.StepOutcome(
            self.name, dropped=failed, added=links,
            errors=(*result.errors, *(created.errors if created else ())),
            wrote=len(links),
            progress={"written": len(result.written), "notWritten": len(failed),
                      "createdInEntra": len(links),
                      "batches": result.batches + (created.batches if created else 0)})


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
