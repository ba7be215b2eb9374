"""Storage of the change feed (`GET /api/changes`): chunks of applied changes in order.

A run's applied changes are stored in chunks, a few hundred to a thousand changes per
entity, not one entity per change: a 100,000-user initial run (about 133,000 changes)
is a few hundred entities. Table `changefeed` (with the store's prefix), PartitionKey
"feed", RowKey the chunk's key (`shared.run.change_feed` makes keys that sort in the order
the runs applied them). A chunk's changes are JSON, zlib-compressed, split over binary
properties `d00`, `d01`, ... of at most 64 KiB each (Table Storage's limit per property).

`ChunkStore` is the protocol `shared.run.change_feed` works against; `TableChunks` keeps
the chunks in Table Storage, `MemoryChunks` in memory (service-level tests).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from shared.store.azure_store import EmplyStore

TABLE = "changefeed"
PARTITION = "feed"
PART_BYTES = 60_000
"""Bytes per binary property (Table Storage takes at most 64 KiB)."""
MAX_PARTS = 15
"""Properties per chunk: 900 KB of compressed changes, under the 1 MiB entity limit."""
_CONCURRENCY = 8


class ChunkTooLarge(ValueError):
    """A chunk's compressed changes do not fit one entity (the caller splits it)."""


class Chunk:
    """One stored chunk: its key, and its changes (decoded when asked), with what they
    share (the run id and the time: `{"shared": {...}, "changes": [...]}`), so the
    changes are stored as the report has them, not copied one by one."""

    __slots__ = ("_payload", "count", "key")

    def __init__(self, key: str, payload: bytes, count: int) -> None:
        self.key = key
        self.count = count
        self._payload = payload

    @classmethod
    def of(cls, key: str, changes: Sequence[Mapping[str, Any]],
           shared: Mapping[str, Any] | None = None) -> Chunk:
        raw = json.dumps({"shared": dict(shared or {}), "changes": list(changes)},
                         ensure_ascii=False, separators=(",", ":")).encode()
        payload = zlib.compress(raw, 1)  # level 1: a fifth of level 6's time, 15% larger
        if len(payload) > PART_BYTES * MAX_PARTS:
            raise ChunkTooLarge(f"{len(changes)} changes compress to {len(payload)} bytes")
        return cls(key, payload, len(changes))

    @property
    def payload(self) -> bytes:
        return self._payload

    def changes(self) -> list[dict[str, Any]]:
        """The changes, each with the fields they share."""
        decoded = json.loads(zlib.decompress(self._payload))
        shared = decoded["shared"]
        return [{**change, **shared} for change in decoded["changes"]]


class ChunkStore(Protocol):
    """Where the feed's chunks live, ordered by key."""

    async def put(self, chunks: Sequence[Chunk]) -> None:
        """Write these chunks (a rewrite of a key replaces it)."""

    def from_key(self, key: str) -> AsyncIterator[Chunk]:
        """The chunks whose key is `key` or after, in key order."""

    async def delete_before(self, key: str) -> int:
        """Delete the chunks whose key sorts before `key`; how many were deleted."""


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


class MemoryChunks:
    """`ChunkStore` in memory, for service-level tests."""

    def __init__(self) -> None:
        self.chunks: dict[str, Chunk] = {}

    async def put(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self.chunks[chunk.key] = chunk

    async def from_key(self, key: str) -> AsyncIterator[Chunk]:
        keys = sorted(self.chunks)
        for found in keys[bisect.bisect_left(keys, key):]:
            yield self.chunks[found]

    async def delete_before(self, key: str) -> int:
        old = [k for k in self.chunks if k < key]
        for k in old:
            del self.chunks[k]
        return len(old)


def chunks_of(store: object) -> ChunkStore:
    """The feed's chunks beside a store: for the Azure store a table in its account
    (same prefix as its other tables); for another (the in-memory fakes) the
    `ChunkStore` it carries as `change_feed`."""
    if isinstance(store, EmplyStore):
        return TableChunks(store._tables.get_table_client(store.prefix + TABLE))
    chunks = getattr(store, "change_feed", None)
    if chunks is None:
        raise TypeError(f"{type(store).__name__} keeps no change feed")
    found: ChunkStore = chunks
    return found
