"""Baseline (a): the same users through msgraph-sdk's generated models and as raw JSON.

Both read ``/users`` pages of 999 with the same ``$select`` on the same
`shared.graph.client.GraphClient` (same middleware, same simulator); only the
parsing differs: ``GraphServiceClient.users.get()`` / ``with_url(nextLink)``
(Kiota models) against `GraphClient.get_json` (bytes, ``json.loads``).
"""

from __future__ import annotations

import time
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from shared.graph import client as graph_client
from shared.graph import reader


async def _sdk(client: graph_client.GraphClient, limit: int) -> int:
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        select=list(reader.USER_FIELDS), top=999)
    page = await client.service.users.get(
        request_configuration=RequestConfiguration(query_parameters=query))
    count = 0
    while page is not None:
        count += len(page.value or [])
        if count >= limit or not page.odata_next_link:
            break
        page = await client.service.users.with_url(page.odata_next_link).get()
    return count


async def _raw(client: graph_client.GraphClient, limit: int) -> int:
    url: str | None = "/users?$select=" + ",".join(reader.USER_FIELDS) + "&$top=999"
    count = 0
    while url:
        page = await client.get_json(url)
        count += len(page["value"])
        if count >= limit:
            break
        url = page.get("@odata.nextLink")
    return count


async def _timed(fn: Any, graph_url: str, limit: int) -> dict[str, Any]:
    client = graph_client.create_graph_client(graph_url, env={})
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        count = await fn(client, limit)
        return {"users": count, "wallSeconds": round(time.perf_counter() - wall0, 3),
                "cpuSeconds": round(time.process_time() - cpu0, 3),
                "requests": client.stats.total_requests}
    finally:
        await client.aclose()


async def compare(graph_url: str, users: int) -> dict[str, Any]:
    raw = await _timed(_raw, graph_url, users)
    sdk = await _timed(_sdk, graph_url, users)
    return {
        "users": users,
        "sdk": sdk,
        "raw": raw,
        "wallRatio": round(sdk["wallSeconds"] / max(raw["wallSeconds"], 1e-9), 1),
        "cpuRatio": round(sdk["cpuSeconds"] / max(raw["cpuSeconds"], 1e-9), 1),
        "sdkCpuMsPerUser": round(1000 * sdk["cpuSeconds"] / max(sdk["users"], 1), 3),
        "rawCpuMsPerUser": round(1000 * raw["cpuSeconds"] / max(raw["users"], 1), 4),
    }
