"""The run's first step: when nothing changed since the last run, its outcome stands.

Every successful run records its *residual* in the sync state
(`shared.run.state.Residual`): what its plan left for later (held deactivations,
errors, skips), with what it was made from — the Emply version marker after the
run's own writes, the tenant, the organization and the UTC date. A plan made again
right after applying is the same residual and no changes:
`tests/unit/test_properties.py` checks this on thousands of generated worlds
(`test_a_plan_applied_leaves_the_same_residual`).

So a run first reads what changed (`check`): Emply's marker (one read) and, when it is
the recorded one, Graph's delta rounds (`reader.read_changes`: the organization and
one request per resource when nothing changed). When both rounds are empty, the
organization is the same, the date is the same and no approval was given, the
recorded residual is this run's outcome, and the 100,000-user snapshot is never read
back or planned over. Anything else — any change on either side, a new day, an
approval — plans as usual, and the changes already read are folded into the previous
mirror (`reader.read_entra(changes=...)`), not asked for again.

Invariant: the planner reads its `now` only through its UTC date (R8's resignation
dates), but for the time stamps it writes on new links (`linkedAt`), which are
changes and never part of a residual. So a residual made at 00:00:01 holds at
23:59:59 of the same UTC day, and not past midnight, when a resignation date may
fall: `test_the_plan_depends_on_the_clock_only_through_the_utc_date` (Hypothesis).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from shared.graph import client as graph_client
from shared.graph import reader
from shared.run import report as run_report
from shared.run import state as sync_state
from shared.store import protocols


@dataclasses.dataclass(frozen=True)
class Check:
    """What `check` found: `residual` when the last run's outcome stands, and the
    changes it read from Graph (to fold into the previous mirror otherwise), if any."""

    residual: sync_state.Residual | None
    changes: reader.Changes | None

    @property
    def round(self) -> reader.DeltaRound | None:
        """The (empty) delta round of a reused residual."""
        return self.changes if isinstance(self.changes, reader.DeltaRound) else None


async def check(
    store: protocols.EmplyTables,
    graph: graph_client.GraphClient,
    state: sync_state.SyncState,
    *,
    started: dt.datetime,
    approve: object | None,
) -> Check:
    recorded = state.residual
    if recorded is None or state.mirror_head is None or not recorded.reusable_on(
        started, approve=approve
    ):
        return Check(None, None)
    if await store.current_version() != recorded.emply_version:
        return Check(None, None)  # Emply changed: the usual read (settings may differ)
    changes = await reader.read_changes(graph, state.mirror_head, tenant_id=recorded.tenant_id)
    if (
        isinstance(changes, reader.DeltaRound)
        and changes.empty
        and changes.organization == recorded.organization
    ):
        return Check(recorded, changes)
    return Check(None, changes)


def reused_report(report: run_report.RunReport, residual: sync_state.Residual,
                  changes: reader.DeltaRound, warnings: tuple[run_report.Json, ...]
                  ) -> run_report.RunReport:
    """The report of a run whose outcome is the last run's residual."""
    read = run_report.EntraReadSummary(full_read=False, reason=None, requests=changes.requests,
                                    throttled=changes.throttled)
    return dataclasses.replace(
        report.with_outcome(residual.outcome, read, {}, warnings=warnings),
        changes=(), reused_plan_of=residual.run_id)
