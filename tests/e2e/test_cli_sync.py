"""The foundation's acceptance, through `emply-sync` on Azurite and the simulator."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared import store as store_mod
from tests.e2e import tenants as t

ROOT = Path(__file__).resolve().parents[2]


def ten_staff_tenant() -> dict[str, Any]:
    people = t.staff(10)
    return t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})


def load_sync_state(conn: str) -> Any:
    async def load() -> Any:
        async with store_mod.open_store(connection_string=conn) as store:
            return await store.load_sync_state()

    return asyncio.run(load())


def test_creations_then_one_deactivation_and_one_creation(make_world: Any) -> None:
    tenant = ten_staff_tenant()
    world = make_world(tenant)
    world.import_state(t.emply_state())

    first = world.sync()
    assert first["status"] == "succeeded"
    assert first["counts"] == {"create_user": 10}
    assert first["entraRead"]["fullRead"] is True

    changed = copy.deepcopy(tenant)
    leaver = changed["users"][3]["id"]
    changed["groups"][0]["members"].remove(leaver)
    joiner = t.entra_user(500, "New Joiner")
    changed["users"].append(joiner)
    changed["groups"][0]["members"].append(joiner["id"])
    world.sim.put_tenant(changed)

    second = world.sync()
    assert second["counts"] == {"create_user": 1, "deactivate_user": 1}
    assert second["entraRead"]["fullRead"] is False
    kinds = {(c["kind"], c["entraId"], c["reason"]) for c in second["changes"]}
    assert kinds == {("create_user", joiner["id"], "create_user"),
                     ("deactivate_user", leaver, "removed_from_groups")}
    users = world.users()
    assert users["person3.staff@contoso.com"]["status"] == "deactivated"
    assert users["new.joiner@contoso.com"]["status"] == "active"

    third = world.sync()
    assert third["counts"] == {}
    assert third["entraRead"]["requests"] == 3  # organization + one delta round per resource

    runs = json.loads(world.ok("runs", "--json"))
    assert [r["runId"] for r in runs] == [third["runId"], second["runId"], first["runId"]]
    human = world.ok("runs")
    assert second["runId"] in human


def test_malformed_import_names_the_field_and_changes_nothing(make_world: Any) -> None:
    world = make_world(ten_staff_tenant())
    world.import_state(t.emply_state(users=[{"id": "u-1", "username": "a@contoso.com"}]))
    before = world.export()
    bad = t.emply_state(users=[{"id": "u-2", "username": "b@contoso.com", "status": "enabled"}])
    path = world.tmp / "bad.json"
    path.write_text(json.dumps(bad))
    code, _, err = world.cli("emply", "import", str(path), "--replace")
    assert code != 0
    assert "users[0]" in err and "status" in err and "u-2" in err
    assert world.export() == before


def test_failing_groups_delta_fails_the_run_and_changes_nothing(make_world: Any) -> None:
    tenant = ten_staff_tenant()
    world = make_world(tenant)
    world.import_state(t.emply_state())
    world.sync()
    state_before = load_sync_state(world.azurite.connection_string)
    changed = copy.deepcopy(tenant)
    changed["groups"][0]["members"] = changed["groups"][0]["members"][:9]
    world.sim.put_tenant(changed)
    before = world.export()

    world.sim.set_faults("/groups/delta", 503, times=-1)
    report = world.sync()
    assert report["status"] == "failed"
    assert report["changes"] == []
    assert report["errors"][0]["reason"] == "graph_unavailable"
    assert "/groups/delta" in report["errors"][0]["message"]
    assert world.export() == before
    assert load_sync_state(world.azurite.connection_string) == state_before

    world.sim.clear_faults()
    recovered = world.sync()
    assert recovered["counts"] == {"deactivate_user": 1}


def test_throttled_reads_are_retried_and_counted(make_world: Any) -> None:
    world = make_world(ten_staff_tenant())
    world.import_state(t.emply_state())
    world.sim.set_faults("/users/delta", 429, times=1, retry_after=1)
    report = world.sync()
    assert report["status"] == "succeeded"
    assert report["entraRead"]["throttled"] == 1
    assert report["counts"] == {"create_user": 10}


def test_dry_run_reports_what_a_real_run_would_do_and_changes_nothing(make_world: Any) -> None:
    world = make_world(ten_staff_tenant())
    world.import_state(t.emply_state())
    before = world.export()
    dry = world.sync("--dry-run")
    assert dry["dryRun"] is True
    assert world.export() == before
    assert load_sync_state(world.azurite.connection_string) is None
    real = world.sync()
    strip = [{k: v for k, v in c.items() if k != "after"} for c in dry["changes"]]
    assert strip == [{k: v for k, v in c.items() if k != "after"} for c in real["changes"]]
    assert dry["counts"] == real["counts"]


def test_expired_delta_link_rereads_and_deactivates_only_who_is_gone(make_world: Any) -> None:
    tenant = ten_staff_tenant()
    world = make_world(tenant)
    world.import_state(t.emply_state())
    world.sync()
    changed = copy.deepcopy(tenant)
    changed["users"] = changed["users"][1:]  # person0 deleted in Entra
    changed["groups"][0]["members"] = changed["groups"][0]["members"][1:]
    world.sim.put_tenant(changed)
    world.sim.expire_delta_tokens()
    report = world.sync()
    assert report["entraRead"] == {**report["entraRead"], "fullRead": True,
                                   "reason": "delta_expired"}
    assert [(c["kind"], c["reason"]) for c in report["changes"]] == [
        ("deactivate_user", "deleted_in_entra")
    ]


def test_console_script_runs_as_a_real_process(make_world: Any) -> None:
    world = make_world(ten_staff_tenant())
    world.import_state(t.emply_state())
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "sync", "--dry-run"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "SUCCEEDED (dry run: nothing applied)" in done.stdout
    assert "create_user 10" in done.stdout


def test_sync_without_settings_explains_what_to_do(make_world: Any) -> None:
    world = make_world(ten_staff_tenant())
    code, out, _ = world.cli("sync", "--json")
    report = json.loads(out)
    assert code == 1
    assert report["errors"][0]["reason"] == "not_configured"
    assert "emply-sync emply import" in report["errors"][0]["message"]
