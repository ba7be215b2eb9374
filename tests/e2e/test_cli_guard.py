"""R7 through `emply-sync`: approvals bound to the held set, and the guard's rolling
window kept in the sync state across runs (issue 17)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared import cli
from tests.e2e import tenants as t
from tests.e2e.test_cli_lifecycle import staff_world
from tests.e2e.test_cli_sync import load_sync_state


def leave(world: Any, tenant: dict[str, Any], leavers: list[str]) -> dict[str, Any]:
    changed = copy.deepcopy(tenant)
    members = changed["groups"][0]["members"]
    changed["groups"][0]["members"] = [m for m in members if m not in leavers]
    world.sim.put_tenant(changed)
    return changed


def test_a_count_approves_only_the_set_that_was_shown(make_world: Any) -> None:
    world, tenant = staff_world(make_world, n=40)
    ids = [u["id"] for u in tenant["users"]]
    leave(world, tenant, ids[:12])
    shown = world.sync()
    assert shown["status"] == "needs_approval" and len(shown["held"]) == 12
    digest = shown["heldDigest"]
    human = world.ok("sync", "--dry-run")
    assert f"--approve-deactivations 12:{digest}" in human

    other = leave(world, tenant, ids[20:32])  # a different 12 leave instead
    refused = world.sync("--approve-deactivations", "12")
    assert refused["status"] == "needs_approval" and refused["counts"] == {}
    assert "approval_mismatch" in [e["reason"] for e in refused["errors"]]
    assert refused["heldDigest"] != digest
    refused = world.sync("--approve-deactivations", f"12:{digest}")
    assert "approval_mismatch" in [e["reason"] for e in refused["errors"]]
    assert all(u["status"] == "active" for u in world.users().values())

    approved = world.sync("--approve-deactivations", f"12:{refused['heldDigest']}")
    assert approved["status"] == "succeeded"
    gone = {g for g in other["groups"][0]["members"]}
    assert {c["entraId"] for c in approved["changes"]} == set(ids) - gone


def test_a_malformed_approval_is_refused_before_anything_runs(
    make_world: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    world, _ = staff_world(make_world, n=4)
    before = load_sync_state(world.azurite.connection_string)
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        cli.main(["sync", "--approve-deactivations", "12:nothex"])
    assert exit_info.value.code == 2
    assert "expected N, N:DIGEST or DIGEST" in capsys.readouterr().err
    assert load_sync_state(world.azurite.connection_string) == before


def test_leavers_spread_over_runs_add_up_in_the_window(make_world: Any) -> None:
    """Nine leavers a run stay under minCount (10) each time; within 24 h the second
    nine make 18 of 40 (45 %) and are held."""
    world, tenant = staff_world(make_world, n=40)
    ids = [u["id"] for u in tenant["users"]]
    leave(world, tenant, ids[:9])
    first = world.sync()
    assert first["status"] == "succeeded" and first["counts"] == {"deactivate_user": 9}
    leave(world, tenant, ids[:18])
    second = world.sync()
    assert second["status"] == "needs_approval" and len(second["held"]) == 9
    held = next(e for e in second["errors"] if e["reason"] == "held_by_guard")
    assert "with 9 applied without approval in the last 24 h" in held["message"]
    again = world.sync()  # nothing changed: the same outcome, reused
    assert again["reusedPlanOf"] == second["runId"] and len(again["held"]) == 9
    assert again["heldDigest"] == second["heldDigest"]
    approved = world.sync("--approve-deactivations", str(len(second["held"])))
    assert approved["status"] == "succeeded"
    assert approved["counts"] == {"deactivate_user": 9}
    assert sum(u["status"] == "deactivated" for u in world.users().values()) == 18


def test_the_window_is_kept_in_the_sync_state(make_world: Any) -> None:
    world, tenant = staff_world(make_world, n=40)
    leave(world, tenant, [u["id"] for u in tenant["users"]][:3])
    world.sync()
    state = load_sync_state(world.azurite.connection_string)
    assert [entry["count"] for entry in state["guardWindow"]] == [3]
    assert state["mirrorHead"]["tenantId"] == t.TENANT_ID
