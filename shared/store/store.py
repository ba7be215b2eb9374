"""EmplyStore: the Emply side and the sync's own state in Azure Storage.

Layout (every name carries the store's optional `prefix`):

- table `emply<generation>` (32 hex digits; before the first import, `emply`
  itself): one entity per Emply object. PartitionKey is the kind
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

Generations: an import writes the whole new Emply side into a table of its own and
makes it current with one conditional write of the version marker, whose `table`
property names the generation (`import_document`); readers and writers follow the
marker (`_follow`), so a failed or killed import leaves the previous generation
current and whole, and the previous table is dropped after a switch.

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
import logging
import re
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
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

from shared import emply_checks, emply_doc
from shared.store import chunked_json, columns, errors, keys, limits, wire

_log = logging.getLogger("emply_sync.store")  # under the logger telemetry exports

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
Changing the count moves entities: export, then import --replace. Calendars and events
are bucketed too: 10,000 users with 2 calendars of 20 events are 400,000 events."""
BUCKETED = frozenset({"users", "employees", "calendars", "events"})
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
_CACHE_FORMAT = 6  # 2: users and employees in hash buckets; 3: in columns; 4: with pks;
# 5: users with roleBasis and linkedDomain; 6: calendars and events in hash buckets
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
        self._meta: TableClient = tables.get_table_client(prefix + "emply")
        """The table of the version marker, which names the current generation."""
        self.emply: TableClient = self._meta
        """The table of the current generation of the Emply side (see `_follow`)."""
        self._generation: str | None = None
        self._resolved = False
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
            names = [self._meta.table_name, self.runs.table_name, self.lease.table_name]
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
        await self._resolve()
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
        # The marker first: a write that ends after this read changes it again. It also
        # names the generation (table) the Emply side is in now.
        marker = await self._read_marker()
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
        marker = await self._get(self._meta, _META_PK, _VERSION_RK)
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
        await self._resolve()
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
            stored, known = _identities(kept.values())
            calendars = {(str(r.get("userId")), str(r.get("id"))) for r in kept.values()
                         if r["PartitionKey"].startswith(PARTITIONS["calendars"] + "-")}
        try:
            clean = emply_doc.validate_document(
                doc, known_role_ids=known["roles"], known_user_ids=known["users"],
                known_employee_ids=known["employees"], stored=stored,
                known_calendars=calendars)
        except emply_doc.DocumentError as exc:
            # Table Storage's limits too, in the entities that passed: every problem at once.
            if exc.valid is None:
                raise
            raise exc.with_more(_import_rows(exc.valid, exc.positions)[2]) from None
        rows, counts, problems = _import_rows(clean)
        if problems:
            raise emply_doc.DocumentError.of(problems)
        for key in rows:
            kept.pop(key, None)
        generation = uuid.uuid4().hex
        target = self._data_table(generation)
        value = uuid.uuid4().hex
        etag: str | None = None
        try:
            await self._tables.create_table(target.table_name)
            ops: list[Operation] = [("upsert", row, {})
                                    for row in (*rows.values(), *kept.values())]
            del rows, kept
            await self._submit_chunks(ops, kind="entity", table=target)
            if before_switch is not None:
                await before_switch()
            etag = await self._switch(marker, generation, value)
        except BaseException as exc:
            if not await self._abandon(generation, exc):
                raise
            # The switch happened; only its answer was lost on the way back.
        self.emply, self._generation = target, generation
        self._version = (value, etag) if etag is not None else None
        self._version_ours = False
        self._known, self._etags = None, {}
        await self._drop_generation(previous)
        return counts

    async def _switch(self, marker: Mapping[str, Any] | None, generation: str,
                      value: str) -> str:
        """Make `generation` current: the version marker as read at the import's start,
        replaced conditionally on its ETag (one atomic write). Returns the new ETag."""
        entity = {"PartitionKey": _META_PK, "RowKey": _VERSION_RK, "value": value,
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
        self._count(singles=1)
        self.stats["marker_writes"] += 1
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
            marker = await self._get(self._meta, _META_PK, _VERSION_RK)
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
        async for page in wire.query(table, f"PartitionKey ne '{_META_PK}'"):
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
                self._meta, f"PartitionKey ne '{_META_PK}'", select=["PartitionKey", "RowKey"])
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

    # --- generations -------------------------------------------------------

    def _data_table(self, generation: str | None) -> TableClient:
        if generation is None:
            return self._meta
        return self._tables.get_table_client(self._meta.table_name + generation)

    def _follow(self, marker: Mapping[str, Any] | None) -> None:
        """Point `self.emply` at the generation the marker names (none: the marker's own
        table, as before generations existed)."""
        generation = marker.get("table") if marker else None
        if generation is not None and not _GENERATION.fullmatch(str(generation)):
            raise errors.StoreError(f"the Emply version marker names no generation table: "
                                    f"{generation!r}")
        if not self._resolved or generation != self._generation:
            if self._resolved:  # what was loaded belongs to the previous generation
                self._etags, self._known = {}, None
            self.emply = self._data_table(generation)
            self._generation = generation
        self._resolved = True

    async def _read_marker(self) -> dict[str, Any] | None:
        marker = await self._get(self._meta, _META_PK, _VERSION_RK)
        self._follow(marker)
        return marker

    async def _resolve(self) -> None:
        """Find the current generation once, for a store that has not read the marker."""
        await self._ensure()
        if not self._resolved:
            await self._read_marker()

    def _marker(self, value: str) -> dict[str, Any]:
        entity = {"PartitionKey": _META_PK, "RowKey": _VERSION_RK, "value": value}
        if self._generation is not None:
            entity["table"] = self._generation
        return entity

    async def clear_emply(self) -> int:
        """Delete every Emply entity (not the sync's own state). Returns the count."""
        await self._resolve()
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
        """Give the Emply version marker a new value (see the module docstring), keeping
        the generation it names. Raises `EmplyReplaced` when an import switched the
        generation since this store loaded entities from the previous one."""
        value = uuid.uuid4().hex
        result: Mapping[str, Any] | None = None
        if self._version is not None and self._version_ours:
            try:
                result = await self._meta.update_entity(
                    self._marker(value), mode=UpdateMode.REPLACE, etag=self._version[1],
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                result = None
            except HttpResponseError as exc:
                if exc.status_code not in (404, 412):
                    raise
        if result is None:
            self._version_ours = False
            result = await self._bump_other(value)
        self._count(singles=1)  # a transaction, counted apart from the Emply entities
        self.stats["marker_writes"] += 1
        self._version = (value, result["etag"])

    async def _bump_other(self, value: str) -> Mapping[str, Any]:
        """The marker moved by someone else: read it (which generation is current), then
        replace it conditionally, so an import's switch is never overwritten."""
        for _attempt in range(10):
            marker = await self._get(self._meta, _META_PK, _VERSION_RK)
            generation = marker.get("table") if marker else None
            if self._resolved and generation != self._generation \
                    and (self._etags or self._known is not None):
                raise errors.EmplyReplaced(
                    "the Emply side was replaced by an import since it was loaded; "
                    "load it again")
            self._follow(marker)
            try:
                if marker is None:
                    return await self._meta.create_entity(self._marker(value))
                return await self._meta.update_entity(
                    self._marker(value), mode=UpdateMode.REPLACE, etag=marker[wire.ETAG],
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue
        raise errors.StoreError("could not update the Emply version marker after 10 attempts")

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

    async def _submit_chunks(self, ops: list[Operation], *, kind: str,
                             table: TableClient | None = None) -> None:
        by_partition: dict[str, list[Operation]] = {}
        for op in ops:
            by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
        chunks = [chunk for part in by_partition.values() for chunk in _chunks(part)]
        await asyncio.gather(*(self._submit(chunk, kind, table) for chunk in chunks))

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

    async def _submit(self, chunk: list[Operation], kind: str,
                      table: TableClient | None = None) -> None:
        async with self._limit:
            await self._send(chunk, kind, table)

    async def _send(self, chunk: list[Operation], kind: str,
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

    async def _delete_one_by_one(self, chunk: list[Operation], table: TableClient) -> None:
        for _op, row, _kw in chunk:
            with contextlib.suppress(ResourceNotFoundError):
                await table.delete_entity(row["PartitionKey"], row["RowKey"])
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
        # A queued run keeps the row of its request (queuedAt), so it is listed once.
        started = (_parse_time(report.get("queuedAt")) or _parse_time(report.get("startedAt"))
                   or self._clock())
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

    async def load_state_part(self, name: str) -> Any:
        """A named part of the sync's own state kept beside the state blob (e.g.
        "events": R14's delta links), None when absent."""
        return await self._read_json_blob(_state_part_blob(name))

    async def save_state_part(self, name: str, value: Any) -> None:
        await self._write_json_blob(_state_part_blob(name), value, level=5)

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


def _state_part_blob(name: str) -> str:
    if not re.fullmatch(r"[a-z]{1,20}", name):
        raise ValueError(f"no state part {name!r}")
    return f"state-{name}.json.gz"


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


def _identities(rows: Iterable[Mapping[str, Any]]
                ) -> tuple[emply_checks.Stored, dict[str, set[str]]]:
    """What a plain import validates against, from the stored rows: their ids per kind
    and the users' and employees' values that must stay unique."""
    stored = emply_checks.Stored({"users": [], "employees": []})
    known: dict[str, set[str]] = {"roles": set(), "users": set(), "employees": set()}
    for row in rows:
        pk = row["PartitionKey"]
        kind = _PARTITION_KINDS.get(pk) or _PARTITION_KINDS.get(pk.rpartition("-")[0])
        if kind in known and isinstance(row.get("id"), str):
            known[kind].add(row["id"])
            if kind in stored.kinds:
                stored.kinds[kind].append(row)
    return stored, known


def _import_rows(clean: Mapping[str, Any], positions: Mapping[str, list[int]] | None = None,
                 ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, int],
                            list[tuple[str, str]]]:
    """The rows of a validated document by key, the count per section, and what Table
    Storage would refuse in them (entity and field named; `positions`: the entities'
    indices in the file when some were left out)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    counts: dict[str, int] = {"settings": 0}
    problems: list[tuple[str, str]] = []
    sections: list[tuple[str, list[Any]]] = [
        ("settings", [clean["settings"]] if clean["settings"] is not None else []),
        *((kind, clean[kind]) for kind in PARTITIONS)]
    for kind, items in sections:
        codec = _CODECS[kind]
        indices = (positions or {}).get(kind) or range(len(items))
        for index, item in zip(indices, items, strict=True):
            row = codec.to_row(item)
            where = "settings" if kind == "settings" else emply_checks.label(kind, index, item)
            problems += limits.row_problems(row, where)
            rows[(row["PartitionKey"], row["RowKey"])] = row
        counts[kind] = len(items)
    return rows, counts, problems


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
