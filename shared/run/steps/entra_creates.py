"""R9 `writeBack.create`, carried out: the Entra users, then their Emply links, one run.

The order is what makes a crash harmless:
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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from shared.graph import client as graph_client
from shared.graph import creator
from shared.reconcile import entity_writes, entra_create, model
from shared.store import protocols


@dataclasses.dataclass(frozen=True)
class Created:
    result: creator.CreateResult
    links: tuple[model.Change, ...] = ()
    """The Emply links written for the users created (kind link_user)."""


def link_change(change: model.Change, entra_id: str, settings: model.Settings,
                group_id: str, at: str) -> model.Change:
    upn = str(change.after["userPrincipalName"])
    return model.Change(
        model.LINK_USER, "R9", entra_create.CREATED_IN_ENTRA, change.user_id, entra_id,
        {"entraId": None, "entraCreate": upn},
        {"entraId": entra_id, "tenantId": settings.tenant_id, "linkedAt": at,
         "linkedDomain": model.upn_domain(upn), "syncGroups": [group_id],
         "entraCreate": None},
        f"linked to Entra user {upn} ({entra_id}), which this run created in Entra for it "
        f"(writeBack.create) and added to group {group_id}",
    )


async def create_and_link(
    store: protocols.EmplyTables,
    graph: graph_client.GraphClient,
    changes: Sequence[model.Change],
    settings: model.Settings,
    run_id: str,
    at: str,
) -> Created:
    """Carry out the plan's `entra_create` changes; see the module's docstring."""
    group_id = settings.groups[0].group_id
    upns = {c.user_id: str(c.after["userPrincipalName"]) for c in changes if c.user_id}
    users = await store.read_entities("users", upns)
    marked = {i: {**u, "entraCreate": upns[i]} for i, u in users.items()}
    to_mark = [marked[i] for i, u in users.items() if u.get("entraCreate") != upns[i]]
    if to_mark:
        await store.write_entities("users", to_mark)
    result = await creator.create_users(
        graph, [c for c in changes if c.user_id in marked], group_id)
    links = tuple(link_change(change, entra_id, settings, group_id, at)
                  for change, entra_id in result.created)
    if links:
        writes = entity_writes.PlannedWrites(marked, {}, model.Plan(changes=links), run_id, at)
        await store.write_entities("users", [writes.user(i) for i in writes.user_ids])
    return Created(result, links)
