"""/_sim control endpoints: tenant replacement, counters, faults, latency; serve()."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph_simulator import TenantFileError, create_app, load_tenant_file
from shared.config import SIMULATOR_TOKEN
from tests.simulator.conftest import base_tenant, clone
from tests.support.simulator import RunningSimulator, running_simulator

ROOT = Path(__file__).resolve().parents[2]


def test_put_tenant_validates_and_names_the_field(
    sim: RunningSimulator, tenant: dict[str, Any]
) -> None:
    bad = clone(tenant)
    bad["users"][2]["userPrincipalName"] = ""
    response = sim.http.put("/_sim/tenant", json=bad)
    assert response.status_code == 400
    assert "users[2].userPrincipalName" in response.json()["error"]["message"]
    bad = clone(tenant)
    bad["groups"][1]["members"].append("ghost")
    response = sim.http.put("/_sim/tenant", json=bad)
    assert response.status_code == 400
    assert "groups[1].members[2]" in response.json()["error"]["message"]
    # Nothing changed.
    assert sim.state()["version"] == 1
    good = clone(tenant)
    good["users"].pop()
    good["groups"][2]["members"] = []
    assert sim.put_tenant(good)["version"] == 2
    assert len(sim.graph("GET", "/users").json()["value"]) == 4


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t.pop("organization"), "organization"),
        (lambda t: t["users"][0].pop("id"), "users[0].id"),
        (lambda t: t["users"].append(dict(t["users"][0])), "users[5].id"),
        (lambda t: t["users"][0].update(accountEnabled="yes"), "users[0].accountEnabled"),
        (lambda t: t["users"][0]["photo"].update(base64="!!"), "users[0].photo.base64"),
        (lambda t: t["users"][0]["calendars"][0]["events"][0].update(start="x"),
         "users[0].calendars[0].events[0].start"),
        (lambda t: t["groups"][0].pop("displayName"), "groups[0].displayName"),
        (lambda t: t.update(extra=1), "extra"),
    ],
)
def test_create_app_rejects_bad_tenants(mutate: Any, field: str) -> None:
    tenant = base_tenant()
    mutate(tenant)
    with pytest.raises(TenantFileError) as caught:
        create_app(tenant)
    assert field in str(caught.value)


def test_request_counters_by_template(sim: RunningSimulator) -> None:
    sim.graph("GET", "/users")
    sim.graph("GET", "/users/u-0001")
    sim.graph("GET", "/users/u-0002")
    sim.graph("GET", "/groups/g-hr/members")
    sim.graph("GET", "/users/u-0001/photo/$value")
    sim.http.get("/_sim/requests")  # not counted
    counts = sim.requests()
    assert counts["total"] == 5
    assert counts["byEndpoint"] == {
        "GET /users": 1,
        "GET /users/{id}": 2,
        "GET /groups/{id}/members": 1,
        "GET /users/{id}/photo/$value": 1,
    }
    sim.reset_requests()
    assert sim.requests() == {"total": 0, "faulted": 0, "byEndpoint": {}}


def test_fault_503_times(sim: RunningSimulator) -> None:
    sim.set_faults("/groups/delta", 503, times=2)
    statuses = [sim.graph("GET", "/groups/delta").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    sim.set_faults("/groups/{id}/members", 503, times=1)
    response = sim.graph("GET", "/groups/g-hr/members")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "serviceNotAvailable"
    assert sim.graph("GET", "/groups/g-hr/members").status_code == 200
    assert sim.requests()["faulted"] == 3


def test_fault_429_retry_after_and_always(sim: RunningSimulator) -> None:
    sim.set_faults("/users/u-0001", 429, times=-1, retry_after=3)
    for _ in range(3):
        response = sim.graph("GET", "/users/u-0001")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json()["error"]["code"] == "TooManyRequests"
    assert sim.graph("GET", "/users/u-0002").status_code == 200  # exact path only
    assert sim.graph("POST", "/users", json={}).status_code == 400  # other method
    sim.clear_faults()
    assert sim.graph("GET", "/users/u-0001").status_code == 200
    sim.set_faults("/users", 429)
    response = sim.graph("GET", "/users")
    assert response.headers["Retry-After"] == "1"


def test_fault_validation(sim: RunningSimulator) -> None:
    response = sim.http.post("/_sim/faults", json={"path": "/users", "status": 200})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["message"]


async def test_latency_overlaps_like_a_network(tenant: dict[str, Any]) -> None:
    with running_simulator(tenant, latency_ms=150) as sim:
        async with httpx.AsyncClient(headers=sim.headers) as client:
            started = time.monotonic()
            responses = await asyncio.gather(
                *(client.get(f"{sim.url}/users/u-000{i}") for i in range(1, 6))
            )
            elapsed = time.monotonic() - started
        assert all(r.status_code == 200 for r in responses)
        assert elapsed >= 0.15
        sim.set_latency(0)
        started = time.monotonic()
        sim.graph("GET", "/users")
        sim.set_latency(100)
        started = time.monotonic()
        sim.graph("GET", "/users")
        assert time.monotonic() - started >= 0.1


@pytest.mark.integration
def test_serve_prints_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(base_tenant()))
    code = (
        "import sys; from graph_simulator import serve; "
        "serve(sys.argv[1], port=0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        prefix = "Graph simulator listening on http://127.0.0.1:"
        assert line.startswith(prefix) and line.endswith("/v1.0"), line
        url = line.removeprefix("Graph simulator listening on ")
        response = httpx.get(f"{url}/organization",
                             headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}"})
        assert response.status_code == 200
        proc.terminate()
        assert proc.wait(10) == 0
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_load_tenant_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(TenantFileError, match="not valid JSON"):
        load_tenant_file(str(path))
    tenant = base_tenant()
    tenant["organization"]["id"] = 5
    path.write_text(json.dumps(tenant))
    with pytest.raises(TenantFileError, match=r"organization\.id"):
        load_tenant_file(str(path))


def test_get_tenant_round_trips(sim: RunningSimulator, tenant: dict[str, Any]) -> None:
    exported = sim.tenant()
    for entry in tenant["users"]:
        entry["businessPhones"] = []  # Graph's default for a collection property
    assert exported == tenant
    exported["users"][0]["displayName"] = "Changed"
    assert sim.put_tenant(exported)["version"] == 2
    assert sim.graph("GET", "/users/u-0001").json()["displayName"] == "Changed"


def test_count(sim: RunningSimulator) -> None:
    body = sim.graph("GET", "/users?$count=true&$top=2").json()
    assert body["@odata.count"] == 5
    assert len(body["value"]) == 2


@pytest.mark.integration
def test_module_entry_point_rejects_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps({"organization": {}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "graph_simulator", "--tenant", str(path)],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert done.returncode == 2
    assert "organization.id" in done.stderr
    assert done.stdout == ""


def test_wildcard_fault_and_request_log(sim: RunningSimulator) -> None:
    sim.set_faults([{"method": "*", "path": "*", "status": 503, "times": 2}])
    assert sim.graph("GET", "/organization").status_code == 503
    assert sim.graph("POST", "/$batch", json={"requests": []}).status_code == 503
    assert sim.graph("GET", "/organization").status_code == 200
    log = sim.http.get("/_sim/requests?log=1").json()["log"]
    assert [(e["template"], e["status"]) for e in log] == [
        ("/organization", 503), ("/$batch", 503), ("/organization", 200)
    ]
