"""Storage of the change feed (`GET /api/changes`): chunks of applied changes in order.

Table `changefeed` (with the store's prefix), PartitionKey "feed", RowKey the chunk's
key (`shared.run.steps.change_feed` makes keys that sort in the order the runs applied
them). A chunk's compressed changes (`shared.store.feed_chunks`) are split over binary
properties `d00`, `d01`, ... of at most 64 KiB each (Table Storage's limit per
property). `TableChunks` is the `FeedChunks` protocol (`shared.store.protocols`) in a
table; the Azure store hands one out (`EmplyStore.feed_chunks`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from shared.store.feed_chunks import PART_BYTES, Chunk

TABLE = "changefeed"
PARTITION = "feed"
_CONCURRENCY = 8


class TableChunks:
    """`ChunkStore` in a Table (see the module docstring)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await self._table.create_table()
            self._ready = True

    async def put(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        await self._ensure()
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(chunk: Chunk) -> None:
            entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": chunk.key,
                                      "count": chunk.count}
            data = chunk.payload
            for index in range(0, len(data), PART_BYTES):
                entity[f"d{index // PART_BYTES:02d}"] = data[index:index + PART_BYTES]
            async with limit:
                await self._table.upsert_entity(entity)

        await asyncio.gather(*(one(chunk) for chunk in chunks))

    async def from_key(self, key: str) -> AsyncIterator[Chunk]:
        query = "PartitionKey eq @pk and RowKey ge @rk"
        try:
            async for entity in self._table.query_entities(
                    query, parameters={"pk": PARTITION, "rk": key}, results_per_page=3):
                # Few a request: a page of the feed usually needs one or two chunks.
                parts = sorted(name for name in entity if name.startswith("d")
                               and name[1:].isdigit())
                payload = b"".join(bytes(entity[name]) for name in parts)
                yield Chunk(str(entity["RowKey"]), payload, int(entity["count"]))
        except ResourceNotFoundError:  # no run has written the feed yet
            return

    async def delete_before(self, key: str) -> int:
        query = "PartitionKey eq @pk and RowKey lt @rk"
        gone = 0
        try:
            async for entity in self._table.query_entities(
                    query, parameters={"pk": PARTITION, "rk": key},
                    select=["PartitionKey", "RowKey"]):
                with contextlib.suppress(ResourceNotFoundError):
                    await self._table.delete_entity(PARTITION, str(entity["RowKey"]))
                gone += 1
        except ResourceNotFoundError:
            return 0
        return gone
