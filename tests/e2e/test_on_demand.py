"""One user now over the command line and HTTP (`emply-sync sync --user KEY`,
`POST /api/users/{key}/sync`), against real Azurite and the Graph simulator over HTTP.

The FAQ's cases: a new hire added to the group is created now; a leaver removed from all
groups is deactivated now (`removed_from_groups`); an employee without an account gets the
FAQ's answer and nothing is created; a user of another tenant is refused with the reason;
a dry run shows what the real run does; a run holding the lease answers 409 with
`Retry-After`; Graph throttling the reads past the HTTP bound queues the run (202 +
Location) and the queue worker finishes it; the next full run plans nothing for that user.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import store as store_mod
from shared.app import manual_runs, user_sync
from tests.e2e import tenants as t
from tests.e2e.test_http import deliver_next, function, get_run, request
from tests.support import run_queue as rq

NEW_HIRE = t.entra_user(1, "Nia Hale")
LEAVER = t.entra_user(2, "Leo Bart")
KIM = t.entra_user(3, "Kim Yu")
STAYS = t.entra_user(4, "Sam Oak")


def _tenant(employee: list[dict[str, Any]]) -> dict[str, Any]:
    return t.tenant([NEW_HIRE, LEAVER, KIM, STAYS],
                    {t.G_EMPLOYEE: [u["id"] for u in employee], t.G_HR: []})


@pytest.fixture
def world(make_world: Any) -> Any:
    """The last full run saw Leo and Sam in Employee; now Nia is hired and Leo left."""
    world = make_world(_tenant([LEAVER, STAYS]))
    world.import_state(t.emply_state(employees=[{"id": "e-kim", "email": KIM["mail"]}]))
    assert world.sync()["status"] == "succeeded"
    world.sim.put_tenant(_tenant([NEW_HIRE, KIM, STAYS]))
    return world


def _user_sync(key: str, **params: str) -> Any:
    return function("sync_user")(request("POST", f"/api/users/{key}/sync",
                                         route_params={"key": key}, params=params))


def _timeless(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Changes without the time stamps a run writes (two runs, two clocks)."""
    return [{**c, "after": {k: v for k, v in c["after"].items() if k != "linkedAt"}}
            for c in changes]


def _step(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["user"]["steps"] if s["step"] == name)
    return found


def test_a_new_hire_added_to_the_group_is_created_now_from_the_command_line(
        world: Any) -> None:
    shown = world.ok("sync", "--user", NEW_HIRE["userPrincipalName"], "--dry-run")
    assert "(dry run: nothing applied)" in shown and "1. Scope: in_scope" in shown
    assert "3. Changes: would_apply" in shown and "create_user (R4, create_user)" in shown
    assert NEW_HIRE["userPrincipalName"] not in world.users()
    code, out, err = world.cli("sync", "--user", NEW_HIRE["mail"], "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["trigger"] == "on_demand" and report["user"]["outcome"] == "applied"
    assert [c["kind"] for c in report["changes"]] == ["create_user"]
    assert world.users()[NEW_HIRE["userPrincipalName"]]["entraId"] == NEW_HIRE["id"]
    runs = world.ok("runs")
    assert "on_demand" in runs.splitlines()[0]
    # The next full run plans nothing more for Nia (Leo is its to deactivate).
    full = world.sync()
    assert [(c["kind"], c["userId"]) for c in full["changes"]] == [
        ("deactivate_user", f"entra-{LEAVER['id']}")]


def test_a_leaver_an_employee_without_account_and_another_tenant_from_the_command_line(
        world: Any) -> None:
    shown = world.ok("sync", "--user", LEAVER["mail"])
    assert "deactivate_user (R6, removed_from_groups)" in shown
    assert "FAQ: What happens to a synchronized user when it is removed from the Entra " \
           "ID group?" in shown
    assert world.users()[LEAVER["userPrincipalName"]]["status"] == "deactivated"
    shown = world.ok("sync", "--user", KIM["mail"])
    assert "2. Match (R3): not_matched" in shown and "employee_without_account" in shown
    assert "FAQ: Why is there an error in synchronization of users?" in shown
    assert KIM["userPrincipalName"] not in world.users()
    shown = world.ok("sync", "--user", "someone@fabrikam.com")
    assert "1. Scope: refused" in shown and "fabrikam.com is not one of" in shown
    code, _, err = world.cli("sync", "--user", "nobody-here")
    assert code == 2 and "no Emply user or employee, and no Entra user" in err
    code, _, err = world.cli("sync", "--user", KIM["mail"], "--approve-deactivations", "1")
    assert code == 2 and "--user takes no approval" in err


async def test_over_http_the_steps_a_dry_run_and_the_refusals(world: Any) -> None:
    before = world.export()
    dry = await _user_sync(NEW_HIRE["mail"], dryRun="true")
    assert dry.status_code == 200, dry.get_body()
    planned = json.loads(dry.get_body())
    assert planned["dryRun"] is True and _step(planned, "changes")["status"] == "would_apply"
    assert world.export() == before
    real = await _user_sync(NEW_HIRE["mail"])
    applied = json.loads(real.get_body())
    assert real.status_code == 200 and applied["dryRun"] is False
    assert _timeless(applied["changes"]) == _timeless(planned["changes"])
    assert (await get_run(applied["runId"]))["user"]["outcome"] == "applied"
    missing = await _user_sync("nobody-here")
    assert missing.status_code == 404 and json.loads(missing.get_body())["field"] == "key"
    for key, params, field in ((" ", {}, "key"), ("x\x01y", {}, "key"),
                               (NEW_HIRE["mail"], {"dryRun": "yes"}, "dryRun"),
                               (NEW_HIRE["mail"], {"wait": "1"}, "query")):
        refused = await _user_sync(key, **params)
        assert refused.status_code == 400 and json.loads(refused.get_body())["field"] == field


async def test_a_run_holding_the_lease_answers_409_with_retry_after(world: Any) -> None:
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as other:
        await other.acquire_lease("20261130T080000Z-0000beef", "timer")
        busy = await _user_sync(NEW_HIRE["mail"])
        assert busy.status_code == 409 and busy.headers["Retry-After"]
        assert json.loads(busy.get_body())["runId"] == "20261130T080000Z-0000beef"
        code, _, _ = world.cli("sync", "--user", NEW_HIRE["mail"])
        assert code == 3
        await other.release_lease("20261130T080000Z-0000beef")
    assert NEW_HIRE["userPrincipalName"] not in world.users()


async def test_graph_throttling_past_the_bound_queues_the_run(
        world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(user_sync, "READ_SECONDS", 0.5)
    world.sim.set_faults("/users/{id}/transitiveMemberOf", 429, times=1, retry_after=2)
    answer = await _user_sync(NEW_HIRE["userPrincipalName"])
    assert answer.status_code == 202, answer.get_body()
    queued = json.loads(answer.get_body())
    assert answer.headers["Location"] == f"/api/sync/runs/{queued['runId']}"
    assert (await get_run(queued["runId"]))["status"] == "queued"
    assert NEW_HIRE["userPrincipalName"] not in world.users()  # nothing applied
    assert rq.count(world.azurite.connection_string) == 1
    report = await deliver_next(world)
    assert report["runId"] == queued["runId"] and report["trigger"] == "on_demand"
    assert report["user"]["outcome"] == "applied"
    assert world.users()[NEW_HIRE["userPrincipalName"]]["entraId"] == NEW_HIRE["id"]


async def test_a_queued_user_that_no_longer_answers_ends_as_a_failed_run(world: Any) -> None:
    queued = await manual_runs.request_run(user="left-meanwhile@contoso.com")
    assert queued["trigger"] == "on_demand" and queued["status"] == "queued"
    report = await deliver_next(world)
    assert report["status"] == "failed"
    assert [(e["reason"], e["cause"]) for e in report["errors"]] == [
        ("run_request_failed", "user_not_found")]
    assert rq.count(world.azurite.connection_string) == 0
