"""Scale: a 100,000-user tenant with 20 groups, first delta round and a one-user diff."""

from __future__ import annotations

import httpx
import pytest

from graph_simulator.delta import GROUP_MEMBERS_PER_PAGE
from tests.simulator.conftest import base_tenant
from tests.support.simulator import running_simulator


@pytest.mark.slow
def test_large_tenant_first_round_is_complete() -> None:
    n = 100_000
    tenant = base_tenant(n_users=2)
    tenant["users"] = [
        {"id": f"{i:08d}-0000-0000-0000-000000000000", "userPrincipalName": f"u{i}@contoso.com",
         "displayName": f"U {i}", "accountEnabled": True, "mail": None}
        for i in range(n)
    ]
    tenant["groups"] = [
        {"id": f"g-{g}", "displayName": f"G {g}",
         "members": [u["id"] for u in tenant["users"][g::20]]}
        for g in range(20)
    ]
    with running_simulator(tenant) as sim, \
            httpx.Client(headers=sim.headers, timeout=60) as client:
        count = 0
        url: str | None = f"{sim.url}/users/delta?$select=id,accountEnabled&$top=999"
        link = ""
        while url:
            body = client.get(url).json()
            count += len(body["value"])
            url = body.get("@odata.nextLink")
            link = body.get("@odata.deltaLink", link)
        assert count == n
        # Members come a page's worth at a time, a group again on each page it
        # spans (Graph's paging of a large group's members).
        members, pages = 0, 0
        url = f"{sim.url}/groups/delta?$select=id,members"
        while url:
            groups = client.get(url).json()
            members += sum(len(g["members@delta"]) for g in groups["value"])
            pages += 1
            url = groups.get("@odata.nextLink")
        assert members == n and pages == n // GROUP_MEMBERS_PER_PAGE
        # One change in 100k: the diff finds exactly it.
        tenant["users"][500]["accountEnabled"] = False
        sim.put_tenant(tenant)
        body = client.get(link).json()
        assert body["value"] == [{"id": tenant["users"][500]["id"], "accountEnabled": False}]
