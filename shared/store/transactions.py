"""Table transactions of the Emply side: at most 100 operations of one partition each
(Azurite answers garbage above that), several in flight at once, conditional writes
whose refusal is traced to the entity that changed (`ConcurrentChangeError`), and a
write whose answer was lost reported as such (`OutcomeUnknown`), never as not made."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.data.tables.aio import TableClient

from shared.store import codec, errors, wire
from shared.store.codec import Operation
from shared.store.ledger import AzureLedger
from shared.store.tally import Tally


class Transactions:
    """Sends operations to the current generation table (`table()`)."""

    def __init__(self, table: Callable[[], TableClient], *, tally: Tally,
                 limit: asyncio.Semaphore) -> None:
        self._table = table
        self._tally = tally
        self._limit = limit

    async def send_or_skip(self, chunk: list[Operation], kind: str,
                            ledger: AzureLedger) -> list[str]:
        """Send one transaction; the conditional writes whose entity changed since it was
        loaded are left out and the rest sent again (a transaction fails as a whole).
        Returns the ids of the entities left out."""
        left_out: list[str] = []
        while chunk:
            try:
                await self.send(chunk, kind, ledger)
                break
            except errors.ConcurrentChangeError:
                stale = await self.stale(chunk)
                if not stale:
                    raise
                left_out += [str(chunk[i][1].get("id")) for i in stale]
                chunk = [op for i, op in enumerate(chunk) if i not in stale]
        return left_out

    async def stale(self, chunk: list[Operation]) -> set[int]:
        """The indexes of the conditional writes whose entity's ETag moved (or is gone)."""
        stale: set[int] = set()
        for index, (_op, row, kwargs) in enumerate(chunk):
            if "etag" not in kwargs:
                continue
            current = await codec.get_row(self._table(), row["PartitionKey"], row["RowKey"])
            if current is None or current[wire.ETAG] != kwargs["etag"]:
                stale.add(index)
        return stale

    async def submit_chunks(self, ops: list[Operation], *, kind: str,
                             ledger: AzureLedger | None = None,
                             table: TableClient | None = None) -> None:
        by_partition: dict[str, list[Operation]] = {}
        for op in ops:
            by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
        chunks = [chunk for part in by_partition.values() for chunk in codec.chunks(part)]
        await asyncio.gather(*(self.submit(chunk, kind, ledger, table) for chunk in chunks))

    @staticmethod
    def operation(row: dict[str, Any], ledger: AzureLedger) -> Operation:
        """Replace the entity: conditional on its ETag when `ledger` has it."""
        etag = ledger.etags.get((row["PartitionKey"], row["RowKey"]))
        return ("upsert", row, {}) if etag is None else ("update", row, {"etag": etag})

    async def submit(self, chunk: list[Operation], kind: str, ledger: AzureLedger | None,
                      table: TableClient | None = None) -> None:
        async with self._limit:
            await self.send(chunk, kind, ledger, table)

    async def send(self, chunk: list[Operation], kind: str, ledger: AzureLedger | None,
                    table: TableClient | None = None) -> None:
        deletes = chunk[0][0] == "delete"
        try:
            etags = await wire.submit(table or self._table(), chunk)
        except ServiceResponseError as exc:  # sent, and no answer came back
            raise errors.OutcomeUnknown(kind, type(exc).__name__) from exc
        except HttpResponseError as exc:
            if deletes and exc.status_code == 404:
                await self._delete_one_by_one(chunk, table or self._table())
                return
            if exc.status_code in (404, 409, 412):
                await self._raise_conflict(chunk, kind, exc)
            raise
        if deletes:
            self._tally.count(batches=1, deleted=len(chunk))
            return
        self._tally.count(batches=1, written=len(chunk))
        self._tally.stats["entities_replaced"] += sum(1 for op in chunk if op[0] == "update")
        tally = self._tally.batches_by_partition.setdefault(chunk[0][1]["PartitionKey"], [0, 0])
        tally[0] += 1
        tally[1] += len(chunk)
        if ledger is None:
            return
        for (_op, row, _kw), etag in zip(chunk, etags, strict=False):
            if etag:
                ledger.etags[(row["PartitionKey"], row["RowKey"])] = etag

    async def _delete_one_by_one(self, chunk: list[Operation], table: TableClient) -> None:
        for _op, row, _kw in chunk:
            with contextlib.suppress(ResourceNotFoundError):
                await table.delete_entity(row["PartitionKey"], row["RowKey"])
            self._tally.count(singles=1, deleted=1)

    async def _raise_conflict(self, chunk: list[Operation], kind: str,
                              exc: HttpResponseError) -> None:
        """Find which conditional write (or insert) of a failed transaction conflicted."""
        inserts = [row for op, row, _kw in chunk if op == "insert"]
        if exc.status_code == 409 and inserts:
            raise errors.ConcurrentChangeError(kind, str(inserts[0].get("id"))) from exc
        stale = sorted(await self.stale(chunk))
        if stale:
            raise errors.ConcurrentChangeError(kind, str(chunk[stale[0]][1].get("id"))) from exc
