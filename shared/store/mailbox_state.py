"""The mailbox pass's own state, one row per mailbox (`MailboxStates`).

Table `mailboxes` (with the store's prefix), PartitionKey `m-XX` (XX: the user's bucket,
`codec.user_bucket`, the same as its calendars' and events'), RowKey the encoded Emply
user id. A row holds what the pass (`shared.run.mailboxes`) knows of the mailbox: the
Entra id, the calendars Emply keeps as the pass left them, and per mirrored calendar
its delta link and what Emply holds of it. The pass defines that value (plain JSON);
here it is text split over properties `p0`, `p1`, ... of at most `PART_CHARS`
characters each (Table Storage's limit per string property is 64 KiB). Partition
`index` holds the pass's index (a row per bucket); other partitions hold the pass's
records (`read_records`, `put_record`: the shards of a run and their claims on buckets),
each written conditionally on its ETag where two writers may meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.store import codec, keys, wire
from shared.store.codec import Operation
from shared.store.tally import Tally

TABLE = "mailboxes"
PART_CHARS = 30_000
MAX_PARTS = 30
"""At most 900,000 characters a mailbox (an entity holds at most 1 MiB)."""


INDEX = "index"
"""The partition of the pass's index: one row per bucket (RowKey), its synced users."""


def partition(bucket: str) -> str:
    return f"m-{bucket}"


def encode(state: Mapping[str, Any]) -> dict[str, Any]:
    """The properties of one mailbox's row (without its keys)."""
    text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    parts = [text[i:i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    if len(parts) > MAX_PARTS:
        raise ValueError(f"a mailbox's state is {len(text)} characters, more than a row holds")
    return {f"p{n}": part for n, part in enumerate(parts)}


def decode(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """One mailbox's state from its row; None when the row is not one (or is damaged:
    the pass then reads that mailbox as new)."""
    parts = []
    for n in range(MAX_PARTS):
        part = row.get(f"p{n}")
        if not isinstance(part, str):
            break
        parts.append(part)
    try:
        value = json.loads("".join(parts))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class AzureMailboxStates:
    """`protocols.MailboxStates` in a table."""

    def __init__(self, table: TableClient, tally: Tally) -> None:
        self._table = table
        self._tally = tally
        self._ready = False
        self._limit = asyncio.Semaphore(codec.CONCURRENCY)

    async def _ensure(self) -> None:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await self._table.create_table()
            self._ready = True

    async def read_states(self, first: str, last: str) -> dict[str, dict[str, Any]]:
        await self._ensure()
        found: dict[str, dict[str, Any]] = {}
        query = (f"PartitionKey ge '{partition(first)}' and "
                 f"PartitionKey le '{partition(last)}'")
        async with self._limit:
            async for page in wire.query(self._table, query):
                for row in page:
                    state = decode(row)
                    if state is not None:
                        found[keys.decode_key(row["RowKey"])] = state
        return found

    async def write_states(self, states: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Replace (or with None delete) the state of these users' mailboxes."""
        await self._write([(partition(codec.user_bucket(user_id)), keys.encode_key(user_id),
                            state) for user_id, state in states.items()])

    async def read_index(self) -> dict[str, dict[str, Any]]:
        """Bucket -> its index row's value."""
        await self._ensure()
        found: dict[str, dict[str, Any]] = {}
        async for page in wire.query(self._table, f"PartitionKey eq '{INDEX}'"):
            for row in page:
                value = decode(row)
                if value is not None:
                    found[str(row["RowKey"])] = value
        return found

    async def write_index(self, rows: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Replace (or with None delete) these buckets' index rows."""
        await self._write([(INDEX, bucket, value) for bucket, value in rows.items()])

    async def read_records(self, partition_key: str) -> dict[str, tuple[dict[str, Any], str]]:
        """Key -> (value, ETag) of one partition's records."""
        await self._ensure()
        found: dict[str, tuple[dict[str, Any], str]] = {}
        escaped = partition_key.replace("'", "''")
        async for page in wire.query(self._table, f"PartitionKey eq '{escaped}'"):
            for row in page:
                value = decode(row)
                if value is not None:
                    found[keys.decode_key(row["RowKey"])] = (value, str(row[wire.ETAG]))
        return found

    async def put_record(self, partition_key: str, key: str, value: Mapping[str, Any], *,
                         etag: str | None = None, create: bool = False) -> str | None:
        """Write one record: replacing whatever is there, or only if its ETag is still
        `etag`, or (`create`) only if there is none. Its new ETag; None when the
        condition did not hold."""
        await self._ensure()
        entity = {"PartitionKey": partition_key, "RowKey": keys.encode_key(key),
                  **encode(value)}
        try:
            if create:
                result = await self._table.create_entity(entity)
            elif etag is not None:
                result = await self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag,
                    match_condition=MatchConditions.IfNotModified)
            else:
                result = await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        self._tally.count(singles=1)
        return str(result["etag"])

    async def delete_record(self, partition_key: str, key: str, *,
                            etag: str | None = None) -> bool:
        """Delete one record (only if its ETag is still `etag`, when given); False when
        it had changed. A record already gone is fine."""
        await self._ensure()
        try:
            if etag is None:
                await self._table.delete_entity(partition_key, keys.encode_key(key))
            else:
                await self._table.delete_entity(
                    partition_key, keys.encode_key(key), etag=etag,
                    match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            return False
        except ResourceNotFoundError:
            return True
        self._tally.count(singles=1)
        return True

    async def _write(self, rows: list[tuple[str, str, Mapping[str, Any] | None]]) -> None:
        if not rows:
            return
        await self._ensure()
        by_partition: dict[str, list[Operation]] = {}
        for pk, rk, value in rows:
            op: Operation = (("delete", {"PartitionKey": pk, "RowKey": rk}, {})
                             if value is None else
                             ("upsert", {"PartitionKey": pk, "RowKey": rk, **encode(value)}, {}))
            by_partition.setdefault(pk, []).append(op)
        await asyncio.gather(*(self._send(chunk) for ops in by_partition.values()
                               for chunk in _by_verb(ops)))

    async def _send(self, chunk: list[Operation]) -> None:
        async with self._limit:
            try:
                await wire.submit(self._table, chunk)
            except HttpResponseError as exc:
                if chunk[0][0] != "delete" or exc.status_code != 404:
                    raise
                for op in chunk:  # one was gone already: each on its own
                    with contextlib.suppress(HttpResponseError):
                        await wire.submit(self._table, [op])
        self._tally.count(batches=1)


def _by_verb(ops: list[Operation]) -> list[list[Operation]]:
    """Deletes apart from upserts (a failed delete of a gone row is retried alone)."""
    deletes = [op for op in ops if op[0] == "delete"]
    upserts = [op for op in ops if op[0] != "delete"]
    return [*codec.chunks(deletes), *codec.chunks(upserts)]
