"""A run with nothing changed reuses the last run's outcome (`shared.run.unchanged`) — and
only then: any change on either side, a new day or an approval plans again."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
from typing import Any

from shared.app import boundary
from shared.run import pipeline, prepare
from shared.run import report as run_report
from shared.run import state as sync_state
from tests.e2e import tenants as t
from tests.e2e.test_cli_lifecycle import staff_world

# Not today: the setting-up sync (through the CLI, on the real clock) is of another day.
DAY = dt.datetime(2031, 3, 4, 9, 0, tzinfo=dt.UTC)


def run_at(moment: dt.datetime, **kwargs: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with boundary.open_deps() as deps:
            deps = dataclasses.replace(deps, clock=lambda: moment)
            return await pipeline.run_sync(deps, trigger="test", **kwargs)

    return asyncio.run(go())


def planned_now(moment: dt.datetime) -> tuple[Any, ...]:
    """What a full plan says at `moment`, read fresh (what the reuse must equal)."""
    async def go() -> tuple[Any, ...]:
        async with boundary.open_deps() as deps:
            run = await prepare.prepare(deps, started=moment, run_id="plan-only",
                                        trigger="test", applying=False)
            steps = pipeline.steps_for(run.settings)
            await pipeline.read_all(run, steps)
            outcome = run_report.Outcome.of(pipeline.make_plan(run, steps))
            return (outcome.status, list(outcome.held), list(outcome.errors),
                    dict(outcome.skips))

    return asyncio.run(go())


def residual_part(report: dict[str, Any]) -> tuple[Any, ...]:
    return (report["status"], report["held"], report["errors"], report["skips"])


def test_held_deactivations_are_reported_again_without_planning(make_world: Any) -> None:
    world, tenant = staff_world(
        make_world, deactivationGuard={"maxCount": 50, "maxPercent": 20, "minCount": 5})
    changed = copy.deepcopy(tenant)
    changed["groups"][0]["members"] = changed["groups"][0]["members"][:4]
    world.sim.put_tenant(changed)

    held = run_at(DAY)
    assert held["status"] == "needs_approval" and len(held["held"]) == 6
    assert "reusedPlanOf" not in held

    again = run_at(DAY + dt.timedelta(hours=2))
    assert again["reusedPlanOf"] == held["runId"]
    assert again["changes"] == [] and again["counts"] == {}
    assert residual_part(again) == residual_part(held)
    assert residual_part(again) == planned_now(DAY + dt.timedelta(hours=2))
    assert again["entraRead"]["requests"] == 3  # organization + one delta round each

    approved = run_at(DAY + dt.timedelta(hours=3), approve_deactivations=6)
    assert "reusedPlanOf" not in approved
    assert approved["counts"] == {"deactivate_user": 6}


def test_any_change_a_new_day_or_an_import_plans_again(make_world: Any) -> None:
    world, tenant = staff_world(make_world)
    first = run_at(DAY)
    assert "reusedPlanOf" not in first  # the initial sync was run by the CLI, then this
    second = run_at(DAY + dt.timedelta(minutes=30))
    assert second["reusedPlanOf"] == first["runId"]
    third = run_at(DAY + dt.timedelta(minutes=60))
    assert third["reusedPlanOf"] == first["runId"]  # the residual's own run, not the last

    changed = copy.deepcopy(tenant)
    joiner = t.entra_user(600, "Late Joiner")
    changed["users"].append(joiner)
    changed["groups"][0]["members"].append(joiner["id"])
    world.sim.put_tenant(changed)
    entra_change = run_at(DAY + dt.timedelta(minutes=90))
    assert "reusedPlanOf" not in entra_change
    assert entra_change["counts"] == {"create_user": 1}
    assert entra_change["entraRead"]["requests"] == 3  # the round read once, then folded

    next_day = run_at(DAY + dt.timedelta(days=1))
    assert "reusedPlanOf" not in next_day and next_day["counts"] == {}
    assert run_at(DAY + dt.timedelta(days=1, minutes=30))["reusedPlanOf"] == next_day["runId"]

    exported = world.export()
    exported["users"][0]["displayName"] = "Renamed in Emply"
    world.import_state(exported, "--replace")
    after_import = run_at(DAY + dt.timedelta(days=1, hours=1))
    assert "reusedPlanOf" not in after_import
    assert run_at(DAY + dt.timedelta(days=1, hours=2))["reusedPlanOf"] == after_import["runId"]


def test_a_dry_run_reuses_too_and_changes_nothing(make_world: Any) -> None:
    staff_world(make_world)
    first = run_at(DAY)
    dry = run_at(DAY + dt.timedelta(minutes=5), dry_run=True)
    assert dry["reusedPlanOf"] == first["runId"] and dry["dryRun"] is True
    assert run_at(DAY + dt.timedelta(minutes=10))["reusedPlanOf"] == first["runId"]


def test_only_the_current_index_generation_is_kept(make_world: Any) -> None:
    world, tenant = staff_world(make_world)
    changed = copy.deepcopy(tenant)
    joiner = t.entra_user(700, "Another Joiner")
    changed["users"].append(joiner)
    changed["groups"][0]["members"].append(joiner["id"])
    world.sim.put_tenant(changed)
    assert run_at(DAY)["counts"] == {"create_user": 1}

    async def blobs() -> tuple[list[str], str]:
        async with boundary.open_deps() as deps:
            names = [b.name async for b in deps.store.syncstate.list_blobs()]
            state = await deps.store.load_sync_state()
            assert state is not None
            return sorted(names), state["index"]

    names, generation = asyncio.run(blobs())
    assert names == [f"index-emply-{generation}.bin.z",
                     f"index-entra-{generation}.bin.z", "state.json.gz"]


def edit_state(edit: Any) -> dict[str, Any]:
    """Rewrite the stored state blob with `edit` applied to its JSON; the new JSON."""
    async def go() -> dict[str, Any]:
        async with boundary.open_deps() as deps:
            state = await deps.store.load_sync_state()
            assert isinstance(state, dict)
            edited: dict[str, Any] = edit(state)
            await deps.store.save_sync_state(edited)
            return edited

    return asyncio.run(go())


def test_a_state_written_before_its_format_is_read_as_it_is(make_world: Any) -> None:
    """The code before `shared.run.state` wrote the same fields without "format": a run
    after an upgrade still reuses the residual and reads Entra from the delta links."""
    staff_world(make_world)
    first = run_at(DAY)
    newer = ("format", "guardWindow", "heldDigest", "indexDelta")  # not in the old code
    old = edit_state(lambda s: {
        **{k: v for k, v in s.items() if k not in newer},
        "residual": {k: v for k, v in s["residual"].items() if k not in ("heldDigest", "until")},
    })
    assert set(old) == {"mirrorHead", "index", "previousMapping", "lastRunId", "residual"}
    again = run_at(DAY + dt.timedelta(minutes=30))
    assert again["reusedPlanOf"] == first["runId"] and again["errors"] == []
    assert again["entraRead"] == {"fullRead": False, "reason": None, "requests": 3,
                                  "throttled": 0}

    edit_state(lambda s: {k: v for k, v in s.items() if k != "format"})
    next_day = run_at(DAY + dt.timedelta(days=1))  # plans, from the old state's index
    assert "reusedPlanOf" not in next_day and next_day["errors"] == []
    assert next_day["entraRead"]["fullRead"] is False


def test_a_state_of_an_unknown_format_is_a_reported_full_read(make_world: Any) -> None:
    staff_world(make_world)
    run_at(DAY)
    edit_state(lambda s: {**s, "format": sync_state.FORMAT + 1})
    report = run_at(DAY + dt.timedelta(minutes=30))
    assert "reusedPlanOf" not in report
    assert report["status"] == "succeeded" and report["counts"] == {}
    assert [e["reason"] for e in report["errors"]] == ["sync_state_unreadable"]
    assert f"state format {sync_state.FORMAT + 1}" in report["errors"][0]["message"]
    assert report["entraRead"]["fullRead"] is True
    assert report["entraRead"]["reason"] == "initial"
    # The state was rewritten in this code's format: the next run reuses again.
    assert run_at(DAY + dt.timedelta(minutes=60))["reusedPlanOf"] == report["runId"]
