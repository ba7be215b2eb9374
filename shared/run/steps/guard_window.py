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
(`shared.reconcile.focus`), and so do the indexes the last full run saved: the run
loaded the Emply side from that index while the version marker said it was current
(`shared.run.on_demand.load_emply`); its writes move the marker, so the next run reads
the Emply side from the tables and finds what changed by ETag (`shared.run.indexes`).
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
        return base.StepOutcome(self.name, progress={
            "guardWindow": sum(n for _, n in window),
            "residualKept": after.residual is not None})


STEP = GuardWindowStep()
