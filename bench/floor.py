"""Baseline (b), the floor: what any sync of this tenant must at least do.

Page the same Graph data as raw JSON (httpx, the largest page size, users and
groups concurrently as the sync does) and write as many entities as the initial
sync wrote to the same Azurite, partitioned as the store partitions users
(`shared.store.azure_store.bucket`: 256 hash buckets), in full transactions of up to 100
entities of one partition (azure-data-tables' pipeline, the documented ``$batch``
body, 8 in flight), nothing else: no planning, no reading of the Emply side, no
state, no report.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from azure.data.tables.aio import TableClient, TableServiceClient

from shared import config
from shared.graph import reader
from shared.store import wire
from shared.store.azure_store import bucket

_CONCURRENCY = 8


async def _page_all(client: httpx.AsyncClient, url: str) -> int:
    requests = 0
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url, headers={"Prefer": "odata.maxpagesize=999"})
        response.raise_for_status()
        requests += 1
        page = json.loads(response.content)
        next_url = page.get("@odata.nextLink")
    return requests


async def read_graph(graph_url: str) -> int:
    headers = {"Authorization": f"Bearer {config.SIMULATOR_TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=600) as client:
        org = await client.get(graph_url + reader.ORGANIZATION_PATH)
        org.raise_for_status()
        counts = await asyncio.gather(_page_all(client, graph_url + reader.USERS_DELTA_PATH),
                                      _page_all(client, graph_url + reader.GROUPS_DELTA_PATH))
    return 1 + sum(counts)


def _entity(i: int) -> dict[str, Any]:
    """About the size and shape of a user entity after the initial sync."""
    entra = f"00000000-0000-4000-8000-{i:012d}"
    row_key = f"entra-{entra}"
    change = {"kind": "create_user", "rule": "R4", "reason": "create_user",
              "message": f"created from Entra user user{i}@bench.example (member of Group 1) "
                         "with roles role-1", "runId": "20250101T000000Z-0123abcd",
              "at": "2025-01-01T00:00:00.000Z"}
    return {
        "PartitionKey": f"user-{bucket(row_key)}", "RowKey": row_key, "id": row_key,
        "username": f"user{i}@bench.example", "email": f"User{i}@bench.example",
        "displayName": f"User {i}", "status": "active", "roles": '["role-1"]',
        "source": "entra", "entraId": entra, "calendarSync": True,
        "tenantId": "7b0f6c1e-3a52-4d8e-9a61-5c2f0e4d8b13",
        "linkedAt": "2025-01-01T00:00:00.000Z",
        "syncGroups": '["10000000-0000-4000-8000-000000000001"]',
        "lastChange": json.dumps(change), "history": json.dumps([change]),
    }


async def _submit(table: TableClient, ops: list[wire.Operation], limit: asyncio.Semaphore
                  ) -> None:
    # The same hand-built $batch transport the store uses: the floor measures Azurite, not
    # a different client.
    async with limit:
        await wire.submit(table, ops)


async def write_entities(storage: str, count: int, table: str, *, replace: int = 0,
                         first: int = 0) -> dict[str, int]:
    """Write `count` user-like entities (numbered from `first`), the first `replace` of
    them as replacements of existing ones (If-Match, as the store writes entities it
    loaded); the number of entities per partition."""
    async with TableServiceClient.from_connection_string(storage) as service:
        client = await service.create_table_if_not_exists(table)
        by_partition: dict[str, list[wire.Operation]] = {}
        for i in range(first, first + count):
            row = _entity(i)
            op: wire.Operation = (("update", row, {"etag": "*"}) if i - first < replace
                                  else ("upsert", row, {}))
            by_partition.setdefault(row["PartitionKey"], []).append(op)
        limit = asyncio.Semaphore(_CONCURRENCY)
        chunks = [ops[i:i + 100] for ops in by_partition.values()
                  for i in range(0, len(ops), 100)]
        await asyncio.gather(*(_submit(client, chunk, limit) for chunk in chunks))
        return {pk: len(ops) for pk, ops in by_partition.items()}


async def drop_table(storage: str, table: str) -> None:
    async with TableServiceClient.from_connection_string(storage) as service:
        await service.delete_table(table)


async def measure(graph_url: str, storage: str, entities: int, *, table: str,
                  existing: int = 0, replaced: int = 0) -> dict[str, Any]:
    """The floor for a sync that wrote `entities`, `replaced` of them over entities that
    existed, into a table that held `existing` entities before it.

    With `existing` = `replaced` = 0: new entities into an empty table. Otherwise the
    table is first filled (not timed) with `existing` entities, and the timed writes
    replace `replaced` of them and add the rest, like for like: on Azurite a replace
    costs in proportion to the size of the table (see README "Scale"), so a floor of
    inserts into an empty table is not the least a sync that must update existing
    entities has to do.
    """
    if existing:
        await write_entities(storage, existing, table)
    t0 = time.perf_counter()
    requests = await read_graph(graph_url)
    t1 = time.perf_counter()
    partitions = await write_entities(storage, entities, table, replace=replaced,
                                      first=existing - replaced)
    t2 = time.perf_counter()
    await drop_table(storage, table)
    return {"wallSeconds": round(t2 - t0, 3), "readSeconds": round(t1 - t0, 3),
            "writeSeconds": round(t2 - t1, 3), "requests": requests,
            "entities": entities, "existing": existing, "replaced": replaced,
            "partitions": len(partitions),
            "batches": sum(-(-n // 100) for n in partitions.values())}
