"""When nothing changed since the last run, its outcome stands: no need to plan again.

Every successful run records its *residual* in the sync state: what its plan left
for later (held deactivations, errors, skips), with what it was made from — the
Emply version marker after the run's own writes, the tenant, the organization and
the UTC date. A plan made again right after applying is the same residual and no
changes: `tests/unit/test_properties.py` checks this on thousands of generated
worlds (`test_a_plan_applied_leaves_the_same_residual`).

So a run first asks Graph for its delta rounds (one request each) and Emply for its
marker (one read). When both rounds are empty, the marker is the recorded one, the
organization is the same, the date is the same and no approval was given, the
recorded residual is this run's outcome, and the 100,000-user snapshot is never
read back or planned over. Anything else — any change on either side, a new day (R8
acts on dates), an approval — plans as usual, folding the rounds already read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared import store as store_mod
from shared.graph import client as graph_client
from shared.graph import reader
from shared.reconcile import model


def residual(
    plan: model.Plan, *, run_id: str, started: dt.datetime, tenant_id: str,
    emply_version: str | None, organization: Mapping[str, Any],
) -> dict[str, Any] | None:
    """What a successful run records; None when it cannot be reused (another writer
    moved the Emply marker during the run, so its version is not known)."""
    if emply_version is None:
        return None
    return {
        "runId": run_id,
        "date": started.astimezone(dt.UTC).date().isoformat(),
        "emplyVersion": emply_version,
        "tenantId": tenant_id,
        "organization": dict(organization),
        "status": plan.status,
        "held": [c.to_json() for c in plan.held],
        "errors": [p.to_json() for p in plan.errors],
        "skips": dict(plan.skips),
    }


@dataclasses.dataclass(frozen=True)
class Check:
    """What `check` found: `residual` when the last run's outcome stands, and the
    delta round it read (to fold into the previous mirror otherwise), if any."""

    residual: dict[str, Any] | None
    changes: reader.DeltaRound | None


async def check(
    store: store_mod.EmplyStore,
    graph: graph_client.GraphClient,
    state: Mapping[str, Any],
    *,
    started: dt.datetime,
    approve: int | None,
) -> Check:
    recorded = state.get("residual")
    head = state.get("mirrorHead")
    if (
        approve is not None
        or not isinstance(recorded, dict)
        or not isinstance(head, dict)
        or recorded.get("date") != started.astimezone(dt.UTC).date().isoformat()
        or not isinstance(recorded.get("tenantId"), str)
    ):
        return Check(None, None)
    if await store.current_version() != recorded.get("emplyVersion"):
        return Check(None, None)  # Emply changed: the usual read (settings may differ)
    changes = await reader.read_changes(graph, head, tenant_id=recorded["tenantId"])
    if changes is None or not changes.empty:
        return Check(None, changes)
    if changes.organization != recorded.get("organization"):
        return Check(None, changes)
    return Check(recorded, changes)


def next_state(state: Mapping[str, Any], changes: reader.DeltaRound, run_id: str
               ) -> dict[str, Any]:
    """The state after a run that reused the residual: only the delta links move."""
    head = dict(state["mirrorHead"])
    head["deltaLinks"] = dict(changes.delta_links)
    return {**state, "mirrorHead": head, "lastRunId": run_id}
