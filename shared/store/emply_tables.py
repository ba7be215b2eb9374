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
without reading 100,000 entities. Whoever writes the kinds such a copy holds must go
through this module (or change the marker); a write that bypasses both is not seen
until the next import or sync write changes the marker. The mailbox pass's calendar
and event writes (`shared.store.mailbox_tables`) do bypass it: the copy the run keeps
(`load_emply(kinds=...)`) does not hold those kinds.

What one load read (ETags, the compact copy, the marker value) is kept in its
`AzureLedger`, carried by the `LoadedEmply` the load returns, never here: writes given
that value are conditional on its ETags (IfNotModified, `ConcurrentChangeError` when
someone else edited an entity meanwhile) and record what they wrote in its ledger.

Writes go in Table transactions of at most 100 operations of one partition
(Azurite answers garbage above that), several in flight at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from azure.data.tables.aio import TableClient, TableServiceClient

from shared.store import codec, emply_reads, errors, keys, unique_index, wire
from shared.store.codec import CODECS, META_PK, VERSION_RK, Operation
from shared.store.generations import AzureGenerations
from shared.store.indexed_users import IndexedUsers
from shared.store.ledger import AzureLedger, Known, from_cache, ledger_of
from shared.store.protocols import LoadedEmply
from shared.store.tally import Ensure, Tally
from shared.store.transactions import Transactions
from shared.store.version_marker import VersionMarker

_log = logging.getLogger("emply_sync.store")  # under the logger telemetry exports

ALL_KINDS: tuple[str, ...] = tuple(CODECS)


class AzureEmplyTables:
    """The Emply side in the generation tables named by the marker in table `emply`.

    Keeps only which generation is current (`emply`, followed from the marker); what a
    load read travels in its `LoadedEmply`."""

    def __init__(self, tables: TableServiceClient, meta: TableClient, *, ensure: Ensure,
                 tally: Tally, clock: codec.Clock = codec.utcnow) -> None:
        self.service = tables
        self.meta = meta
        """The table of the version marker, which names the current generation."""
        self.emply: TableClient = meta
        """The table of the current generation of the Emply side (see `follow`)."""
        self.unique: TableClient = self.index_table(None)
        """The current generation's uniqueness index (`shared.store.unique_index`): a
        table of its own, so the Emply table does not grow by it (Azurite's writes slow
        down with the size of their table)."""
        self.generation: str | None = None
        """The generation `emply` is (None: the marker's own table, the first one)."""
        self._resolved = False
        self.ensure = ensure
        self.tally = tally
        self._limit = asyncio.Semaphore(codec.CONCURRENCY)
        self.generations = AzureGenerations(self)
        self.marker = VersionMarker(self)
        self.txn = Transactions(lambda: self.emply, tally=tally, limit=self._limit)
        self.users = IndexedUsers(self)
        # Its own limit: a partition's write claims while it holds one of `_limit`'s.
        self.index = unique_index.UniqueIndex(
            lambda: self.unique, meta, lambda: self.generation, clock=clock, tally=tally,
            limit=asyncio.Semaphore(codec.CONCURRENCY),
            create=lambda: self.service.create_table_if_not_exists(self.unique.table_name),
            users=lambda: self.emply)

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
                         sparse: bool = False,
                         kinds: Collection[str] = ALL_KINDS) -> LoadedEmply:
        """The Emply side (its `kinds`; the others empty), normalised like
        `emply_doc.validate_document`, with the ETag of each entity in its ledger. With a
        `cache` (an earlier `LoadedEmply.cache()`) current by the version marker and
        holding these kinds, served from it instead: users then lack a non-empty
        `lastChange` and `history` (use `read_entities` for whole ones). With `sparse`,
        users and employees read from the table lack the fields they do not hold."""
        await self.ensure()
        # The marker first: a write that ends after this read changes it again. It also
        # names the generation (table) the Emply side is in now.
        marker = await self.read_marker()
        value = marker.get("value") if marker else None
        version = (str(value), marker[wire.ETAG]) if marker and value else None
        if (cache and version and cache.get("format") == codec.CACHE_FORMAT
                and cache.get("version") == version[0]):
            served = from_cache(cache, self.generation, version, kinds)
            if served is not None:
                return served
        ledger = AzureLedger(generation=self.generation, marker=version)
        doc = await self._read_document(ledger, sparse=sparse, kinds=kinds)
        known: Known = {}
        for kind in kinds:
            kc = CODECS[kind]
            items = doc[kind] if kind != "settings" else [doc["settings"]] * bool(doc[kind])
            known[kind] = {kc.row_key(item): kc.loaded(item) for item in items}
        ledger.known, ledger.pinned = known, True
        return LoadedEmply(doc=doc, served_from_cache=False, ledger=ledger)

    async def current_version(self) -> str | None:
        await self.ensure()
        marker = await codec.get_row(self.meta, META_PK, VERSION_RK)
        value = marker.get("value") if marker else None
        return str(value) if value else None

    async def scan(self, take: Callable[[str, str | None, dict[str, Any], bool], None]
                   ) -> str | None:
        """`protocols.EmplyTables.scan` (`shared.store.emply_reads`)."""
        return await emply_reads.scan(self, take)

    def write_unit(self, kind: str, entity_id: str) -> str:
        """`protocols.EmplyTables.write_unit`: the entity's partition."""
        kc = CODECS[kind]
        return kc.pk(kc.row_key({"id": entity_id}))

    async def loaded_from(self, version: str,
                          entries: Mapping[str, Iterable[tuple[str | None, dict[str, Any]]]],
                          *, whole: Collection[str] = ()) -> LoadedEmply:
        """`protocols.EmplyTables.loaded_from` (`shared.store.emply_reads`)."""
        return await emply_reads.loaded_from(self, version, entries, whole)

    async def read_entities(self, kind: str, ids: Iterable[str], *,
                            loaded: LoadedEmply | None = None,
                            skip_conflicts: bool = False) -> dict[str, dict[str, Any]]:
        """Whole entities of `kind` by id (missing ones left out), read from the table.

        Raises `ConcurrentChangeError` when one changed since `loaded` read it: its
        ETag is no longer the one recorded (the later write would fail anyway); with
        `skip_conflicts` that one is left out instead.
        """
        await self.resolve()
        etags = ledger_of(loaded).etags
        return await emply_reads.read_rows(self, kind, ids, etags, self._limit,
                                           skip_conflicts=skip_conflicts)

    async def _read_document(self, ledger: AzureLedger, *, sparse: bool = False,
                             kinds: Collection[str] = ALL_KINDS) -> dict[str, Any]:
        wanted = [k for k in ALL_KINDS if k in kinds]
        results = await asyncio.gather(*(
            self._read_kind(k, ledger, sparse=sparse and k in codec.BUCKETED)
            for k in wanted))
        doc: dict[str, Any] = {"settings": None, **{k: [] for k in codec.PARTITIONS}}
        for kind, items in zip(wanted, results, strict=True):
            if kind == "settings":
                doc["settings"] = items[0] if items else None
            else:
                doc[kind] = items
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
        """`protocols.EmplyGenerations.import_document` (`shared.store.generations`)."""
        return await self.generations.import_document(doc, replace=replace,
                                                      before_switch=before_switch)

    async def remove_stale_generations(self) -> int:
        return await self.generations.remove_stale_generations()

    # --- generations ---------------------------------------------------------

    def index_table(self, generation: str | None) -> TableClient:
        """The uniqueness index table of `generation` (None: the first one's)."""
        return self.service.get_table_client(f"{self.meta.table_name}idx{generation or ''}")

    def data_table(self, generation: str | None) -> TableClient:
        if generation is None:
            return self.meta
        return self.service.get_table_client(self.meta.table_name + generation)

    def follow(self, marker: Mapping[str, Any] | None) -> None:
        """Point `self.emply` at the generation the marker names (none: the marker's own
        table, as before generations existed)."""
        generation = marker.get("table") if marker else None
        if generation is not None and not codec.GENERATION.fullmatch(str(generation)):
            raise errors.StoreError(f"the Emply version marker names no generation table: "
                                    f"{generation!r}")
        if not self._resolved or generation != self.generation:
            self.emply = self.data_table(generation)
            self.unique = self.index_table(generation)
            self.generation = generation
        self._resolved = True

    async def read_marker(self) -> dict[str, Any] | None:
        marker = await codec.get_row(self.meta, META_PK, VERSION_RK)
        self.follow(marker)
        return marker

    async def resolve(self) -> None:
        """Find the current generation once, for a store that has not read the marker."""
        await self.ensure()
        if not self._resolved:
            await self.read_marker()

    # --- entity writes -------------------------------------------------------

    async def write_entities(self, kind: str, items: Sequence[Mapping[str, Any]], *,
                             loaded: LoadedEmply | None = None) -> None:
        """Write whole entities of a section; ETag-guarded for those `loaded` read."""
        await self.write(kind, items, ledger_of(loaded))

    async def delete_entities(self, kind: str, items: Iterable[Mapping[str, Any]], *,
                              loaded: LoadedEmply | None = None) -> None:
        """Delete entities of `kind` (each given by its key fields); missing ones are fine.
        A deleted user's usernames and Entra id are released."""
        ledger = ledger_of(loaded)
        kc = CODECS[kind]
        items = list(items)
        held = [] if kind != "users" else unique_index.claims_of(
            user for user in (await self.users.previous(items, ledger)).values() if user)
        row_keys = [kc.row_key(i) for i in items]
        ops: list[Operation] = [
            ("delete", {"PartitionKey": kc.pk(rk), "RowKey": rk}, {}) for rk in row_keys
        ]
        await self._submit_all(ops, kind=kind, ledger=ledger)
        await self.users.release(held)
        for _op, row, _kw in ops:
            ledger.etags.pop((row["PartitionKey"], row["RowKey"]), None)
            if ledger.known is not None and kind in ledger.known:
                ledger.known[kind].pop(row["RowKey"], None)

    async def write(self, kind: str, items: Sequence[Mapping[str, Any]],
                    ledger: AzureLedger, *, create: bool = False) -> None:
        """Write whole entities, conditional on the ETags in `ledger`, recording them there;
        users' unique values claimed first (`shared.store.unique_index`: `UniqueTaken`,
        nothing written). With `create`, none may exist yet (`ConcurrentChangeError`)."""
        if not items:
            return
        await self.ensure()
        kc = CODECS[kind]
        ops = [self.txn.operation(kc.to_row(item), ledger) for item in items]
        if create:
            ops = [("insert", row, {}) for _op, row, _kw in ops]
        claimed = await self.users.claim(kind, items, ledger)
        if claimed.refused:
            raise unique_index.taken(claimed.refused)
        try:
            await self._submit_all(ops, kind=kind, ledger=ledger)
        except BaseException:
            await self.users.release(claimed.gained)
            raise
        await self.users.release(claimed.freed)
        if ledger.known is not None and kind in ledger.known:  # a kind the copy holds
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
        a few thousand entities, not all of them (users are built twice: a first pass
        claims the values they gain, `shared.store.unique_index`). Transactions per
        partition;
        ETag-guarded for the entities `loaded` read. `build` must give entities whose
        fields are the kind's (an unknown field is a bug: ValueError).

        With `skip_conflicts`, an entity changed by someone else since it was loaded, or a
        user whose username or Entra id another user holds (`shared.store.unique_index`),
        is left out (and the rest of its transaction sent again) instead of raising
        `ConcurrentChangeError` (`UniqueTaken`); returns the ids left out.
        """
        kc = CODECS[kind]
        if kind not in codec.BUCKETED:
            raise ValueError(f"write_built takes users or employees, not {kind}")
        ledger = ledger_of(loaded)
        by_partition: dict[str, list[str]] = {}
        for entity_id in ids:
            by_partition.setdefault(kc.pk(keys.encode_key(entity_id)), []).append(entity_id)
        if not by_partition:
            return []
        await self.ensure()
        # Users: every value they gain claimed first, a pass over all of them, so the
        # claims fill whole transactions (`unique_index.ClaimStream`).
        refused = await self.users.claim_built(kind, by_partition, build, ledger)
        if refused and not skip_conflicts:
            await self.users.release_built(by_partition, build, ledger)
            raise unique_index.taken(refused)
        skipped: list[str] = []
        await self.marker.bump(ledger)
        try:
            for left_out in await asyncio.gather(*(
                    self._write_partition(kind, group, build, ledger, refused=refused,
                                          skip_conflicts=skip_conflicts)
                    for group in by_partition.values())):
                skipped += left_out
        except BaseException:
            ledger.marker_ours = False  # some partitions may be written: no copy is right
            raise
        finally:
            await self.marker.bump(ledger, after_write=True)
        if skipped:
            ledger.marker_ours = False  # someone else wrote: no cached copy is right
        return skipped

    async def _write_partition(self, kind: str, entity_ids: list[str],
                               build: Callable[[str], Mapping[str, Any]],
                               ledger: AzureLedger, *, refused: Mapping[str, str],
                               skip_conflicts: bool) -> list[str]:
        """One partition of `write_built`: built, written (the `refused` users left out),
        the index settled; returns the ids left out."""
        kc = CODECS[kind]
        async with self._limit:
            built = [build(i) for i in entity_ids]
            previous = await self.users.previous(built, ledger) if kind == "users" else {}
            items = [item for item in built if item.get("id") not in refused]
            left_out = {str(i) for i in entity_ids} - {str(item.get("id")) for item in items}
            ops = [self.txn.operation(kc.to_row(item), ledger) for item in items]
            try:
                for chunk in codec.chunks(ops):
                    if skip_conflicts:
                        left_out.update(await self.txn.send_or_skip(chunk, kind, ledger))
                    else:
                        await self.txn.send(chunk, kind, ledger)
            except BaseException:
                # Which were written is not known: release checks each claim against
                # what its owner holds now.
                await self.users.settle(kind, built, previous, None)
                raise
            await self.users.settle(kind, built, previous, left_out)
        if ledger.known is not None and kind in ledger.known:
            known = ledger.known[kind]
            for item, (_op, row, _kw) in zip(items, ops, strict=True):
                if item.get("id") not in left_out:
                    known[row["RowKey"]] = kc.cache_row(item)
        return [i for i in entity_ids if i in left_out]

    async def _submit_all(self, ops: list[Operation], *, kind: str,
                          ledger: AzureLedger) -> None:
        if not ops:
            return
        await self.marker.bump(ledger)
        try:
            await self.txn.submit_chunks(ops, kind=kind, ledger=ledger)
        except BaseException:
            ledger.marker_ours = False  # some chunks may be written: no cached copy is right
            raise
        finally:
            # Again after the writes: a copy read while they were under way is stale.
            await self.marker.bump(ledger, after_write=True)
