"""Reliability: faults injected into real runs, and nothing lost or wrong after each.

The counts here are kept small for `make test`; `python -m bench.reliability` runs the
same harness with the counts of docs/reliability.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import config
from tests.e2e import tenants as t
from tests.e2e.test_openapi import hostile_requests
from tests.reliability import adversarial
from tests.reliability import harness as h
from tests.support.notify_server import notify_server

pytestmark = pytest.mark.slow


def world_with_manual_users(make_world: Any, n: int) -> tuple[Any, dict[str, Any], set[str]]:
    tenant = h.staff_tenant(n)
    world = make_world(tenant, latency_ms=5)
    manual = h.manual_users(tenant)
    world.import_state(t.emply_state(users=manual))
    return world, tenant, {u["id"] for u in manual}


def test_kill_9_anywhere_in_runs_loses_nothing_and_duplicates_nothing(make_world: Any) -> None:
    """SIGKILL at random points of successive runs (start-up, reading Entra, planning,
    writing Emply): each leaves what it wrote; the next run takes the expired lease, marks
    the dead run abandoned and finishes the job; the result is what one clean run gives."""
    world, tenant, manual = world_with_manual_users(make_world, 600)
    tally = h.Tally()
    h.kill_runs(world, kills=4, seed=11, tally=tally)
    world.sync()
    h.check_world(world, tenant, manual, tally, "after the kills")
    h.converged(world, tally, "after the kills")
    h.no_run_left_running(world, tally, "after the kills")
    assert tally.kills == 4 and tally.kills_mid_run >= 1  # a run lasts seconds here
    assert (tally.lost, tally.wrong) == (0, 0), tally.notes
    users = world.export()["users"]
    assert len(users) == 600  # 200 manual users linked, 400 created: no second login


def test_graph_faults_never_deactivate_the_wrong_people(make_world: Any) -> None:
    world, tenant, manual = world_with_manual_users(make_world, 120)
    world.sync()
    tally = h.Tally()
    h.fault_rounds(world, tenant, manual, tally, rounds=len(h.FAULTS), seed=5)
    assert tally.faults == len(h.FAULTS)
    assert (tally.lost, tally.wrong) == (0, 0), tally.notes


def _documents() -> st.SearchStrategy[bytes]:
    """Emply state files, most of them broken in one of the ways operators break them."""
    text = st.text(max_size=40)
    user = st.fixed_dictionaries(
        {"id": st.one_of(st.just("u-1"), text), "username": st.one_of(text, st.just("a@b.c")),
         "email": st.one_of(st.none(), text, st.just("a@b.c"))},
        optional={"roles": st.one_of(st.lists(st.sampled_from(["employee", "chief"])), text),
                  "status": st.one_of(st.sampled_from(["active", "deactivated", "gone"]),
                                      st.integers()),
                  "displayName": st.one_of(text, st.just("x" * 40_000)),
                  "unknownField": text})
    document = st.fixed_dictionaries(
        {}, optional={"users": st.lists(user, max_size=4),
                      "roles": st.just(t.ROLES),
                      "employees": st.lists(st.fixed_dictionaries(
                          {"id": text, "email": st.one_of(text, st.just("a@b.c"))}), max_size=2),
                      "settings": st.one_of(st.none(), st.just({"tenantId": "x"}))})
    as_json = document.map(lambda d: json.dumps(d).encode())
    broken = st.one_of(
        as_json.map(lambda b: b.decode().encode("utf-16")),
        as_json.map(lambda b: b[: max(1, len(b) // 2)]),
        st.integers(1, 2000).map(lambda n: b"[" * n + b"]" * n),
        st.binary(max_size=64),
        as_json.map(lambda b: b.replace(b'"users"', b'"users": [], "users"', 1)),
    )
    return st.one_of(as_json, broken)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=_documents())
def test_malformed_imports_are_refused_whole_or_round_trip(make_world: Any, data: bytes) -> None:
    world = _fuzz_world(make_world)
    tally = h.Tally()
    h.try_import(world, data, tally)
    assert (tally.lost, tally.wrong) == (0, 0), tally.notes


_WORLDS: dict[int, Any] = {}


def _fuzz_world(make_world: Any) -> Any:
    """One world for all of a test's examples (Hypothesis calls the test many times
    under one fixture); each example checks against the state it finds."""
    key = id(make_world)
    if key not in _WORLDS:
        _WORLDS.clear()
        world = make_world(h.staff_tenant(5))
        world.import_state(t.emply_state())
        _WORLDS[key] = world
    return _WORLDS[key]


# --- issue 24: the Emply API under attack and contention ---------------------------------


def _api_world(make_world: Any) -> Any:
    world = make_world(h.staff_tenant(5))
    world.import_state(t.emply_state([{"id": f"u-{i}", "username": f"u{i}@contoso.com",
                                       "roles": ["employee"]} for i in range(20)]))
    return world


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(generated=hostile_requests())
def test_hostile_requests_are_refused_never_a_500(make_world: Any, generated: Any) -> None:
    world = _fuzz_world(make_world)
    tally = h.Tally()
    adversarial.hostile_request(world, generated, tally, lambda: world.ok("emply", "export"))
    assert (tally.hostile, tally.lost, tally.wrong) == (1, 0, 0), tally.notes


async def test_racing_writers_never_share_a_username_or_entra_id(make_world: Any) -> None:
    world = _api_world(make_world)
    tally = h.Tally()
    await adversarial.uniqueness_races(world, rounds=2, writers=5, tally=tally)
    await adversarial.contended_patches(world, writers=20, tally=tally)
    assert (tally.races, tally.patches) == (6, 20)
    assert (tally.lost, tally.wrong) == (0, 0), tally.notes


async def test_replayed_lifecycle_notifications_leave_no_orphan(
        make_world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(h.staff_tenant(5))
    world.import_state(t.emply_state())
    tally = h.Tally()
    with notify_server() as server:
        monkeypatch.setenv(config.NOTIFICATIONS, "true")
        monkeypatch.setenv(config.PUBLIC_URL, server.base)
        monkeypatch.setenv(config.NOTIFICATION_KEY, "reliability-key")
        await adversarial.lifecycle_replays(world, rounds=2, deliveries=6, tally=tally)
    assert tally.replays == 12 and (tally.lost, tally.wrong) == (0, 0), tally.notes
