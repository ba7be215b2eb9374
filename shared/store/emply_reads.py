"""Reads of the Emply side for a run that keeps its own index of it
(`shared.run.emply_index`): the whole side a page at a time (`scan`), a load made of
entities the index already holds (`loaded_from`), and whole entities by id with one
request per partition (`read_rows`). `AzureEmplyTables` delegates to these."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shared.store import codec, errors, wire
from shared.store.codec import CODECS
from shared.store.ledger import AzureLedger
from shared.store.protocols import LoadedEmply

if TYPE_CHECKING:
    from shared.store.emply_tables import AzureEmplyTables

ROWS_PER_QUERY = 40
"""Row keys named in one query (its URL stays a few kilobytes)."""


async def scan(tables: AzureEmplyTables,
               take: Callable[[str, str | None, dict[str, Any], bool], None]) -> str | None:
    """`protocols.EmplyTables.scan`: one range query per kind, a page at a time."""
    await tables.ensure()
    marker = await tables.read_marker()
    value = marker.get("value") if marker else None
    for kind, kc in CODECS.items():
        heavy = codec.HEAVY_FIELDS.get(kind, frozenset())
        async for page in wire.query(tables.emply, kc.filter):
            for row in page:
                item = kc.from_row(row, sparse=kind in codec.BUCKETED)
                whole = True
                for name in heavy:
                    whole = not item.pop(name, None) and whole
                take(kind, row[wire.ETAG], item, whole)
    return str(value) if value else None


async def loaded_from(tables: AzureEmplyTables, version: str,
                      entries: Mapping[str, Iterable[tuple[str | None, dict[str, Any]]]],
                      whole: Collection[str] = ()) -> LoadedEmply:
    """`protocols.EmplyTables.loaded_from`: one read of the marker."""
    await tables.ensure()
    marker = await tables.read_marker()
    known: dict[str, dict[str, dict[str, Any] | list[Any]]] = {kind: {} for kind in CODECS}
    ledger = AzureLedger(generation=tables.generation,
                         marker=(version, marker[wire.ETAG]) if marker else None,
                         known=known, partial=True)
    ledger.pinned = True
    if not marker or str(marker.get("value")) != version:
        ledger.marker_ours = False  # another writer since: conflicts are found per entity
    doc: dict[str, Any] = {"settings": None, **{kind: [] for kind in codec.PARTITIONS}}
    for kind, found in entries.items():
        kc = CODECS[kind]
        for etag, item in found:
            rk = kc.row_key(item)
            if etag:
                ledger.etags[(kc.pk(rk), rk)] = etag
            known[kind][rk] = item
            if kind == "settings":
                doc["settings"] = item
            else:
                doc[kind].append(item)
    return LoadedEmply(doc=doc, served_from_cache=True, ledger=ledger,
                       whole=frozenset(whole))


async def read_rows(tables: AzureEmplyTables, kind: str, ids: Iterable[str],
                    etags: Mapping[tuple[str, str], str], limit: asyncio.Semaphore, *,
                    skip_conflicts: bool) -> dict[str, dict[str, Any]]:
    """`AzureEmplyTables.read_entities` once resolved. One request per partition: a point
    read for one entity, else a query naming the partition's row keys (a Table request
    costs about a millisecond of CPU whatever it carries; on Azurite such a query scans
    the table, so wall time rises with its size while CPU falls with the request count)."""
    kc = CODECS[kind]
    by_partition: dict[str, list[tuple[str, str]]] = {}
    for entity_id in dict.fromkeys(ids):
        rk = kc.row_key({"id": entity_id})
        by_partition.setdefault(kc.pk(rk), []).append((entity_id, rk))
    rows: dict[str, dict[str, Any] | None] = {}

    async def partition(pk: str, wanted: list[tuple[str, str]]) -> None:
        async with limit:
            if len(wanted) == 1:
                found = [row] if (row := await wire.get(tables.emply, pk, wanted[0][1])) else []
            else:
                found = []
                async for page in wire.query(tables.emply, _rows_filter(pk, wanted)):
                    found.extend(page)
        by_key = {row["RowKey"]: row for row in found}
        for entity_id, rk in wanted:
            rows[entity_id] = by_key.get(rk)

    await asyncio.gather(*(partition(pk, wanted[i:i + ROWS_PER_QUERY])
                           for pk, wanted in by_partition.items()
                           for i in range(0, len(wanted), ROWS_PER_QUERY)))
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


def _rows_filter(pk: str, wanted: list[tuple[str, str]]) -> str:
    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    keys = " or ".join(f"RowKey eq {quoted(rk)}" for _id, rk in wanted)
    return f"PartitionKey eq {quoted(pk)} and ({keys})"
