"""R17: a run while the integration is removed (`settings.enabled` false).

Such a run does not read Entra at all: a removed integration may no longer have
Graph's consent, and nothing it could read would be used. It plans as usual (the
planner makes no user, status or role change then), applies that, the mailbox pass
removes every calendar and mirrored event (`shared.reconcile.removal`, a shard of
users at a time; `DISABLED_STEPS`), and the run forgets the Entra mirror and its delta
links: the run that follows turning the integration on again reads Entra in full, so
what changed meanwhile (leavers, new members) is seen as it is, under the deactivation
guard as always. The role mapping of the last run that
synced roles and the guard's window are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses

from shared.graph import reader
from shared.reconcile import entity_writes
from shared.run import state as sync_state
from shared.run.context import Run
from shared.run.steps import base


def not_read(tenant_id: str) -> reader.EntraRead:
    """What a disabled run knows of Entra: nothing, and no Graph request made for it."""
    mirror = {"version": reader.MIRROR_VERSION, "tenantId": tenant_id, "organization": {},
              "users": {}, "groups": {}, "deltaLinks": {}}
    return reader.EntraRead(mirror=mirror, full_read=False, full_read_reason=None,
                            requests=0, throttled=0)


class DisabledStep(base.Step):
    """Its employee and (none expected) user writes, then the state without the Entra
    mirror (the mailbox pass, the next step, removes the calendars and their events).
    The state is written last: a run that stops half-way leaves what is left for the
    next run to plan again."""

    name = "disabled"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        store, loaded, plan, state = run.deps.store, run.loaded, applied.plan, run.state
        users = {u["id"]: u for u in run.doc.get("users", ())}
        employees = {e["id"]: e for e in run.doc.get("employees", ())}
        writes = entity_writes.PlannedWrites(users, employees, plan, run.run_id, run.at)
        if loaded.served_from_cache and writes.user_ids:
            users.update(await store.read_entities("users", writes.user_ids, loaded=loaded))
        await store.write_built("users", writes.user_ids, writes.user, loaded=loaded)
        await store.write_built("employees", writes.employee_ids, writes.employee,
                                loaded=loaded)
        await sync_state.save_state(store, dataclasses.replace(
            state, mirror_head=None, index=None, index_delta=None, legacy_mirror=None,
            residual=None,
            previous_mapping=plan.next_state.previous_mapping,
            recent_deactivations=plan.next_state.recent_deactivations,
            held_digest=plan.next_state.held_digest, last_run_id=run.run_id))
        for generation in (state.index, state.index_delta):
            if generation is not None:
                with contextlib.suppress(Exception):  # a leftover blob costs storage only
                    await store.delete_index(generation)
        return base.StepOutcome(self.name, reusable=False)


STEP = DisabledStep()
