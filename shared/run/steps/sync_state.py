"""The sync-state step: what this run read and planned, remembered for the next run.

The bulky part of the state (the directory and the Emply copy) goes in the indexes
(`shared.run.entra_index`, `shared.run.emply_index`), written under a new generation
only when something changed; then the state (delta links, the indexes' generation, the
role mapping, the guard's window, the residual) names them. It comes after every Emply
and Entra write of the run: a run that fails before it leaves the delta links where
they were, so the next run reads the same changes again and plans from what was
written (R7). The old generation is deleted last (a leftover costs storage, not
correctness).

The residual (`shared.run.unchanged`) is kept only when the next run may reuse this
run's outcome: no step said otherwise (calendars, events and photos are not in
Graph's delta; a write that failed must be planned again), no Entra write was planned
(Graph's delta would not show one that failed), no entity was left out for a
concurrent change.

This is the step of a run that planned the whole world; a run that planned only what
changed saves its indexes itself (`shared.run.indexed`).
"""

from __future__ import annotations

import contextlib

from shared.reconcile import model
from shared.run import indexes
from shared.run import state as sync_state
from shared.run.context import Run
from shared.run.emply_index import EmplyIndex
from shared.run.entra_index import EntraIndex
from shared.run.steps import base


class SyncStateStep(base.Step):
    name = "sync_state"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        store, loaded, plan = run.deps.store, run.loaded, applied.plan
        mirror = run.directory.mirror
        previous = run.previous_mirror
        before = (run.state.index, run.state.index_delta)
        same = (
            previous is not None and before[0] is not None and before[1] is None
            and loaded.served_from_cache and not applied.wrote
            and all(mirror[k] is previous.get(k) for k in ("users", "groups"))
        )
        saved: tuple[str, str | None] = (before[0], None) if same and before[0] else ("", None)
        if not same:
            entra = EntraIndex.from_mirror(mirror)
            emply = EmplyIndex.from_entries(
                loaded.version(), {k: loaded.ledger.entries(k) for k in indexes.ALL_KINDS})
            saved = await indexes.save(store, entra, emply, (None, None))  # whole
        reusable = (applied.reusable and not applied.conflicts
                    and not any(c.kind in model.ENTRA_KINDS for c in plan.changes))
        residual = sync_state.residual(
            plan, run_id=run.run_id, started=run.started, tenant_id=run.settings.tenant_id,
            emply_version=loaded.version(), organization=mirror["organization"],
        ) if reusable else None
        await sync_state.save_state(store, sync_state.after_run(
            mirror, generation=saved[0], next_state=plan.next_state, run_id=run.run_id,
            residual=residual))
        for generation in indexes.stale(before, saved):
            with contextlib.suppress(Exception):
                await store.delete_index(generation)
        return base.StepOutcome(self.name, progress={"indexKept": same,
                                                     "residualKept": residual is not None})


STEP = SyncStateStep()
