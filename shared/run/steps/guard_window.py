"""An on-demand run's state step: R7's window moves on, nothing that delta reads does.

A full run's `sync_state` step writes the new mirror, its delta links and the residual.
An on-demand run read one user directly (`shared.run.user_view`), so all of that stays
as the last full run left it: the next full run reads the same delta rounds from the
same links and folds them into the same mirror, and sees this run's writes as Emply and
Graph now hold them. Written here, after every write of the run:

- R7's window with this run's deactivations applied without approval, so a string of
  on-demand deactivations counts toward the guard like one run's burst;
- the residual dropped when the run changed anything. The residual is the last full
  run's outcome of an unchanged world, which this run changed (its Emply writes move
  the version marker, so the next run would not reuse it anyway; an Entra write or an
  event pushed would not show in that marker).

The run-wide R11 mapping and the set the last full run held stay as they were
(`shared.reconcile.focus`). And the snapshot's compact Emply copy, which the run loaded
the Emply side from (`shared.run.on_demand.cached_emply`), is replaced by the copy as
this run's writes left it, tagged with the version marker they set: the next run (full
or on-demand) is served from it, not from 100,000 entities. Only that part of the
snapshot is rewritten, in place: a copy is used only while the marker it names is
current, so it is never wrong, at worst unused; the Entra part stays.
"""

from __future__ import annotations

import dataclasses

from shared.run import state as sync_state
from shared.run.context import Run
from shared.run.steps import base


class GuardWindowStep(base.Step):
    name = "guard_window"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        state = run.state
        window = applied.plan.next_state.recent_deactivations
        changed = bool(applied.changes()) or applied.wrote > 0
        after = dataclasses.replace(
            state, recent_deactivations=window,
            residual=None if changed else state.residual)
        if after != state:
            await sync_state.save_state(run.deps.store, after)
        cache = run.loaded.cache() if changed else None
        if cache is not None and state.snapshot is not None:
            await run.deps.store.save_snapshot(state.snapshot, {"emply": cache}, part="emply")
        return base.StepOutcome(self.name, progress={
            "guardWindow": sum(n for _, n in window),
            "residualKept": after.residual is not None,
            "emplyCopyKept": cache is not None and state.snapshot is not None})


STEP = GuardWindowStep()
