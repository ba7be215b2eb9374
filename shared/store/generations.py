"""Generations of the Emply side: an import written whole into a table of its own and
made current by one conditional write of the version marker (`import_document`), and
the tables failed imports left (`remove_stale_generations`). See
`shared.store.emply_tables` for the marker and the tables."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.emply import checks as emply_checks
from shared.emply import document as emply_doc
from shared.store import codec, errors, wire
from shared.store.codec import META_PK, VERSION_RK, Operation

if TYPE_CHECKING:
    from shared.store.emply_tables import AzureEmplyTables

_log = logging.getLogger("emply_sync.store")


class AzureGenerations:
    """`protocols.EmplyGenerations` (but export) over `AzureEmplyTables`' tables."""

    def __init__(self, tables: AzureEmplyTables) -> None:
        self._t = tables

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
        await self._t.ensure()
        marker = await self._t.read_marker()
        previous = self._t.generation
        ops, index_rows, counts = await self._checked(doc, replace)
        generation = uuid.uuid4().hex
        target, unique = self._t.data_table(generation), self._t.index_table(generation)
        value = uuid.uuid4().hex
        try:
            await self._t.service.create_table(target.table_name)
            await self._t.service.create_table(unique.table_name)
            await self._t.txn.submit_chunks(ops, kind="entity", table=target)
            await self._t.index.write_rows(index_rows, unique)
            del ops, index_rows
            if before_switch is not None:
                await before_switch()
            await self._switch(marker, generation, value)
        except BaseException as exc:
            if not await self._abandon(generation, exc):
                raise
            # The switch happened; only its answer was lost on the way back.
        self._t.emply, self._t.unique, self._t.generation = target, unique, generation
        await self._t.index.mark(generation)  # written whole with it (a crash: `ensure`)
        await self._drop_generation(previous)
        return counts

    async def _checked(self, doc: object, replace: bool
                       ) -> tuple[list[Operation], list[dict[str, Any]], dict[str, int]]:
        """The rows of the new generation, checked (`DocumentError` naming every problem):
        the document's, for a plain import the stored ones it does not replace; and the
        rows of its users' uniqueness index, built whole (`shared.store.unique_index`)."""
        kept: dict[tuple[str, str], dict[str, Any]] = {}
        stored: emply_checks.Stored | None = None
        known: dict[str, set[str]] = {"roles": set(), "users": set(), "employees": set()}
        calendars: set[tuple[str, str]] = set()
        if not replace:
            kept = await self._raw_rows(self._t.emply)
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
        users = codec.PARTITIONS["users"] + "-"
        index = self._t.index.rows(row for row in (*rows.values(), *kept.values())
                                   if row["PartitionKey"].startswith(users))
        return [("upsert", row, {}) for row in (*rows.values(), *kept.values())], index, counts

    async def _switch(self, marker: Mapping[str, Any] | None, generation: str,
                      value: str) -> str:
        """Make `generation` current: the version marker as read at the import's start,
        replaced conditionally on its ETag (one atomic write). Returns the new ETag."""
        entity = {"PartitionKey": META_PK, "RowKey": VERSION_RK, "value": value,
                  "table": generation}
        try:
            if marker is None:
                result = await self._t.meta.create_entity(entity)
            else:
                result = await self._t.meta.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=marker[wire.ETAG],
                    match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise errors.EmplyReplaced(
                "the Emply side was changed by another writer while the import was being "
                "written; nothing was imported (try again)") from exc
        self._t.tally.count(singles=1)
        self._t.tally.stats["marker_writes"] += 1
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
            marker = await codec.get_row(self._t.meta, META_PK, VERSION_RK)
            switched = marker is not None and marker.get("table") == generation
        if switched:
            return True
        if switched is False:
            for table in (self._t.data_table(generation), self._t.index_table(generation)):
                with contextlib.suppress(Exception):
                    await self._t.service.delete_table(table.table_name)
        if isinstance(exc, errors.OutcomeUnknown) and exc.__cause__ is not None:
            exc = exc.__cause__  # a lost answer in the new table: it is dropped anyway
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
            with contextlib.suppress(ResourceNotFoundError):  # (none before the index)
                await self._t.service.delete_table(self._t.index_table(generation).table_name)
            if generation is not None:
                await self._t.service.delete_table(self._t.data_table(generation).table_name)
                return
            # The first generation is the marker's own table: delete its Emply rows.
            rows = [row async for page in wire.query(
                self._t.meta, f"PartitionKey ne '{META_PK}'", select=["PartitionKey", "RowKey"])
                for row in page]
            await self._t.txn.submit_chunks(
                [("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}, {})
                 for r in rows], kind="entity", table=self._t.meta)
        except Exception as exc:
            _log.warning("emply_store.old_generation_not_removed", extra={
                "generation": generation or "(first)", "error": type(exc).__name__})

    async def remove_stale_generations(self) -> int:
        """Drop generation tables the marker does not name (left by an import that crashed
        before it switched). Only while holding the lease: an import under way elsewhere
        would lose its table. Returns how many were dropped."""
        await self._t.ensure()
        marker = await self._t.read_marker()
        current = marker.get("table") if marker else None
        base = self._t.meta.table_name
        stale = re.compile(re.escape(base) + r"(idx)?[0-9a-f]{32}")
        names = [t.name async for t in self._t.service.query_tables(
            f"TableName ge '{base}' and TableName lt '{base}~'")]
        dropped = 0
        for name in names:
            if stale.fullmatch(name) and name not in (base + str(current),
                                                      f"{base}idx{current}"):
                with contextlib.suppress(ResourceNotFoundError):
                    await self._t.service.delete_table(name)
                dropped += not name.startswith(f"{base}idx")  # generations, not tables
        return dropped

