"""The Emply side in Table Storage: `protocols.EmplyTables` and `protocols.EmplyGenerations`.

Generations: an import writes the whole new Emply side into a table of its own and
makes it current with one conditional write of the version marker, whose `table`
property names the generation (`import_document`); readers and writers follow the
marker (`_follow`), so a failed or killed import leaves the previous generation
current and whole, and the previous table is dropped after a switch.

The Emply version marker (entity `meta`/`version` of table `emply`) gets a new
random value before and after every Emply write made here, so a copy of the Emply
side tagged with the marker value it was read under (`LoadedEmply.cache()`) is current
exactly while the marker still has that value: `load_emply(cache=...)` then serves it
without reading 100,000 entities. Whoever writes the Emply side must go through this
module (or change the marker); a write that bypasses both is not seen until the next
import or sync write changes the marker.

What one load read (ETags, the compact copy, the marker value) is kept in its
`AzureLedger`, carried by the `LoadedEmply` the load returns, never here: writes given
that value are conditional on its ETags (IfNotModified, `ConcurrentChangeError` when
someone else edited an entity meanwhile) and record what they wrote in its ledger.

Writes go in Table transactions of at most 100 operations of one partition
(Azurite answers garbage above that), several in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
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
from shared.store import codec, columns, errors, keys, wire
from shared.store.codec import CODECS, META_PK, VERSION_RK, Operation
from shared.store.protocols import LoadedEmply
from shared.store.tally import Ensure, Tally

_log = logging.getLogger("emply_sync.store")  # under the logger telemetry exports

Known = dict[str, dict[str, dict[str, Any] | list[Any]]]
"""kind -> row key -> compact item: the Emply side as a load and its writes know it."""


class AzureLedger:
    """What one load read and the writes made with it since (`protocols.Ledger`)."""

    __slots__ = ("etags", "generation", "known", "marker", "marker_ours", "partial", "pinned")

    def __init__(self, *, generation: str | None = None,
                 marker: tuple[str, str] | None = None,
                 etags: dict[tuple[str, str], str] | None = None,
                 known: Known | None = None, partial: bool = False) -> None:
        self.partial = partial
        """It knows only some entities (`loaded_from`): it makes no cached copy."""
        self.generation = generation
        """The generation (table) the load read, as the marker named it."""
        self.pinned = marker is not None or known is not None
        """Whether `generation` is set: by the load, or for a ledger made without one by
        its first write (a write that finds another generation current then refuses)."""
        self.etags: dict[tuple[str, str], str] = etags if etags is not None else {}
        """(PartitionKey, RowKey) -> ETag of the entities read or written."""
        self.known = known
        self.marker = marker
        """The version marker (value, ETag) as last read or written with this ledger."""
        self.marker_ours = marker is not None
        """Whether the marker moved only by writes made with this ledger since the load."""

    def version(self) -> str | None:
        return self.marker[0] if self.marker is not None and self.marker_ours else None

    def cache(self) -> dict[str, Any] | None:
        """A compact copy of the Emply side as loaded plus the writes since, tagged with
        the version marker; None when another writer moved the marker (or nothing was
        loaded). Plain JSON in columns (`shared.store.columns`), for `save_snapshot`."""
        if (self.known is None or not self.marker_ours or self.marker is None
                or self.partial):
            return None
        kinds: dict[str, Any] = {}
        located: dict[str, dict[str, tuple[str, str]]] = {kind: {} for kind in self.known}
        for (pk, rk), tag in self.etags.items():
            kind = codec.PARTITION_KINDS.get(pk) or codec.PARTITION_KINDS.get(
                pk.rpartition("-")[0])
            if kind in located:
                located[kind][rk] = (pk, tag)
        for kind, items in self.known.items():
            kc = CODECS[kind]
            fields = kc.cache_fields
            keys_ = sorted(items)  # by RowKey, the order `query` gives
            where = located[kind]
            kinds[kind] = {
                "keys": keys_,
                "etags": columns.pack_rows(
                    (where.get(k, (kc.pk(k), None)) for k in keys_), ("pk", "etag")),
                "items": columns.pack_rows(
                    (codec.cache_values(items[k], fields) for k in keys_), fields),
            }
        return {"format": codec.CACHE_FORMAT, "version": self.marker[0], "kinds": kinds}

    def entries(self, kind: str, ids: Iterable[str] | None = None
                ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """`protocols.Ledger.entries`."""
        items = (self.known or {}).get(kind) or {}
        kc = CODECS[kind]
        row_keys: Iterable[str] = items if ids is None else (
            keys.encode_key(i) for i in ids)
        for rk in row_keys:
            item = items.get(rk)
            if item is None:
                continue
            etag = self.etags.get((kc.pk(rk), rk))
            if isinstance(item, list):
                item = {f: v for f, v in zip(kc.cache_fields, item, strict=True)
                        if v is not None}
            yield etag, item


def _ledger_of(loaded: LoadedEmply | None) -> AzureLedger:
    """The Azure ledger of `loaded`; a fresh one (no load: writes unguarded) for None."""
    if loaded is None:
        return AzureLedger()
    if not isinstance(loaded.ledger, AzureLedger):
        raise TypeError("this LoadedEmply was not loaded from Table Storage")
    return loaded.ledger


class AzureEmplyTables:
    """The Emply side in the generation tables named by the marker in table `emply`.

    Keeps only which generation is current (`emply`, followed from the marker); what a
    load read travels in its `LoadedEmply`."""

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

    # --- reads ---------------------------------------------------------------

    async def query(self, kind: str, select: list[str] | None = None) -> list[dict[str, Any]]:
        """Every row of `kind` (all its buckets), ordered by RowKey as one partition's
        rows would be."""
        await self.resolve()
        kc = CODECS[kind]
        rows: list[dict[str, Any]] = []
        async for page in wire.query(self.emply, kc.filter, select=select):
            rows.extend(page)
        if kc.bucketed and (select is None or "RowKey" in select):
            rows.sort(key=lambda row: row["RowKey"])
        return rows

    async def load_emply(self, cache: Mapping[str, Any] | None = None, *,
                         sparse: bool = False) -> LoadedEmply:
        """The whole Emply side, normalised like `emply_doc.validate_document`, with the
        ETag of each entity in its ledger. With a `cache` (an earlier
        `LoadedEmply.cache()`) still current by the version marker, served from it instead:
        users then lack a non-empty `lastChange` and `history` (use `read_entities` for
        whole ones). With `sparse`, users and employees read from the table lack the
        fields they do not hold (read them with `.get`)."""
        await self._ensure()
        # The marker first: a write that ends after this read changes it again. It also
        # names the generation (table) the Emply side is in now.
        marker = await self._read_marker()
        value = marker.get("value") if marker else None
        version = (str(value), marker[wire.ETAG]) if marker and value else None
        if (cache and version and cache.get("format") == codec.CACHE_FORMAT
                and cache.get("version") == version[0]):
            served = _from_cache(cache, self._generation, version)
            if served is not None:
                return served
        ledger = AzureLedger(generation=self._generation, marker=version)
        doc = await self._read_document(ledger, sparse=sparse)
        known: Known = {}
        for kind, kc in CODECS.items():
            items = doc[kind] if kind != "settings" else [doc["settings"]] * bool(doc[kind])
            known[kind] = {kc.row_key(item): kc.loaded(item) for item in items}
        ledger.known, ledger.pinned = known, True
        return LoadedEmply(doc=doc, served_from_cache=False, ledger=ledger)

    async def current_version(self) -> str | None:
        await self._ensure()
        marker = await codec.get_row(self._meta, META_PK, VERSION_RK)
        value = marker.get("value") if marker else None
        return str(value) if value else None

    async def scan(self, take: Callable[[str, str | None, dict[str, Any]], None]
                   ) -> str | None:
        """`protocols.EmplyTables.scan`: one range query per kind, a page at a time."""
        await self._ensure()
        marker = await self._read_marker()
        value = marker.get("value") if marker else None
        for kind, kc in CODECS.items():
            heavy = codec.HEAVY_FIELDS.get(kind, frozenset())
            async for page in wire.query(self.emply, kc.filter):
                for row in page:
                    item = kc.from_row(row, sparse=kind in codec.BUCKETED)
                    for name in heavy:
                        item.pop(name, None)
                    take(kind, row[wire.ETAG], item)
        return str(value) if value else None

    def write_unit(self, kind: str, entity_id: str) -> str:
        """`protocols.EmplyTables.write_unit`: the entity's partition."""
        kc = CODECS[kind]
        return kc.pk(kc.row_key({"id": entity_id}))

    async def loaded_from(self, version: str,
                          entries: Mapping[str, Iterable[tuple[str | None, dict[str, Any]]]]
                          ) -> LoadedEmply:
        """`protocols.EmplyTables.loaded_from`: one read of the marker."""
        await self._ensure()
        marker = await self._read_marker()
        ledger = AzureLedger(generation=self._generation,
                             marker=(version, marker[wire.ETAG]) if marker else None,
                             known={kind: {} for kind in CODECS}, partial=True)
        ledger.pinned = True
        if not marker or str(marker.get("value")) != version:
            ledger.marker_ours = False  # another writer since: conflicts are found per entity
        doc: dict[str, Any] = {"settings": None, **{kind: [] for kind in codec.PARTITIONS}}
        assert ledger.known is not None
        for kind, found in entries.items():
            kc = CODECS[kind]
            for etag, item in found:
                rk = kc.row_key(item)
                if etag:
                    ledger.etags[(kc.pk(rk), rk)] = etag
                ledger.known[kind][rk] = item
                if kind == "settings":
                    doc["settings"] = item
                else:
                    doc[kind].append(item)
        return LoadedEmply(doc=doc, served_from_cache=True, ledger=ledger)

    async def read_entities(self, kind: str, ids: Iterable[str], *,
                            loaded: LoadedEmply | None = None,
                            skip_conflicts: bool = False) -> dict[str, dict[str, Any]]:
        """Whole entities of `kind` by id (missing ones left out), read from the table.

        Raises `ConcurrentChangeError` when one changed since `loaded` read it: its
        ETag is no longer the one recorded (the later write would fail anyway); with
        `skip_conflicts` that one is left out instead.
        """
        await self.resolve()
        etags = _ledger_of(loaded).etags
        kc = CODECS[kind]
        # One request per partition: a point read for one entity, else a query naming
        # the partition's row keys (a Table request costs about a millisecond of CPU
        # whatever it carries; on Azurite such a query scans the table, so wall time
        # rises with its size while CPU falls with the request count).
        by_partition: dict[str, list[tuple[str, str]]] = {}
        for entity_id in dict.fromkeys(ids):
            rk = kc.row_key({"id": entity_id})
            by_partition.setdefault(kc.pk(rk), []).append((entity_id, rk))
        rows: dict[str, dict[str, Any] | None] = {}

        async def partition(pk: str, wanted: list[tuple[str, str]]) -> None:
            async with self._limit:
                if len(wanted) == 1:
                    found = [row] if (row := await wire.get(self.emply, pk, wanted[0][1])) else []
                else:
                    found = []
                    async for page in wire.query(self.emply, _rows_filter(pk, wanted)):
                        found.extend(page)
            by_key = {row["RowKey"]: row for row in found}
            for entity_id, rk in wanted:
                rows[entity_id] = by_key.get(rk)

        await asyncio.gather(*(partition(pk, chunk) for pk, wanted in by_partition.items()
                               for chunk in _chunked(wanted, _ROWS_PER_QUERY)))
        out: dict[str, dict[str, Any]] = {}
        for entity_id, row in rows.items():
            rk = kc.row_key({"id": entity_id})
            known = etags.get((kc.pk(rk), rk))
            if known is not None and (row is None or row[wire.ETAG] != known):
                if skip_conflicts:
                    continue
                raise errors.ConcurrentChangeError(kind, entity_id)
            if row is not None:
                out[entity_id] = kc.from_row(row)
        return out

    async def _read_document(self, ledger: AzureLedger, *,
                             sparse: bool = False) -> dict[str, Any]:
        kinds = list(codec.PARTITIONS)
        results = await asyncio.gather(*(
            self._read_kind(k, ledger, sparse=sparse and k in codec.BUCKETED)
            for k in ("settings", *kinds)))
        doc: dict[str, Any] = {"settings": results[0][0] if results[0] else None}
        doc.update(zip(kinds, results[1:], strict=True))
        return doc

    async def _read_kind(self, kind: str, ledger: AzureLedger, *,
                         sparse: bool = False) -> list[dict[str, Any]]:
        """Every entity of `kind` in RowKey order, converted a page at a time (the raw
        rows of 100,000 users are never all held at once); ETags recorded in `ledger`."""
        kc = CODECS[kind]
        etags = ledger.etags
        keyed: list[tuple[str, dict[str, Any]]] = []
        async for page in wire.query(self.emply, kc.filter):
            for row in page:
                etags[(row["PartitionKey"], row["RowKey"])] = row[wire.ETAG]
                keyed.append((row["RowKey"], kc.from_row(row, sparse=sparse)))
        if kc.bucketed:
            keyed.sort(key=lambda pair: pair[0])
        return [item for _rk, item in keyed]

    # --- the whole side: export, import, stale generations ------------------

    async def export_document(self) -> dict[str, Any]:
        """What `emply-sync emply export` prints (import --replace takes it back)."""
        return (await self.load_emply()).doc

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

    # --- entity writes -------------------------------------------------------

    async def write_entities(self, kind: str, items: Sequence[Mapping[str, Any]], *,
                             loaded: LoadedEmply | None = None) -> None:
        """Write whole entities of a section; ETag-guarded for those `loaded` read."""
        await self.write(kind, items, _ledger_of(loaded))

    async def delete_entities(self, kind: str, items: Iterable[Mapping[str, Any]], *,
                              loaded: LoadedEmply | None = None) -> None:
        """Delete entities of `kind` (each given by its key fields); missing ones are fine."""
        ledger = _ledger_of(loaded)
        kc = CODECS[kind]
        row_keys = [kc.row_key(i) for i in items]
        ops: list[Operation] = [
            ("delete", {"PartitionKey": kc.pk(rk), "RowKey": rk}, {}) for rk in row_keys
        ]
        await self._submit_all(ops, kind=kind, ledger=ledger)
        for _op, row, _kw in ops:
            ledger.etags.pop((row["PartitionKey"], row["RowKey"]), None)
            if ledger.known is not None:
                ledger.known[kind].pop(row["RowKey"], None)

    async def write(self, kind: str, items: Sequence[Mapping[str, Any]],
                    ledger: AzureLedger) -> None:
        """Write whole entities, conditional on the ETags in `ledger`, recording them there."""
        if not items:
            return
        await self._ensure()
        kc = CODECS[kind]
        ops = [self._operation(kc.to_row(item), ledger) for item in items]
        await self._submit_all(ops, kind=kind, ledger=ledger)
        if ledger.known is not None:
            known = ledger.known[kind]
            for item, (_op, row, _kw) in zip(items, ops, strict=True):
                known[row["RowKey"]] = kc.cache_row(item)

    async def write_built(self, kind: str, ids: Iterable[str],
                          build: Callable[[str], Mapping[str, Any]], *,
                          loaded: LoadedEmply | None = None,
                          skip_conflicts: bool = False) -> list[str]:
        """Write the entities of a one-key kind ("users", "employees") with these ids,
        each made by `build(id)` just before its partition is written.

        Only the partitions in flight are ever built, so a write of 100,000 users holds
        a few thousand entities, not all of them. Transactions per partition;
        ETag-guarded for the entities `loaded` read. `build` must give entities whose
        fields are the kind's (an unknown field is a bug: ValueError).

        With `skip_conflicts`, an entity changed by someone else since it was loaded is
        left out (and the rest of its transaction sent again) instead of raising
        `ConcurrentChangeError`; returns the ids left out.
        """
        kc = CODECS[kind]
        if kind not in codec.BUCKETED:
            raise ValueError(f"write_built takes users or employees, not {kind}")
        ledger = _ledger_of(loaded)
        by_partition: dict[str, list[str]] = {}
        for entity_id in ids:
            by_partition.setdefault(kc.pk(keys.encode_key(entity_id)), []).append(entity_id)
        if not by_partition:
            return []
        await self._ensure()
        known = ledger.known[kind] if ledger.known is not None else None
        skipped: list[str] = []

        async def partition(entity_ids: list[str]) -> None:
            left_out: set[str] = set()
            async with self._limit:
                items = [build(i) for i in entity_ids]
                ops = [self._operation(kc.to_row(item), ledger) for item in items]
                for chunk in codec.chunks(ops):
                    if skip_conflicts:
                        left_out.update(await self._send_or_skip(chunk, kind, ledger))
                    else:
                        await self._send(chunk, kind, ledger)
            skipped.extend(i for i in entity_ids if i in left_out)
            if known is not None:
                for item, (_op, row, _kw) in zip(items, ops, strict=True):
                    if item.get("id") not in left_out:
                        known[row["RowKey"]] = kc.cache_row(item)

        await self._bump_version(ledger)
        try:
            await asyncio.gather(*(partition(group) for group in by_partition.values()))
        except BaseException:
            ledger.marker_ours = False  # some partitions may be written: no copy is right
            raise
        finally:
            await self._bump_version(ledger)
        if skipped:
            ledger.marker_ours = False  # someone else wrote: no cached copy is right
        return skipped

    async def _send_or_skip(self, chunk: list[Operation], kind: str,
                            ledger: AzureLedger) -> list[str]:
        """Send one transaction; the conditional writes whose entity changed since it was
        loaded are left out and the rest sent again (a transaction fails as a whole).
        Returns the ids of the entities left out."""
        left_out: list[str] = []
        while chunk:
            try:
                await self._send(chunk, kind, ledger)
                break
            except errors.ConcurrentChangeError:
                stale = await self._stale(chunk)
                if not stale:
                    raise
                left_out += [str(chunk[i][1].get("id")) for i in stale]
                chunk = [op for i, op in enumerate(chunk) if i not in stale]
        return left_out

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

    async def _bump_version(self, ledger: AzureLedger) -> None:
        """Give the Emply version marker a new value (see the module docstring), keeping
        the generation it names. Raises `EmplyReplaced` when an import switched the
        generation since `ledger`'s load."""
        value = uuid.uuid4().hex
        result: Mapping[str, Any] | None = None
        if ledger.marker is not None and ledger.marker_ours:
            try:
                result = await self._meta.update_entity(
                    self._marker(value), mode=UpdateMode.REPLACE, etag=ledger.marker[1],
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                result = None
            except HttpResponseError as exc:
                if exc.status_code not in (404, 412):
                    raise
        if result is None:
            ledger.marker_ours = False
            result = await self._bump_other(value, ledger)
        self._tally.count(singles=1)  # a transaction, counted apart from the Emply entities
        self._tally.stats["marker_writes"] += 1
        ledger.marker = (value, result["etag"])

    async def _bump_other(self, value: str, ledger: AzureLedger) -> Mapping[str, Any]:
        """The marker moved by someone else: read it (which generation is current), then
        replace it conditionally, so an import's switch is never overwritten."""
        for _attempt in range(10):
            marker = await codec.get_row(self._meta, META_PK, VERSION_RK)
            generation = marker.get("table") if marker else None
            if ledger.pinned and generation != ledger.generation:
                raise errors.EmplyReplaced(
                    "the Emply side was replaced by an import since it was loaded; "
                    "load it again")
            self._follow(marker)
            ledger.generation, ledger.pinned = self._generation, True
            try:
                if marker is None:
                    return await self._meta.create_entity(self._marker(value))
                return await self._meta.update_entity(
                    self._marker(value), mode=UpdateMode.REPLACE, etag=marker[wire.ETAG],
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue
        raise errors.StoreError("could not update the Emply version marker after 10 attempts")

    async def _submit_all(self, ops: list[Operation], *, kind: str,
                          ledger: AzureLedger) -> None:
        if not ops:
            return
        await self._bump_version(ledger)
        try:
            await self._submit_chunks(ops, kind=kind, ledger=ledger)
        except BaseException:
            ledger.marker_ours = False  # some chunks may be written: no cached copy is right
            raise
        finally:
            # Again after the writes: a copy read while they were under way is stale.
            await self._bump_version(ledger)

    async def _submit_chunks(self, ops: list[Operation], *, kind: str,
                             ledger: AzureLedger | None = None,
                             table: TableClient | None = None) -> None:
        by_partition: dict[str, list[Operation]] = {}
        for op in ops:
            by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
        chunks = [chunk for part in by_partition.values() for chunk in codec.chunks(part)]
        await asyncio.gather(*(self._submit(chunk, kind, ledger, table) for chunk in chunks))

    @staticmethod
    def _operation(row: dict[str, Any], ledger: AzureLedger) -> Operation:
        """Replace the entity: conditional on its ETag when `ledger` has it."""
        etag = ledger.etags.get((row["PartitionKey"], row["RowKey"]))
        return ("upsert", row, {}) if etag is None else ("update", row, {"etag": etag})

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


def _from_cache(cache: Mapping[str, Any], generation: str | None,
                marker: tuple[str, str]) -> LoadedEmply | None:
    """The Emply side from a `LoadedEmply.cache()`; None when the cache is malformed."""
    known: Known = {}
    etags: dict[tuple[str, str], str] = {}
    doc: dict[str, Any] = {"settings": None}
    try:
        for kind in CODECS:
            part = cache["kinds"].get(kind)
            if part is None:
                known[kind], items = {}, []
            else:
                keys_ = part["keys"]
                items = columns.unpack_records(part["items"], f"emply cache {kind}")
                tags = columns.unpack_rows(part["etags"], ("pk", "etag"),
                                           f"emply cache {kind}")
                if not (isinstance(keys_, list) and len(keys_) == len(items) == len(tags)):
                    raise ValueError(f"emply cache {kind}: keys, etags and items differ")
                etags.update(((pk, rk), tag)
                             for rk, (pk, tag) in zip(keys_, tags, strict=True) if tag)
                known[kind] = dict(zip(keys_, items, strict=True))
            if kind == "settings":
                doc["settings"] = items[0] if items else None
            else:
                doc[kind] = items
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    ledger = AzureLedger(generation=generation, marker=marker, etags=etags, known=known)
    return LoadedEmply(doc=doc, served_from_cache=True, ledger=ledger)


_ROWS_PER_QUERY = 40
"""Row keys named in one query (its URL stays a few kilobytes)."""


def _chunked(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _rows_filter(pk: str, wanted: list[tuple[str, str]]) -> str:
    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    keys = " or ".join(f"RowKey eq {quoted(rk)}" for _id, rk in wanted)
    return f"PartitionKey eq {quoted(pk)} and ({keys})"
