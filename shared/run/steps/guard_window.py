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
(`shared.reconcile.focus`). The indexes do not: the run was served the Emply side from
the Emply index while the version marker said it was current
(`shared.run.on_demand.load_emply`), and its writes move the marker. When only its own
writes moved it, the index takes them and that marker (`shared.run.served_index`),
saved with the state as a full run saves its indexes (`indexes.save_with_state`), so
the next run is served from it again; when another writer moved it, the index is left
as it was, and the next run reads the Emply side from the tables.
"""

from __future__ import annotations

import dataclasses

from shared.run import indexes, served_index
from shared.run import state as sync_state
from shared.run.context import Run
from shared.run.steps import base

SERVED = "served_index"
"""`Run.reads` key of the Emply index the run was served from (`served_index.ServedIndex`)."""


class GuardWindowStep(base.Step):
    name = "guard_window"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        state = run.state
        window = applied.plan.next_state.recent_deactivations
        changed = bool(applied.changes()) or applied.wrote > 0
        after = dataclasses.replace(
            state, recent_deactivations=window,
            residual=None if changed else state.residual)
        served = run.reads.get(SERVED)
        current = (await served.current_after(run.deps.store, state, run.loaded)
                   if isinstance(served, served_index.ServedIndex) else None)
        if current is not None:
            await indexes.save_with_state(
                run.deps.store, *current, state,
                lambda saved: dataclasses.replace(after, index=saved[0], index_delta=saved[1]))
        elif after != state:
            await sync_state.save_state(run.deps.store, after)
        return base.StepOutcome(self.name, progress={
            "guardWindow": sum(n for _, n in window),
            "residualKept": after.residual is not None,
            "indexKeptCurrent": current is not None})


STEP = GuardWindowStep()
