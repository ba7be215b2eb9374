"""EmplyStore: the Emply side and the sync's own state in Azure Storage.

Layout (every name carries the store's optional `prefix`):

- table `emply`: one entity per Emply object. PartitionKey is the kind
  (settings, role, calendar, event, outbound), RowKey the encoded id
  (`keys.encode_key`). Users and employees, the kinds that grow with the tenant,
  are spread over `BUCKETS` partitions instead: `user-XX` / `employee-XX`, XX
  two hex digits of a stable hash of the RowKey (`bucket`), so that a partition
  holds a few hundred entities even at 100,000 users (see `BUCKETS`). Each field
  is a property; lists and objects are JSON text. Null fields are simply absent.
- table `runs`: run index, PartitionKey "run", RowKey = inverted start time +
  run id so a plain query lists newest first. Full reports live in blobs.
- table `synclease`: one entity, the lease of the running run (ETag guarded).
- container `runreports`: `<runId>.json`, the whole run report.
- container `syncstate`: `state.json.gz`, delta links, the Entra mirror and
  the previous group→role mapping, written in one put; `snapshot.json.gz`, the
  bulk of a run's inputs (Entra users and groups, a compact copy of the Emply
  side) tagged with a generation, rewritten only when it changes.

The Emply version marker (entity `meta`/`version` of table `emply`) gets a new
random value before and after every Emply write made through a store, so a
copy of the Emply side tagged with the marker value it was read under (see
`emply_cache`) is current exactly while the marker still has that value:
`load_document(cache=...)` then serves it without reading 100,000 entities.
Whoever writes the Emply side must go through `EmplyStore` (or change the
marker); a write that bypasses both is not seen until the next import or sync
write changes the marker.

Writes go in Table transactions of at most 100 operations of one partition
(Azurite answers garbage above that), several in flight at once. Entities read
by `load_document` are written back with their ETag (IfNotModified), so an
edit made meanwhile by someone else raises `ConcurrentChangeError`.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import datetime as dt
import hashlib
import json
import re
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient

from shared import emply_doc
from shared.store import chunked_json, columns, errors, keys, wire

Clock = Callable[[], dt.datetime]
Operation = wire.Operation

PARTITIONS: dict[str, str] = {
    "roles": "role", "users": "user", "employees": "employee", "calendars": "calendar",
    "events": "event", "outboundEvents": "outbound",
}
SETTINGS_PK = "settings"
BUCKETS = 256
LEASE_TTL_SECONDS = 300
"""The single-run lease's length (R1); a live run renews it every third of it, so a
killed run's lease is free again at most this long after its last renewal."""
"""Partitions per bucketed kind (`BUCKETED`). Azurite finds the entity a write
replaces by scanning its partition, so a write costs in proportion to the
partition's size (one partition of 20,000 users: about 300 writes/s), and Azure
Table Storage serves one partition at about 2,000 entities/s. 256 buckets keep
about 400 users per partition at 100,000 users (4 full transactions each) and
still fit two hex digits; a kind is read with one range query over its buckets.
Changing the count moves entities: export, then import --replace."""
BUCKETED = frozenset({"users", "employees"})
_MAX_BATCH = 100
_MAX_BATCH_BYTES = 3_000_000  # the service limit is 4 MiB per transaction
_CONCURRENCY = 8
_LEASE_PK, _LEASE_RK = "lease", "sync"
_STATE_BLOB = "state.json.gz"
_SNAPSHOT_PARTS = ("entra", "emply")
_GENERATION = re.compile(r"[0-9a-f]{32}")
T = TypeVar("T")
_BLOCK_BYTES = 4 << 20  # compressed bytes per staged block of a syncstate blob
_META_PK, _VERSION_RK = "meta", "version"
_CACHE_FORMAT = 4  # 2: users and employees in hash buckets; 3: in columns; 4: with pks
# Fields a cached copy of the Emply side leaves out (bulky, not needed to plan):
# `read_entities` fetches the whole entity before it is rewritten.
HEAVY_FIELDS: dict[str, frozenset[str]] = {"users": frozenset({"lastChange", "history"})}
_PREFIX = re.compile(r"[a-z0-9]{0,20}")


def bucket(row_key: str) -> str:
    """The bucket (two hex digits) of a bucketed kind's RowKey: stable across runs,
    processes and machines (not Python's salted `hash`)."""
    return hashlib.blake2b(row_key.encode(), digest_size=1).hexdigest()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: object) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class _Codec:
    """Entity <-> table row for one kind, precomputed for speed (100k rows)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        schema = emply_doc.SETTINGS if kind == "settings" else emply_doc.SCHEMAS[kind]
        self.partition = SETTINGS_PK if kind == "settings" else PARTITIONS[kind]
        """The PartitionKey, or for a bucketed kind the prefix of its `pk`s."""
        self.bucketed = kind in BUCKETED
        escaped = self.partition.replace("'", "''")
        # Every partition of the kind: "user-00" ... "user-ff" sort between "user-"
        # and "user." ("." follows "-").
        self.filter = (f"PartitionKey ge '{escaped}-' and PartitionKey lt '{escaped}.'"
                       if self.bucketed else f"PartitionKey eq '{escaped}'")
        self.fields = tuple(schema)
        self.field_set = frozenset(schema)
        self.json = emply_doc.json_fields(kind)
        self.defaults = tuple((name, name in self.json, schema[name].default)
                              for name in schema)
        heavy = HEAVY_FIELDS.get(kind, frozenset())
        self.cache_fields = tuple(name for name in schema if name not in heavy)
        """The fields the compact copy keeps (`compact`)."""
        self.cache_defaults = tuple(schema[name].default for name in self.cache_fields)

    def pk(self, row_key: str) -> str:
        """The PartitionKey of the entity with `row_key`."""
        return f"{self.partition}-{bucket(row_key)}" if self.bucketed else self.partition

    def row_key(self, item: Mapping[str, Any]) -> str:
        if self.kind == "settings":
            return SETTINGS_PK
        ids = emply_doc.entity_key(self.kind, item)
        return keys.encode_key(ids[0]) if len(ids) == 1 else keys.compound_key(ids)

    def to_row(self, item: Mapping[str, Any]) -> dict[str, Any]:
        extra = item.keys() - self.field_set
        if extra:
            raise ValueError(f"{self.kind}: unknown fields {sorted(extra)}")
        rk = self.row_key(item)
        row: dict[str, Any] = {"PartitionKey": self.pk(rk), "RowKey": rk}
        for name in self.fields:
            value = item.get(name)
            if value is None:
                continue
            if name in self.json:
                value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            row[name] = value
        return row

    def compact(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """`item` as `from_row(to_row(item))` would give it, without the heavy fields."""
        heavy = HEAVY_FIELDS.get(self.kind, frozenset())
        out: dict[str, Any] = {}
        for name, _is_json, default in self.defaults:
            if name in heavy:
                continue
            value = item.get(name)
            out[name] = (None if default is None else copy.deepcopy(default)) \
                if value is None else value
        return out

    def cache_row(self, item: Mapping[str, Any]) -> list[Any]:
        """`compact(item)`'s values in `cache_fields` order: what the compact copy keeps
        of an entity this store wrote (a list is a third of a dict's size)."""
        return [(None if default is None else copy.deepcopy(default)) if value is None
                else value
                for value, default in zip(map(item.get, self.cache_fields),
                                          self.cache_defaults, strict=True)]

    def loaded(self, item: dict[str, Any]) -> dict[str, Any]:
        """What the compact copy keeps of an entity just read (`from_row`'s shape): the
        entity itself when its heavy fields are empty (shared, not copied: 100,000 users
        would otherwise be held twice), else `compact(item)`."""
        heavy = HEAVY_FIELDS.get(self.kind)
        if heavy and any(item.get(name) for name in heavy):
            return self.compact(item)
        return item

    def from_row(self, row: Mapping[str, Any], *, sparse: bool = False) -> dict[str, Any]:
        """The entity of a row, every field present; with `sparse`, the fields the row
        does not hold are left out instead of set to their defaults (a user has about 8
        of its 18: at 100,000 users that is about 50 MB less)."""
        out: dict[str, Any] = {}
        for name, is_json, default in self.defaults:
            value = row.get(name)
            if value is None:
                if sparse:
                    continue
                value = None if default is None else copy.deepcopy(default)
            elif is_json:
                value = [] if value == "[]" else json.loads(value)
            out[name] = value
        return out


_CODECS: dict[str, _Codec] = {kind: _Codec(kind) for kind in ("settings", *PARTITIONS)}
_PARTITION_KINDS = {codec.partition: kind for kind, codec in _CODECS.items()}
"""PartitionKey (a bucketed kind's without its "-XX") -> kind."""


class EmplyStore:
    """Async adapter over Table + Blob Storage. Use as `async with`."""

    def __init__(self, tables: TableServiceClient, blobs: BlobServiceClient, *,
                 prefix: str = "", clock: Clock | None = None,
                 credential: Any = None) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError("prefix must be at most 20 lowercase letters and digits")
        self._tables = tables
        self._blobs = blobs
        self._credential = credential
        self._clock = clock or _utcnow
        self.prefix = prefix
        self.emply: TableClient = tables.get_table_client(prefix + "emply")
        self.runs: TableClient = tables.get_table_client(prefix + "runs")
        self.lease: TableClient = tables.get_table_client(prefix + "synclease")
        self.syncstate: ContainerClient = blobs.get_container_client(prefix + "syncstate")
        self.runreports: ContainerClient = blobs.get_container_client(prefix + "runreports")
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._limit = asyncio.Semaphore(_CONCURRENCY)
        self._etags: dict[tuple[str, str], str] = {}
        # The Emply version marker as last read or written here, and whether it has
        # moved only by our own writes since `load_document` read it.
        self._version: tuple[str, str] | None = None
        self._version_ours = False
        # kind -> row key -> compact item: the Emply side as this store knows it.
        self._known: dict[str, dict[str, dict[str, Any] | list[Any]]] | None = None
        self.served_from_cache = False
        """Whether the last `load_document` was served from the cache it was given."""
        self.stats: dict[str, int] = {
            "transactions": 0, "batches": 0, "single_operations": 0,
            "entities_written": 0, "entities_deleted": 0, "marker_writes": 0,
            # Of the entities written, those that replaced one this store had loaded
            # (conditional on its ETag): the rest were new or replaced unseen.
            "entities_replaced": 0,
        }
        self.batches_by_partition: dict[str, list[int]] = {}
        """PartitionKey -> [transactions, entities] of the batched (non-delete) writes."""

    # --- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._ensure()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._tables.close()
        await self._blobs.close()
        if self._credential is not None and hasattr(self._credential, "close"):
            await self._credential.close()

    async def _ensure(self) -> None:
        """Create the tables and containers once per store instance."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            names = [self.emply.table_name, self.runs.table_name, self.lease.table_name]
            await asyncio.gather(*(self._tables.create_table_if_not_exists(n) for n in names),
                                 *(self._create_container(c)
                                   for c in (self.syncstate, self.runreports)))
            self._ready = True

    @staticmethod
    async def _create_container(container: ContainerClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            await container.create_container()

    async def ping(self) -> None:
        """Raise if Table or Blob Storage cannot be reached."""
        await self._ensure()
        await asyncio.gather(self._get(self.lease, _LEASE_PK, _LEASE_RK),
                             self.syncstate.get_container_properties())

    def _count(self, *, batches: int = 0, singles: int = 0, written: int = 0,
               deleted: int = 0) -> None:
        self.stats["transactions"] += batches + singles
        self.stats["batches"] += batches
        self.stats["single_operations"] += singles
        self.stats["entities_written"] += written
        self.stats["entities_deleted"] += deleted

    @staticmethod
    async def _get(table: TableClient, pk: str, rk: str) -> dict[str, Any] | None:
        try:
            return _with_etag(await table.get_entity(pk, rk))
        except ResourceNotFoundError:
            return None

    # --- the Emply document ------------------------------------------------

    async def _query(self, kind: str,
                     select: list[str] | None = None) -> list[dict[str, Any]]:
        """Every row of `kind` (all its buckets), ordered by RowKey as one partition's
        rows would be."""
        codec = _CODECS[kind]
        rows: list[dict[str, Any]] = []
        async for page in wire.query(self.emply, codec.filter, select=select):
            rows.extend(page)
        if codec.bucketed and (select is None or "RowKey" in select):
            rows.sort(key=lambda row: row["RowKey"])
        return rows

    async def load_document(self, cache: Mapping[str, Any] | None = None, *,
                            sparse: bool = False) -> dict[str, Any]:
        """The whole Emply side, normalised like `emply_doc.validate_document`.

        Remembers each entity's ETag: later `upsert_*` of these entities are
        conditional on it. With a `cache` (an earlier `emply_cache()`) still
        current by the version marker, returns the cached copy instead: users
        then lack a non-empty `lastChange` and `history` (use `read_entities` for
        whole ones). With `sparse`, users and employees read from the table lack the
        fields they do not hold (read them with `.get`). Treat the returned entities as
        read-only: they are shared.
        """
        await self._ensure()
        # The marker first: a write that ends after this read changes it again.
        marker = await self._get(self.emply, _META_PK, _VERSION_RK)
        value = marker.get("value") if marker else None
        self._version = (str(value), marker[wire.ETAG]) if marker and value else None
        self._version_ours = self._version is not None
        self.served_from_cache = False
        if (cache and self._version and cache.get("format") == _CACHE_FORMAT
                and cache.get("version") == self._version[0]):
            served = self._from_cache(cache)
            if served is not None:
                return served
        doc = await self._read_document(sparse=sparse)
        self._known = {}
        for kind, codec in _CODECS.items():
            items = doc[kind] if kind != "settings" else [doc["settings"]] * bool(doc[kind])
            self._known[kind] = {codec.row_key(item): codec.loaded(item) for item in items}
        return doc

    def _from_cache(self, cache: Mapping[str, Any]) -> dict[str, Any] | None:
        """The document from an `emply_cache()`; None when the cache is malformed."""
        known: dict[str, dict[str, dict[str, Any] | list[Any]]] = {}
        etags: list[tuple[tuple[str, str], str]] = []
        doc: dict[str, Any] = {"settings": None}
        try:
            for kind in _CODECS:
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
                    etags.extend(((pk, rk), tag)
                                 for rk, (pk, tag) in zip(keys_, tags, strict=True) if tag)
                    known[kind] = dict(zip(keys_, items, strict=True))
                if kind == "settings":
                    doc["settings"] = items[0] if items else None
                else:
                    doc[kind] = items
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        self._etags.update(etags)
        self._known = known
        self.served_from_cache = True
        return doc

    def emply_cache(self) -> dict[str, Any] | None:
        """A compact copy of the Emply side as loaded plus this store's writes since,
        tagged with the version marker; None when another writer moved the marker
        (or nothing was loaded). Plain JSON in columns (`shared.store.columns`), for
        `save_snapshot`."""
        if self._known is None or not self._version_ours or self._version is None:
            return None
        kinds: dict[str, Any] = {}
        located: dict[str, dict[str, tuple[str, str]]] = {kind: {} for kind in self._known}
        for (pk, rk), tag in self._etags.items():
            kind = _PARTITION_KINDS.get(pk) or _PARTITION_KINDS.get(pk.rpartition("-")[0])
            if kind in located:
                located[kind][rk] = (pk, tag)
        for kind, items in self._known.items():
            codec = _CODECS[kind]
            fields = codec.cache_fields
            keys_ = sorted(items)  # by RowKey, the order `_query` gives
            where = located[kind]
            kinds[kind] = {
                "keys": keys_,
                "etags": columns.pack_rows(
                    (where.get(k, (codec.pk(k), None)) for k in keys_), ("pk", "etag")),
                "items": columns.pack_rows((_cache_values(items[k], fields) for k in keys_),
                                           fields),
            }
        return {"format": _CACHE_FORMAT, "version": self._version[0], "kinds": kinds}

    async def current_version(self) -> str | None:
        """The Emply version marker's value now (None when there is none)."""
        await self._ensure()
        marker = await self._get(self.emply, _META_PK, _VERSION_RK)
        value = marker.get("value") if marker else None
        return str(value) if value else None

    def emply_version(self) -> str | None:
        """The marker value this store's last load or write left, when no other writer
        has moved it since (as far as this store saw); else None."""
        if self._version is None or not self._version_ours:
            return None
        return self._version[0]

    def forget_loaded(self) -> None:
        """Drop what `load_document` remembered (the compact copy, the ETags): a run calls
        this once its snapshot is saved, so they do not outlive it (100,000 users: about
        100 MB). Writes after this are no longer ETag-guarded; load again first."""
        self._known = None
        self._etags = {}
        self.served_from_cache = False

    async def read_entities(self, kind: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Whole entities of `kind` by id (missing ones left out), read from the table.

        Raises `ConcurrentChangeError` when one changed since `load_document`: its
        ETag is no longer the one remembered (the later write would fail anyway).
        """
        await self._ensure()
        codec = _CODECS[kind]
        # Point reads, 8 at a time: the cheapest Table operation, and on Azurite a query
        # (even "PartitionKey eq .. and (RowKey eq .. or ..)") scans the whole table —
        # measured: 1% churn at 100,000 users 12.0 s with such queries, 10 s with these.
        wanted = list(dict.fromkeys(ids))

        async def one(entity_id: str) -> dict[str, Any] | None:
            rk = codec.row_key({"id": entity_id})
            pk = codec.pk(rk)
            async with self._limit:
                row = await wire.get(self.emply, pk, rk)
            known = self._etags.get((pk, rk))
            if row is None:
                if known is not None:
                    raise errors.ConcurrentChangeError(kind, entity_id)
                return None
            if known is not None and row[wire.ETAG] != known:
                raise errors.ConcurrentChangeError(kind, entity_id)
            return codec.from_row(row)

        found = await asyncio.gather(*(one(i) for i in wanted))
        return {i: item for i, item in zip(wanted, found, strict=True) if item is not None}

    async def _read_document(self, *, sparse: bool = False) -> dict[str, Any]:
        kinds = list(PARTITIONS)
        results = await asyncio.gather(*(self._read_kind(k, sparse=sparse and k in BUCKETED)
                                         for k in ("settings", *kinds)))
        doc: dict[str, Any] = {"settings": results[0][0] if results[0] else None}
        doc.update(zip(kinds, results[1:], strict=True))
        return doc

    async def _read_kind(self, kind: str, *, sparse: bool = False) -> list[dict[str, Any]]:
        """Every entity of `kind` in RowKey order, converted a page at a time (the raw
        rows of 100,000 users are never all held at once); ETags remembered."""
        codec = _CODECS[kind]
        etags = self._etags
        keyed: list[tuple[str, dict[str, Any]]] = []
        async for page in wire.query(self.emply, codec.filter):
            for row in page:
                etags[(row["PartitionKey"], row["RowKey"])] = row[wire.ETAG]
                keyed.append((row["RowKey"], codec.from_row(row, sparse=sparse)))
        if codec.bucketed:
            keyed.sort(key=lambda pair: pair[0])
        return [item for _rk, item in keyed]

    async def export_document(self) -> dict[str, Any]:
        """What `emply-sync emply export` prints (import --replace takes it back)."""
        return await self.load_document()

    async def _ids(self, kind: str) -> set[str]:
        return {row["id"] for row in await self._query(kind, select=["id"])}

    async def import_document(self, doc: object, *, replace: bool = False) -> dict[str, int]:
        """Validate `doc`, then upsert it (replace: clear the Emply side first).

        Nothing is written when the document is refused (DocumentError). The
        sync's own state (sync state blob, runs, lease) is never touched.
        Returns the number of entities written per section.
        """
        await self._ensure()
        known: dict[str, set[str] | None] = {"roles": None, "users": None, "employees": None}
        if replace:
            known = {k: set() for k in known}
        elif isinstance(doc, dict):
            wanted = {
                "roles": doc.get("settings") is not None,
                "employees": bool(doc.get("users")),
                "users": any(doc.get(s) for s in ("calendars", "events", "outboundEvents")),
            }
            names = [k for k, need in wanted.items() if need]
            for name, ids in zip(names, await asyncio.gather(*(self._ids(n) for n in names)),
                                 strict=True):
                known[name] = ids
        clean = emply_doc.validate_document(
            doc, known_role_ids=known["roles"], known_user_ids=known["users"],
            known_employee_ids=known["employees"])
        if replace:
            await self.clear_emply()
        counts: dict[str, int] = {"settings": 0}
        if clean["settings"] is not None:
            await self._write("settings", [clean["settings"]], conditional=False)
            counts["settings"] = 1
        for kind in PARTITIONS:
            await self._write(kind, clean[kind], conditional=False)
            counts[kind] = len(clean[kind])
        return counts

    async def clear_emply(self) -> int:
        """Delete every Emply entity (not the sync's own state). Returns the count."""
        await self._ensure()
        found = await asyncio.gather(*(self._query(kind, select=["PartitionKey", "RowKey"])
                                       for kind in _CODECS))
        ops: list[Operation] = [
            ("delete", {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}, {})
            for rows in found for row in rows
        ]
        self._known = None
        await self._submit_all(ops, kind="entity")
        self._etags.clear()
        return len(ops)

    # --- entity writes -----------------------------------------------------

    async def upsert_users(self, users: Sequence[Mapping[str, Any]]) -> None:
        """Write whole users (normalised dicts); ETag-guarded for loaded ones."""
        await self._write("users", users)

    async def upsert_employees(self, employees: Sequence[Mapping[str, Any]]) -> None:
        await self._write("employees", employees)

    async def upsert_entities(self, kind: str, items: Sequence[Mapping[str, Any]]) -> None:
        """Write whole entities of a section ("roles", "calendars", ...)."""
        await self._write(kind, items)

    async def save_settings(self, settings: Mapping[str, Any]) -> None:
        await self._write("settings", [settings])

    async def delete_entities(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        """Delete entities of `kind` (each given by its key fields); missing ones are fine."""
        codec = _CODECS[kind]
        row_keys = [codec.row_key(i) for i in items]
        ops: list[Operation] = [
            ("delete", {"PartitionKey": codec.pk(rk), "RowKey": rk}, {}) for rk in row_keys
        ]
        await self._submit_all(ops, kind=kind)
        for _op, row, _kw in ops:
            self._etags.pop((row["PartitionKey"], row["RowKey"]), None)
            if self._known is not None:
                self._known[kind].pop(row["RowKey"], None)

    async def _write(self, kind: str, items: Sequence[Mapping[str, Any]], *,
                     conditional: bool = True) -> None:
        if not items:
            return
        await self._ensure()
        codec = _CODECS[kind]
        ops: list[Operation] = []
        for item in items:
            row = codec.to_row(item)
            ops.append(self._operation(row) if conditional else ("upsert", row, {}))
        await self._submit_all(ops, kind=kind)
        if self._known is not None:
            known = self._known[kind]
            for item, (_op, row, _kw) in zip(items, ops, strict=True):
                known[row["RowKey"]] = codec.cache_row(item)

    async def _bump_version(self) -> None:
        """Give the Emply version marker a new value (see the module docstring)."""
        entity = {"PartitionKey": _META_PK, "RowKey": _VERSION_RK, "value": uuid.uuid4().hex}
        result: Mapping[str, Any] | None = None
        if self._version is not None and self._version_ours:
            try:
                result = await self.emply.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=self._version[1],
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                result = None
            except HttpResponseError as exc:
                if exc.status_code not in (404, 412):
                    raise
        if result is None:
            self._version_ours = False
            result = await self.emply.upsert_entity(entity, mode=UpdateMode.REPLACE)
        self._count(singles=1)  # a transaction, counted apart from the Emply entities
        self.stats["marker_writes"] += 1
        self._version = (entity["value"], result["etag"])

    async def _submit_all(self, ops: list[Operation], *, kind: str) -> None:
        if not ops:
            return
        await self._bump_version()
        try:
            await self._submit_chunks(ops, kind=kind)
        except BaseException:
            self._version_ours = False  # some chunks may be written: no cached copy is right
            raise
        finally:
            # Again after the writes: a copy read while they were under way is stale.
            await self._bump_version()

    async def _submit_chunks(self, ops: list[Operation], *, kind: str) -> None:
        by_partition: dict[str, list[Operation]] = {}
        for op in ops:
            by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
        chunks = [chunk for part in by_partition.values() for chunk in _chunks(part)]
        await asyncio.gather(*(self._submit(chunk, kind) for chunk in chunks))

    async def write_built(self, kind: str, ids: Iterable[str],
                          build: Callable[[str], Mapping[str, Any]]) -> None:
        """Write the entities of a one-key kind ("users", "employees") with these ids,
        each made by `build(id)` just before its partition is written.

        Only the partitions in flight are ever built, so a write of 100,000 users holds
        a few thousand entities, not all of them. Transactions per partition as in
        `upsert_users`; ETag-guarded for loaded entities. `build` must give entities
        whose fields are the kind's (an unknown field is a bug: ValueError).
        """
        codec = _CODECS[kind]
        if kind not in BUCKETED:
            raise ValueError(f"write_built takes users or employees, not {kind}")
        by_partition: dict[str, list[str]] = {}
        for entity_id in ids:
            by_partition.setdefault(codec.pk(keys.encode_key(entity_id)), []).append(entity_id)
        if not by_partition:
            return
        await self._ensure()
        known = self._known[kind] if self._known is not None else None

        async def partition(entity_ids: list[str]) -> None:
            async with self._limit:
                items = [build(i) for i in entity_ids]
                ops = [self._operation(codec.to_row(item)) for item in items]
                for chunk in _chunks(ops):
                    await self._send(chunk, kind)
            if known is not None:
                for item, (_op, row, _kw) in zip(items, ops, strict=True):
                    known[row["RowKey"]] = codec.cache_row(item)

        await self._bump_version()
        try:
            await asyncio.gather(*(partition(group) for group in by_partition.values()))
        except BaseException:
            self._version_ours = False  # some partitions may be written: no cached copy is right
            raise
        finally:
            await self._bump_version()

    def _operation(self, row: dict[str, Any]) -> Operation:
        """Replace the entity: conditional on its ETag when this store loaded it."""
        etag = self._etags.get((row["PartitionKey"], row["RowKey"]))
        return ("upsert", row, {}) if etag is None else ("update", row, {"etag": etag})

    async def _submit(self, chunk: list[Operation], kind: str) -> None:
        async with self._limit:
            await self._send(chunk, kind)

    async def _send(self, chunk: list[Operation], kind: str) -> None:
        deletes = chunk[0][0] == "delete"
        try:
            etags = await wire.submit(self.emply, chunk)
        except HttpResponseError as exc:
            if deletes and exc.status_code == 404:
                await self._delete_one_by_one(chunk)
                return
            if exc.status_code in (404, 409, 412):
                await self._raise_conflict(chunk, kind, exc)
            raise
        if deletes:
            self._count(batches=1, deleted=len(chunk))
            return
        self._count(batches=1, written=len(chunk))
        self.stats["entities_replaced"] += sum(1 for op in chunk if op[0] == "update")
        tally = self.batches_by_partition.setdefault(chunk[0][1]["PartitionKey"], [0, 0])
        tally[0] += 1
        tally[1] += len(chunk)
        for (_op, row, _kw), etag in zip(chunk, etags, strict=False):
            if etag:
                self._etags[(row["PartitionKey"], row["RowKey"])] = etag

    async def _delete_one_by_one(self, chunk: list[Operation]) -> None:
        for _op, row, _kw in chunk:
            with contextlib.suppress(ResourceNotFoundError):
                await self.emply.delete_entity(row["PartitionKey"], row["RowKey"])
            self._count(singles=1, deleted=1)

    async def _raise_conflict(self, chunk: list[Operation], kind: str,
                              exc: HttpResponseError) -> None:
        """Find which conditional write of a failed transaction was stale."""
        for _op, row, kwargs in chunk:
            if "etag" not in kwargs:
                continue
            current = await self._get(self.emply, row["PartitionKey"], row["RowKey"])
            if current is None or current[wire.ETAG] != kwargs["etag"]:
                raise errors.ConcurrentChangeError(kind, str(row.get("id"))) from exc

    # --- lease -------------------------------------------------------------

    async def acquire_lease(self, run_id: str, trigger: str, *,
                            ttl_seconds: int = LEASE_TTL_SECONDS) -> dict[str, Any] | None:
        """Take the one-run-at-a-time lease or raise `RunInProgress`.

        Returns the expired lease of another run that this one took over (`runId`,
        `trigger`, `startedAt`, `expiresAt`, `renewedAt`: when it was last seen alive),
        or None: that run was killed without releasing it."""
        await self._ensure()
        for _attempt in range(10):
            now = self._clock()
            current = await self._get(self.lease, _LEASE_PK, _LEASE_RK)
            entity = {"PartitionKey": _LEASE_PK, "RowKey": _LEASE_RK, "runId": run_id,
                      "trigger": trigger, "startedAt": _iso(now), "renewedAt": _iso(now),
                      "expiresAt": _iso(now + dt.timedelta(seconds=ttl_seconds))}
            taken: dict[str, Any] | None = None
            try:
                if current is None:
                    await self.lease.create_entity(entity)
                else:
                    expires = _parse_time(current.get("expiresAt"))
                    if current.get("runId") != run_id and expires is not None and expires > now:
                        raise errors.RunInProgress(str(current.get("runId")),
                                                   str(current.get("trigger")),
                                                   str(current.get("startedAt")))
                    if current.get("runId") == run_id:
                        entity["startedAt"] = current.get("startedAt", entity["startedAt"])
                    else:
                        taken = {k: current.get(k) for k in _LEASE_FIELDS}
                    await self.lease.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=current[wire.ETAG],
                        match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError):
                self._count(singles=1)
                continue  # someone else moved first: look again
            except HttpResponseError as exc:
                if exc.status_code not in (409, 412):
                    raise
                self._count(singles=1)
                continue
            self._count(singles=1, written=1)
            return taken
        raise errors.StoreError("could not settle the sync lease after 10 attempts")

    async def renew_lease(self, run_id: str, *, ttl_seconds: int = LEASE_TTL_SECONDS) -> None:
        """Push our lease's expiry out; `LeaseLost` if it is no longer ours."""
        await self._ensure()
        current = await self._get(self.lease, _LEASE_PK, _LEASE_RK)
        if current is None or current.get("runId") != run_id:
            raise errors.LeaseLost(run_id)
        entity = {k: v for k, v in current.items() if k != wire.ETAG}
        now = self._clock()
        entity["renewedAt"] = _iso(now)
        entity["expiresAt"] = _iso(now + dt.timedelta(seconds=ttl_seconds))
        try:
            await self.lease.update_entity(entity, mode=UpdateMode.REPLACE,
                                           etag=current[wire.ETAG],
                                           match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise errors.LeaseLost(run_id) from exc
        finally:
            self._count(singles=1, written=1)

    async def release_lease(self, run_id: str) -> None:
        """Give the lease up, only if it is still ours."""
        await self._ensure()
        current = await self._get(self.lease, _LEASE_PK, _LEASE_RK)
        if current is None or current.get("runId") != run_id:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            await self.lease.delete_entity(_LEASE_PK, _LEASE_RK, etag=current[wire.ETAG],
                                           match_condition=MatchConditions.IfNotModified)
        self._count(singles=1, deleted=1)

    async def current_lease(self) -> dict[str, Any] | None:
        """The lease entity (runId, trigger, startedAt, expiresAt) or None."""
        await self._ensure()
        current = await self._get(self.lease, _LEASE_PK, _LEASE_RK)
        if current is None:
            return None
        return {k: current.get(k) for k in _LEASE_FIELDS}

    # --- run history -------------------------------------------------------

    async def save_run(self, report: Mapping[str, Any]) -> None:
        """Store a run report (blob) and its summary (index row); upsert."""
        await self._ensure()
        run_id = report.get("runId")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError("run report needs a runId")
        started = _parse_time(report.get("startedAt")) or self._clock()
        millis = int(started.timestamp() * 1000)
        summary = _summary(report)
        row = {"PartitionKey": "run", "RowKey": f"{9_999_999_999_999 - millis:013d}_"
                                                f"{keys.encode_key(run_id)}"}
        row.update({k: (json.dumps(v) if k == "counts" else v)
                    for k, v in summary.items() if v is not None})
        # Plain JSON, encoded and uploaded a block at a time: a 100,000-user initial
        # sync's report is about 70 MB of text, never held whole.
        blocks = chunked_json.text_blocks(chunked_json.plain_pieces(report),
                                          block_size=_BLOCK_BYTES)
        await _upload_blocks(self.runreports.get_blob_client(self._run_blob(run_id)), blocks)
        await self.runs.upsert_entity(row, mode=UpdateMode.REPLACE)
        self._count(singles=1, written=1)

    @staticmethod
    def _run_blob(run_id: str) -> str:
        return keys.encode_key(run_id) + ".json"

    async def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Run summaries, newest first."""
        await self._ensure()
        out: list[dict[str, Any]] = []
        if limit <= 0:
            return out
        pager = self.runs.query_entities("PartitionKey eq 'run'",
                                         results_per_page=min(limit, 1000))
        async for row in pager:
            summary = {k: row.get(k) for k in _SUMMARY_FIELDS
                       if k in row or k not in _OPTIONAL_SUMMARY_FIELDS}
            summary["counts"] = json.loads(row["counts"]) if row.get("counts") else {}
            out.append(summary)
            if len(out) >= limit:
                break
        return out

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The full report of a run, or None."""
        await self._ensure()
        try:
            downloader = await self.runreports.download_blob(self._run_blob(run_id))
        except ResourceNotFoundError:
            return None
        data: dict[str, Any] = json.loads(await downloader.readall())
        return data

    async def last_run(self) -> dict[str, Any] | None:
        """The newest run's summary (as in `list_runs`), or None."""
        runs = await self.list_runs(1)
        return runs[0] if runs else None

    # --- sync state --------------------------------------------------------

    async def _read_json_blob(self, name: str) -> Any:
        """A `chunked_json` blob of `syncstate`, decoded off the event loop; None if absent.

        The compressed bytes are held whole (about a fifth of the text); the text is
        decompressed and parsed a line at a time.
        """
        await self._ensure()
        try:
            downloader = await self.syncstate.download_blob(name)
        except ResourceNotFoundError:
            return None
        raw = await downloader.readall()

        def decode() -> Any:
            try:
                return chunked_json.decode_lines(chunked_json.gunzip_lines([raw]))
            except zlib.error as exc:
                raise ValueError(f"{name}: not gzip data ({exc})") from exc

        return await _in_codec_thread(decode)

    async def _write_json_blob(self, name: str, value: Any, *, level: int) -> None:
        """Replace a `syncstate` blob; readers see the old or the new one, never half.

        The value is encoded and compressed a block at a time in a worker thread while
        the previous block uploads; blocks are committed in one call at the end (a
        small value goes up in one put). Memory: about two blocks, whatever the size.
        """
        await self._ensure()
        blocks = chunked_json.gzip_blocks(chunked_json.encode_lines(value), level=level,
                                          block_size=_BLOCK_BYTES)
        await _upload_blocks(self.syncstate.get_blob_client(name), blocks)

    async def load_sync_state(self) -> dict[str, Any] | None:
        state: dict[str, Any] | None = await self._read_json_blob(_STATE_BLOB)
        return state

    async def save_sync_state(self, state: Mapping[str, Any]) -> None:
        await self._write_json_blob(_STATE_BLOB, state, level=5)

    async def load_snapshot(self, generation: str, *, part: str) -> dict[str, Any] | None:
        """The snapshot part saved as `generation`, or None when it is missing."""
        snapshot = await self._read_json_blob(_snapshot_blob(part, generation))
        if not isinstance(snapshot, dict) or snapshot.get("generation") != generation:
            return None
        data: dict[str, Any] = snapshot.get("data") or {}
        return data

    async def save_snapshot(self, generation: str, data: Mapping[str, Any] | Callable[[], Any],
                            *, part: str) -> None:
        """Write a part ("entra", "emply") of the snapshot `generation` (bulky: the fastest
        gzip level). Each generation has its own blobs, so the current one is never
        overwritten by a run that then fails. `data` may be a function giving it: it is
        then called on the codec thread (packing 100,000 users is seconds of CPU that
        can overlap the run's Table writes)."""
        if callable(data):
            data = await _in_codec_thread(data)
        await self._write_json_blob(_snapshot_blob(part, generation),
                                    {"generation": generation, "data": data}, level=1)

    async def delete_snapshot(self, generation: str) -> None:
        """Remove the snapshot `generation` (both parts; missing ones are fine)."""
        await self._ensure()
        for part in _SNAPSHOT_PARTS:
            with contextlib.suppress(ResourceNotFoundError):
                await self.syncstate.delete_blob(_snapshot_blob(part, generation))


def _snapshot_blob(part: str, generation: str) -> str:
    if part not in _SNAPSHOT_PARTS or not _GENERATION.fullmatch(generation):
        raise ValueError(f"no snapshot part {part!r} of generation {generation!r}")
    return f"snapshot-{part}-{generation}.json.gz"


# One thread encodes and decodes the big blobs, always the same one: glibc gives each
# thread that allocates its own malloc arena, and memory freed in an arena stays with
# the process, so a pool's changing threads added about 70 MB to a 100,000-user run.
_CODEC_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                      thread_name_prefix="emply-json")


async def _in_codec_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_CODEC_THREAD, fn, *args)


async def _upload_blocks(blob: BlobClient, blocks: Iterator[bytes]) -> None:
    """Upload `blocks` (made in a worker thread, the next while one uploads) as the
    blob's new content: one put for a single block, else staged blocks committed in one
    call, so readers see the old or the new blob, never a half."""

    async def produce() -> bytes | None:
        return await _in_codec_thread(next, blocks, None)

    data, following = await produce(), await produce()
    if following is None:
        await blob.upload_blob(data or b"", overwrite=True)
        return
    prefix = uuid.uuid4().hex[:16]  # same-length ids, unlike any earlier write's
    ids: list[str] = []
    while data is not None:
        upcoming = asyncio.ensure_future(produce()) if following is not None else None
        block_id = base64.b64encode(f"{prefix}{len(ids):08d}".encode()).decode()
        try:
            await blob.stage_block(block_id, data)
        except BaseException:
            if upcoming is not None:
                upcoming.cancel()
            raise
        ids.append(block_id)
        data, following = following, (await upcoming if upcoming is not None else None)
    await blob.commit_block_list([BlobBlock(block_id=i) for i in ids])


def _cache_values(entry: dict[str, Any] | list[Any], fields: Sequence[str]) -> Sequence[Any]:
    """An entry of the compact copy (a loaded entity, or a written one's `cache_row`)
    as values in `fields` order."""
    return entry if isinstance(entry, list) else [entry.get(f) for f in fields]


def _chunks(ops: list[Operation]) -> Iterable[list[Operation]]:
    """One partition's operations in transactions: at most 100 and 3 MB each."""
    chunk: list[Operation] = []
    size = 0
    for op in ops:
        op_size = sum(len(v) for v in op[1].values() if isinstance(v, str)) + 200
        if chunk and (len(chunk) >= _MAX_BATCH or size + op_size > _MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(op)
        size += op_size
    if chunk:
        yield chunk


_LEASE_FIELDS = ("runId", "trigger", "startedAt", "expiresAt", "renewedAt")

_SUMMARY_FIELDS = ("runId", "trigger", "status", "dryRun", "startedAt", "finishedAt",
                   "counts", "heldCount", "errorCount", "lastSeenAt")
_OPTIONAL_SUMMARY_FIELDS = frozenset({"lastSeenAt"})  # an abandoned run's only


def _summary(report: Mapping[str, Any]) -> dict[str, Any]:
    held = report.get("held")
    errs = report.get("errors")
    return {
        "runId": report.get("runId"), "trigger": report.get("trigger"),
        "status": report.get("status"), "dryRun": bool(report.get("dryRun", False)),
        "startedAt": report.get("startedAt"), "finishedAt": report.get("finishedAt"),
        "counts": report.get("counts") or {},
        "heldCount": len(held) if isinstance(held, list) else 0,
        "errorCount": len(errs) if isinstance(errs, list) else 0,
        "lastSeenAt": report.get("lastSeenAt"),
    }


def _with_etag(entity: Any) -> dict[str, Any]:
    row = dict(entity)
    row[wire.ETAG] = entity.metadata["etag"]
    return row
