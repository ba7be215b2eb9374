"""The Emply side in Table Storage: `protocols.EmplyTables` and `protocols.EmplyGenerations`.

Generations (which table holds the Emply side now, and imports) are
`shared.store.emply_generations`; a load's ledger and compact copy are
`shared.store.emply_ledger`; the calendars and events the mailbox pass reads and
writes a range of users at a time are `shared.store.mailbox_tables`.

The Emply version marker (entity `meta`/`version` of table `emply`) gets a new
random value before and after every Emply write made here, so a copy of the Emply
side tagged with the marker value it was read under (`LoadedEmply.cache()`) is current
exactly while the marker still has that value: `load_emply(cache=...)` then serves it
without reading 100,000 entities. Whoever writes the kinds such a copy holds must go
through this module (or change the marker); a write that bypasses both is not seen
until the next import or sync write changes the marker. The mailbox pass's calendar
and event writes do bypass it: the copy the run keeps (`load_emply(kinds=...)`) does
not hold those kinds.

What one load read (ETags, the compact copy, the marker value) is kept in its
`AzureLedger`, carried by the `LoadedEmply` the load returns, never here: writes given
that value are conditional on its ETags (IfNotModified, `ConcurrentChangeError` when
someone else edited an entity meanwhile) and record what they wrote in its ledger.

Writes go in Table transactions of at most 100 operations of one partition
(Azurite answers garbage above that), several in flight at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from shared.store import codec, errors, keys, wire
from shared.store.codec import CODECS, META_PK, VERSION_RK, Operation
from shared.store.emply_generations import GenerationTables
from shared.store.emply_ledger import AzureLedger, Known, from_cache, ledger_of
from shared.store.protocols import LoadedEmply

ALL_KINDS: tuple[str, ...] = tuple(CODECS)


class AzureEmplyTables(GenerationTables):
    """The Emply side in the generation tables named by the marker in table `emply`.

    Keeps only which generation is current (`emply`, followed from the marker); what a
    load read travels in its `LoadedEmply`."""

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
        `cache` (an earlier `LoadedEmply.cache()`) still current by the version marker
        and holding these kinds, served from it instead: users then lack a non-empty
        `lastChange` and `history` (use `read_entities` for whole ones). With `sparse`,
        users and employees read from the table lack the fields they do not hold (read
        them with `.get`)."""
        await self._ensure()
        # The marker first: a write that ends after this read changes it again. It also
        # names the generation (table) the Emply side is in now.
        marker = await self._read_marker()
        value = marker.get("value") if marker else None
        version = (str(value), marker[wire.ETAG]) if marker and value else None
        if (cache and version and cache.get("format") == codec.CACHE_FORMAT
                and cache.get("version") == version[0]):
            served = from_cache(cache, self._generation, version, kinds)
            if served is not None:
                return served
        ledger = AzureLedger(generation=self._generation, marker=version)
        doc = await self._read_document(ledger, sparse=sparse, kinds=kinds)
        known: Known = {}
        for kind in kinds:
            kc = CODECS[kind]
            items = doc[kind] if kind != "settings" else [doc["settings"]] * bool(doc[kind])
            known[kind] = {kc.row_key(item): kc.loaded(item) for item in items}
        ledger.known, ledger.pinned = known, True
        return LoadedEmply(doc=doc, served_from_cache=False, ledger=ledger)

    async def current_version(self) -> str | None:
        await self._ensure()
        marker = await codec.get_row(self._meta, META_PK, VERSION_RK)
        value = marker.get("value") if marker else None
        return str(value) if value else None

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
        kc = CODECS[kind]
        # Point reads, 8 at a time: the cheapest Table operation, and on Azurite a query
        # (even "PartitionKey eq .. and (RowKey eq .. or ..)") scans the whole table —
        # measured: 1% churn at 100,000 users 12.0 s with such queries, 10 s with these.
        wanted = list(dict.fromkeys(ids))

        async def one(entity_id: str) -> dict[str, Any] | None:
            rk = kc.row_key({"id": entity_id})
            pk = kc.pk(rk)
            async with self._limit:
                row = await wire.get(self.emply, pk, rk)
            known = etags.get((pk, rk))
            if known is not None and (row is None or row[wire.ETAG] != known):
                if skip_conflicts:
                    return None
                raise errors.ConcurrentChangeError(kind, entity_id)
            return None if row is None else kc.from_row(row)

        found = await asyncio.gather(*(one(i) for i in wanted))
        return {i: item for i, item in zip(wanted, found, strict=True) if item is not None}

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

    # --- entity writes -------------------------------------------------------

    async def write_entities(self, kind: str, items: Sequence[Mapping[str, Any]], *,
                             loaded: LoadedEmply | None = None) -> None:
        """Write whole entities of a section; ETag-guarded for those `loaded` read."""
        await self.write(kind, items, ledger_of(loaded))

    async def delete_entities(self, kind: str, items: Iterable[Mapping[str, Any]], *,
                              loaded: LoadedEmply | None = None) -> None:
        """Delete entities of `kind` (each given by its key fields); missing ones are fine."""
        ledger = ledger_of(loaded)
        kc = CODECS[kind]
        row_keys = [kc.row_key(i) for i in items]
        ops: list[Operation] = [
            ("delete", {"PartitionKey": kc.pk(rk), "RowKey": rk}, {}) for rk in row_keys
        ]
        await self._submit_all(ops, kind=kind, ledger=ledger)
        for _op, row, _kw in ops:
            ledger.etags.pop((row["PartitionKey"], row["RowKey"]), None)
            if ledger.known is not None and kind in ledger.known:
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
        ledger = ledger_of(loaded)
        by_partition: dict[str, list[str]] = {}
        for entity_id in ids:
            by_partition.setdefault(kc.pk(keys.encode_key(entity_id)), []).append(entity_id)
        if not by_partition:
            return []
        await self._ensure()
        known = ledger.known.get(kind) if ledger.known is not None else None
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

    @staticmethod
    def _operation(row: dict[str, Any], ledger: AzureLedger) -> Operation:
        """Replace the entity: conditional on its ETag when `ledger` has it."""
        etag = ledger.etags.get((row["PartitionKey"], row["RowKey"]))
        return ("upsert", row, {}) if etag is None else ("update", row, {"etag": etag})

