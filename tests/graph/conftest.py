"""Tenants and fixtures for the Graph adapter tests (real HTTP to the simulator)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from shared.graph import client as graph_client
from shared.graph import reader
from tests.support.graph_users import graph_user
from tests.support.simulator import RunningSimulator, running_simulator

TENANT_ID = "7d3c1f0e-5b2a-4c8e-9f10-0a1b2c3d4e5f"


def user(n: int, **extra: Any) -> dict[str, Any]:
    return graph_user(n, f"00000000-0000-4000-8000-{n:012d}", **extra)


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


G_EMPLOYEE = "10000000-0000-4000-8000-000000000001"
G_NESTED = "10000000-0000-4000-8000-000000000002"
G_HR = "10000000-0000-4000-8000-000000000003"


def small_tenant(n_users: int = 6) -> dict[str, Any]:
    users = [user(i) for i in range(1, n_users + 1)]
    users[1].update(jobTitle="Engineer", department="R&D", mobilePhone="+45 1234 5678")
    users[2]["onPremisesSyncEnabled"] = True
    users[3]["mail"] = None
    return {
        "organization": {
            "id": TENANT_ID,
            "displayName": "Contoso",
            "onPremisesSyncEnabled": False,
            "verifiedDomains": [
                {"name": "contoso.com", "isDefault": True},
                {"name": "contoso.onmicrosoft.com", "isDefault": False},
            ],
        },
        "users": users,
        "groups": [
            # Nested both ways: a cycle, which Graph allows.
            {"id": G_EMPLOYEE, "displayName": "Employee", "members": [uid(1), uid(2), G_NESTED]},
            {"id": G_NESTED, "displayName": "Nested", "members": [uid(3), G_EMPLOYEE]},
            {"id": G_HR, "displayName": "HR", "members": [uid(4)]},
        ],
    }


def big_tenant(n_users: int) -> dict[str, Any]:
    tenant = small_tenant(n_users)
    tenant["groups"].append(
        {
            "id": "10000000-0000-4000-8000-000000000099",
            "displayName": "Everyone",
            "members": [uid(i) for i in range(1, n_users + 1)],
        }
    )
    return tenant


class FakeTime:
    """A clock that moves only when slept on: Retry-After waits without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def clone(tenant: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(tenant)


def expected_mirror(tenant: dict[str, Any]) -> dict[str, Any]:
    """What a read of `tenant` must give, delta links aside (members compared as sets)."""
    org = tenant["organization"]
    return {
        "version": 2,
        "tenantId": org["id"],
        "organization": {
            "id": org["id"],
            "onPremisesSyncEnabled": bool(org.get("onPremisesSyncEnabled")),
            "verifiedDomains": [d["name"] for d in org["verifiedDomains"]],
        },
        "users": {u["id"]: [u.get(f) for f in reader.USER_FIELDS] for u in tenant["users"]},
        "groups": {
            g["id"]: {
                "id": g["id"],
                "displayName": g["displayName"],
                "members": sorted(g.get("members", [])),
            }
            for g in tenant["groups"]
        },
    }


def comparable(mirror: dict[str, Any]) -> dict[str, Any]:
    """`mirror` without delta links, members sorted."""
    out = {k: v for k, v in mirror.items() if k != "deltaLinks"}
    out["groups"] = {
        gid: {**g, "members": sorted(g["members"])} for gid, g in mirror["groups"].items()
    }
    return out


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(small_tenant()) as running:
        yield running


@pytest.fixture
async def client(sim: RunningSimulator) -> AsyncIterator[graph_client.GraphClient]:
    graph = graph_client.create_graph_client(sim.url, env={})
    try:
        yield graph
    finally:
        await graph.aclose()
