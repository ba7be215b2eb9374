"""Faults injected into real runs, and what must hold after each (issue 17).

Used by the reliability tests (small counts) and by `python -m bench.reliability`
(the counts docs/reliability.md's figures come from). Every check is against
real Azurite and the Graph simulator over HTTP; a run is the real `emply-sync`.

What "nothing lost, nothing wrong" means here (`check_world`):
- every Entra user in scope has exactly one Emply user, linked to it and active;
- no Emply user is linked to an Entra user that is not in scope, unless it is
  deactivated by the sync; no two users share an Entra id or a username (they may share
  an e-mail: R3);
- the manual users present before the runs are all still there (linked, not
  replaced by a second login);
- a further run changes nothing (converged), and no run record is left `running`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shared import store as store_mod
from tests.e2e import tenants as t

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Tally:
    """What a reliability pass did and found (docs/reliability.md's figures)."""

    kills: int = 0
    kills_mid_run: int = 0
    faults: int = 0
    malformed: int = 0
    hostile: int = 0
    """Hostile HTTP requests (tests/reliability/adversarial.py)."""
    races: int = 0
    """Rounds of concurrent writers racing for one username, Entra id or new id."""
    patches: int = 0
    """Concurrent PATCHes whose answers were checked against what was stored."""
    replays: int = 0
    """Lifecycle notifications delivered again (and handled all at once)."""
    lost: int = 0
    wrong: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)

    def problem(self, kind: str, words: str) -> None:
        if kind == "lost":
            self.lost += 1
        else:
            self.wrong += 1
        self.notes.append(f"{kind}: {words}")


def staff_tenant(n: int) -> dict[str, Any]:
    people = t.staff(n)
    return t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})


def manual_users(tenant: dict[str, Any], every: int = 3) -> list[dict[str, Any]]:
    """Manual Emply users for every `every`-th Entra user (same username: R3 step 2)."""
    return [
        {"id": f"m-{i}", "username": u["userPrincipalName"], "email": u["mail"],
         "displayName": u["displayName"], "roles": ["employee"]}
        for i, u in enumerate(tenant["users"]) if i % every == 0
    ]


def in_scope(tenant: dict[str, Any]) -> set[str]:
    members: set[str] = set()
    for group in tenant["groups"]:
        members |= set(group["members"])
    return {u["id"] for u in tenant["users"]
            if u["id"] in members and u.get("accountEnabled", True)}


def check_world(world: Any, tenant: dict[str, Any], manual_ids: set[str],
                tally: Tally, label: str) -> None:
    """The invariants of the module docstring, each breach counted in `tally`."""
    users = world.export()["users"]
    wanted = in_scope(tenant)
    by_entra: dict[str, list[dict[str, Any]]] = {}
    for user in users:
        if user.get("entraId"):
            by_entra.setdefault(user["entraId"], []).append(user)
    for entra_id in wanted:
        linked = by_entra.get(entra_id, [])
        if len(linked) != 1 or linked[0]["status"] != "active":
            tally.problem("lost", f"{label}: Entra user {entra_id} has "
                          f"{[(u['id'], u['status']) for u in linked]}")
    for entra_id, linked in by_entra.items():
        if len(linked) > 1:
            tally.problem("wrong", f"{label}: {len(linked)} users linked to {entra_id}")
        for user in linked:
            if entra_id not in wanted and not (user["status"] == "deactivated"
                                               and user.get("deactivatedBy") == "sync"):
                tally.problem("wrong", f"{label}: {user['id']} linked to {entra_id}, which "
                              "is out of scope, but not deactivated by the sync")
    # (Two users may share an e-mail, R3; no Entra id is linked twice: checked above.)
    usernames = [str(u["username"]).strip().casefold() for u in users]
    if len(usernames) != len(set(usernames)):
        tally.problem("wrong", f"{label}: duplicate usernames")
    missing = manual_ids - {u["id"] for u in users}
    if missing:
        tally.problem("lost", f"{label}: manual users gone: {sorted(missing)[:5]}")


def converged(world: Any, tally: Tally, label: str) -> dict[str, Any]:
    """One more run: it must change nothing."""
    report: dict[str, Any] = world.sync()
    if report["status"] != "succeeded" or report["counts"]:
        tally.problem("wrong", f"{label}: a further run was {report['status']} with "
                      f"{report['counts']}")
    return report


def no_run_left_running(world: Any, tally: Tally, label: str) -> None:
    runs = json.loads(world.ok("runs", "--limit", "200", "--json"))
    stuck = [r["runId"] for r in runs if r["status"] == "running"]
    if stuck:
        tally.problem("wrong", f"{label}: runs left running: {stuck}")


# --- kill -9 anywhere in a run ----------------------------------------------------------


def expire_lease(connection_string: str) -> None:
    """What the lease's 300 s do to a killed run's lease, without waiting for them."""
    async def go() -> None:
        async with store_mod.open_store(connection_string=connection_string) as store:
            lease = await store.current_lease()
            if lease is None:
                return
            entity = await store.lease.get_entity("lease", "sync")
            past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            entity["expiresAt"] = past.isoformat().replace("+00:00", "Z")
            await store.lease.update_entity(entity)

    asyncio.run(go())


def churn(world: Any, tenant: dict[str, Any], rng: random.Random, n: int) -> None:
    """`n` leavers and `n` joiners in the first group (the tenant is changed in place)."""
    members = tenant["groups"][0]["members"]
    pool = [u["id"] for u in tenant["users"]]
    for leaver in rng.sample([m for m in members if m in pool], n):
        members.remove(leaver)
    outside = [p for p in pool if p not in members]
    members.extend(rng.sample(outside, min(n, len(outside))))
    world.sim.put_tenant(tenant)


def kill_runs(world: Any, kills: int, seed: int, tally: Tally,
              window_s: tuple[float, float] = (0.8, 4.0),
              tenant: dict[str, Any] | None = None) -> None:
    """Start `emply-sync sync` in its own process `kills` times and SIGKILL it after a
    random delay (start-up, read, plan or apply), then let the lease expire. With
    `tenant`, the tenant changes before each run (leavers and joiners), so every run has
    work to be killed in; `tenant` is left as the last run saw it."""
    rng = random.Random(seed)
    env = {**os.environ}
    for _ in range(kills):
        if tenant is not None:
            churn(world, tenant, rng, 2)
        child = subprocess.Popen([sys.executable, "-m", "shared.cli", "sync", "--json"],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        time.sleep(rng.uniform(*window_s))
        finished = child.poll() is not None
        child.send_signal(signal.SIGKILL)
        child.communicate()
        tally.kills += 1
        if not finished:
            tally.kills_mid_run += 1
        expire_lease(world.azurite.connection_string)


# --- Graph faults -------------------------------------------------------------------------

FAULTS: list[tuple[str, int, int, int | None]] = [
    # (route, status, times (-1: until cleared), Retry-After)
    ("/users/delta", 429, 1, 1),
    ("/groups/delta", 429, 2, 1),
    ("/users/delta", 503, 1, None),
    ("/groups/delta", 503, -1, None),
    ("/users/delta", 503, -1, None),
    ("/groups/delta", 500, -1, None),
    ("/organization", 503, -1, None),
    ("/groups/delta", 403, -1, None),
    ("/users/delta", 401, -1, None),
    ("/groups/delta", 429, -1, 0),
]


def fault_rounds(world: Any, tenant: dict[str, Any], manual_ids: set[str], tally: Tally,
                 rounds: int, seed: int) -> dict[str, Any]:
    """Each round: a tenant change (leavers, joiners, a disabled account), a Graph fault
    during the run, then the fault cleared and a run that must converge. A run under a
    fault either succeeds or applies nothing; never a wrong deactivation."""
    rng = random.Random(seed)
    current = copy.deepcopy(tenant)
    for number in range(rounds):
        route, status, times, retry = FAULTS[number % len(FAULTS)]
        churn(world, current, rng, 2)
        before = world.export()["users"]
        world.sim.set_faults(route, status, times=times, retry_after=retry)
        report = world.sync()
        tally.faults += 1
        world.sim.clear_faults()
        label = f"fault {route} {status}×{times}"
        if report["status"] == "failed":
            if world.export()["users"] != before:
                tally.problem("wrong", f"{label}: a failed run changed users")
        else:
            check_world(world, current, manual_ids, tally, label)
        world.sync()
        check_world(world, current, manual_ids, tally, f"{label}, then cleared")
        converged(world, tally, f"{label}, then cleared")
    return current


# --- malformed input ----------------------------------------------------------------------


def try_import(world: Any, data: bytes, tally: Tally) -> None:
    """An import of `data`: refused (exit 2) with the Emply side unchanged, or accepted
    (exit 0) with a state that exports and imports back unchanged. Never a traceback."""
    before = world.export()
    path = world.tmp / "fuzz.json"
    path.write_bytes(data)
    tally.malformed += 1
    try:
        code, _, err = world.cli("emply", "import", str(path))
    except Exception as exc:  # a crash is exactly what must not happen
        tally.problem("wrong", f"import crashed: {type(exc).__name__}: {exc}"[:300])
        return
    if code == 2:
        if world.export() != before:
            tally.problem("wrong", "a refused import changed the Emply side")
        if "Traceback" in err:
            tally.problem("wrong", "a refused import printed a traceback")
        return
    if code != 0:
        tally.problem("wrong", f"import exited {code}: {err[:200]}")
        return
    after = world.export()
    path.write_text(json.dumps(after))
    code, _, err = world.cli("emply", "import", str(path), "--replace")
    if code != 0 or world.export() != after:
        tally.problem("wrong", f"an accepted state did not import back unchanged: {err[:200]}")
