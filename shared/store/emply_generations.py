"""The generation tables of the Emply side, the version marker that names the current
one, and the transactions every Emply write goes through.

An import writes the whole new Emply side into a table of its own and makes it current
with one conditional write of the version marker, whose `table` property names the
generation (`import_document`); readers and writers follow the marker (`_follow`), so a
failed or killed import leaves the previous generation current and whole, and the
previous table is dropped after a switch. `AzureEmplyTables`
(`shared.store.emply_tables`) adds the loads and the run's writes on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.emply import checks as emply_checks
from shared.emply import document as emply_doc
from shared.store import codec, errors, wire
from shared.store.codec import META_PK, VERSION_RK, Operation
from shared.store.emply_ledger import AzureLedger
from shared.store.tally import Ensure, Tally

_log = logging.getLogger("emply_sync.store")  # under the logger telemetry exports


class GenerationTables:
    """Which generation is current (`emply`, followed from the marker), imports that
    make a new one current, and the transactions of Emply writes."""

    def __init__(self, tables: TableServiceClient, meta: TableClient, *, ensure: Ensure,
                 tally: Tally) -> None:
        self._tables = tables
        self._meta = meta
        """The table of the version marker, which names the current generation."""
        self.emply: TableClient = meta
        """The table of the current generation of the Emply side (see `_follow`)."""
        self._generation: str | None = None
        self._resolved = False
        self._ensure = ensure
        self._tally = tally
        self._limit = asyncio.Semaphore(codec.CONCURRENCY)


    async def current_generation(self) -> str:
        """The generation the marker names now ("" before the first import), read again:
        the mailbox pass compares it with the one its state was written against."""
        await self._ensure()
        await self._read_marker()
        return self._generation or ""

    # --- imports and stale generations ---------------------------------------

    async def import_document(
        self, doc: object, *, replace: bool = False,
        before_switch: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, int]:
        """Validate `doc`, then make it the Emply side: upserted into what the store holds,
        or with `replace` instead of it. All or nothing, also across a crash.

        Everything is checked first (`emply_doc.validate_document`, against the stored
        entities for a plain import, and what Table Storage would refuse:
        `limits.row_problems`): a refused document raises `DocumentError` listing every
        problem and nothing is written. The result is then written as a new generation
        (its own table; for a plain import the stored entities the file does not replace
        are copied over) and made current by one conditional write of the version marker,
        which names the generation. Until that write, readers see the previous
        generation, whole; a failure before it raises `ImportFailed` and the new table is
        dropped; another writer's change meanwhile raises `EmplyReplaced` (the marker
        moved) and nothing is imported. The previous generation is dropped afterwards.
        `before_switch` runs just before the switch (the caller's lease check).
        The sync's own state (sync state blob, runs, lease) is never touched.
        Returns the number of entities written per section.
        """
        await self._ensure()
        marker = await self._read_marker()
        previous = self._generation
        kept: dict[tuple[str, str], dict[str, Any]] = {}
        stored: emply_checks.Stored | None = None
        known: dict[str, set[str]] = {"roles": set(), "users": set(), "employees": set()}
        calendars: set[tuple[str, str]] = set()
        if not replace:
            kept = await self._raw_rows(self.emply)
            stored, known = codec.identities(kept.values())
            calendars = {(str(r.get("userId")), str(r.get("id"))) for r in kept.values()
                         if r["PartitionKey"].startswith(codec.PARTITIONS["calendars"] + "-")}
        try:
            clean = emply_doc.validate_document(
                doc, known_role_ids=known["roles"], known_user_ids=known["users"],
                known_employee_ids=known["employees"], stored=stored,
                known_calendars=calendars)
        except emply_doc.DocumentError as exc:
            # Table Storage's limits too, in the entities that passed: every problem at once.
            if exc.valid is None:
                raise
            raise exc.with_more(codec.import_rows(exc.valid, exc.positions)[2]) from None
        rows, counts, problems = codec.import_rows(clean)
        if problems:
            raise emply_doc.DocumentError.of(problems)
        for key in rows:
            kept.pop(key, None)
        generation = uuid.uuid4().hex
        target = self._data_table(generation)
        value = uuid.uuid4().hex
        try:
            await self._tables.create_table(target.table_name)
            ops: list[Operation] = [("upsert", row, {})
                                    for row in (*rows.values(), *kept.values())]
            del rows, kept
            await self._submit_chunks(ops, kind="entity", table=target)
            if before_switch is not None:
                await before_switch()
            await self._switch(marker, generation, value)
        except BaseException as exc:
            if not await self._abandon(generation, exc):
                raise
            # The switch happened; only its answer was lost on the way back.
        self.emply, self._generation = target, generation
        await self._drop_generation(previous)
        return counts

    async def _switch(self, marker: Mapping[str, Any] | None, generation: str,
                      value: str) -> str:
        """Make `generation` current: the version marker as read at the import's start,
        replaced conditionally on its ETag (one atomic write). Returns the new ETag."""
        entity = {"PartitionKey": META_PK, "RowKey": VERSION_RK, "value": value,
                  "table": generation}
        try:
            if marker is None:
                result = await self._meta.create_entity(entity)
            else:
                result = await self._meta.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=marker[wire.ETAG],
                    match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise errors.EmplyReplaced(
                "the Emply side was changed by another writer while the import was being "
                "written; nothing was imported (try again)") from exc
        self._tally.count(singles=1)
        self._tally.stats["marker_writes"] += 1
        return str(result["etag"])

    async def _abandon(self, generation: str, exc: BaseException) -> bool:
        """After a failed import: drop its table unless the switch may have happened
        (a lost response). True when the marker shows the switch did happen (the import
        took effect); else raises `ImportFailed` for a storage error, or returns False
        (the caller re-raises)."""
        # Always look: even a refused switch may be our own write sent twice (azure-core
        # retries a PUT whose answer was lost; the second copy then fails its If-Match).
        switched: bool | None = None
        with contextlib.suppress(Exception):
            marker = await codec.get_row(self._meta, META_PK, VERSION_RK)
            switched = marker is not None and marker.get("table") == generation
        if switched:
            return True
        if switched is False:
            with contextlib.suppress(Exception):
                await self._tables.delete_table(self._data_table(generation).table_name)
        if isinstance(exc, Exception) and not isinstance(exc, errors.StoreError):
            raise errors.ImportFailed(exc, outcome_unknown=switched is None) from exc
        return False

    async def _raw_rows(self, table: TableClient) -> dict[tuple[str, str], dict[str, Any]]:
        """Every Emply row of `table` as it would be written back (no OData metadata)."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        async for page in wire.query(table, f"PartitionKey ne '{META_PK}'"):
            for row in page:
                clean = {k: v for k, v in row.items()
                         if not k.startswith(("odata.", "Timestamp"))}
                out[(row["PartitionKey"], row["RowKey"])] = clean
        return out

    async def _drop_generation(self, generation: str | None) -> None:
        """Remove a generation the marker no longer names; a failure only leaves garbage
        (`remove_stale_generations` takes it later), so it is logged, not raised."""
        try:
            if generation is not None:
                await self._tables.delete_table(self._data_table(generation).table_name)
                return
            # The first generation is the marker's own table: delete its Emply rows.
            rows = [row async for page in wire.query(
                self._meta, f"PartitionKey ne '{META_PK}'", select=["PartitionKey", "RowKey"])
                for row in page]
            await self._submit_chunks(
                [("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}, {})
                 for r in rows], kind="entity", table=self._meta)
        except Exception:
            _log.warning("emply_store.old_generation_not_removed",
                         extra={"generation": generation or "(first)"}, exc_info=True)

    async def remove_stale_generations(self) -> int:
        """Drop generation tables the marker does not name (left by an import that crashed
        before it switched). Only while holding the lease: an import under way elsewhere
        would lose its table. Returns how many were dropped."""
        await self._ensure()
        marker = await self._read_marker()
        current = marker.get("table") if marker else None
        base = self._meta.table_name
        stale = re.compile(re.escape(base) + r"[0-9a-f]{32}")
        names = [t.name async for t in self._tables.query_tables(
            f"TableName ge '{base}' and TableName lt '{base}~'")]
        dropped = 0
        for name in names:
            if stale.fullmatch(name) and name != base + str(current):
                with contextlib.suppress(ResourceNotFoundError):
                    await self._tables.delete_table(name)
                dropped += 1
        return dropped

    # --- generations ---------------------------------------------------------

    def _data_table(self, generation: str | None) -> TableClient:
        if generation is None:
            return self._meta
        return self._tables.get_table_client(self._meta.table_name + generation)

    def _follow(self, marker: Mapping[str, Any] | None) -> None:
        """Point `self.emply` at the generation the marker names (none: the marker's own
        table, as before generations existed)."""
        generation = marker.get("table") if marker else None
        if generation is not None and not codec.GENERATION.fullmatch(str(generation)):
            raise errors.StoreError(f"the Emply version marker names no generation table: "
                                    f"{generation!r}")
        if not self._resolved or generation != self._generation:
            self.emply = self._data_table(generation)
            self._generation = generation
        self._resolved = True

    async def _read_marker(self) -> dict[str, Any] | None:
        marker = await codec.get_row(self._meta, META_PK, VERSION_RK)
        self._follow(marker)
        return marker

    async def resolve(self) -> None:
        """Find the current generation once, for a store that has not read the marker."""
        await self._ensure()
        if not self._resolved:
            await self._read_marker()

    def _marker(self, value: str) -> dict[str, Any]:
        entity = {"PartitionKey": META_PK, "RowKey": VERSION_RK, "value": value}
        if self._generation is not None:
            entity["table"] = self._generation
        return entity

    # --- transactions --------------------------------------------------------

    async def _stale(self, chunk: list[Operation]) -> set[int]:
        """The indexes of the conditional writes whose entity's ETag moved (or is gone)."""
        stale: set[int] = set()
        for index, (_op, row, kwargs) in enumerate(chunk):
            if "etag" not in kwargs:
                continue
            current = await codec.get_row(self.emply, row["PartitionKey"], row["RowKey"])
            if current is None or current[wire.ETAG] != kwargs["etag"]:
                stale.add(index)
        return stale

    async def _submit_chunks(self, ops: list[Operation], *, kind: str,
                             ledger: AzureLedger | None = None,
                             table: TableClient | None = None) -> None:
        by_partition: dict[str, list[Operation]] = {}
        for op in ops:
            by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
        chunks = [chunk for part in by_partition.values() for chunk in codec.chunks(part)]
        await asyncio.gather(*(self._submit(chunk, kind, ledger, table) for chunk in chunks))

    async def _submit(self, chunk: list[Operation], kind: str, ledger: AzureLedger | None,
                      table: TableClient | None = None) -> None:
        async with self._limit:
            await self._send(chunk, kind, ledger, table)

    async def _send(self, chunk: list[Operation], kind: str, ledger: AzureLedger | None,
                    table: TableClient | None = None) -> None:
        deletes = chunk[0][0] == "delete"
        try:
            etags = await wire.submit(table or self.emply, chunk)
        except HttpResponseError as exc:
            if deletes and exc.status_code == 404:
                await self._delete_one_by_one(chunk, table or self.emply)
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
        """Find which conditional write of a failed transaction was stale."""
        stale = sorted(await self._stale(chunk))
        if stale:
            raise errors.ConcurrentChangeError(kind, str(chunk[stale[0]][1].get("id"))) from exc

