"""Entity <-> table row for the Emply side's kinds, and the layout constants and small
helpers the Azure modules share (see `shared.store.azure_store` for the layout)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from shared.emply import checks as emply_checks
from shared.emply import document as emply_doc
from shared.store import keys, limits, wire

Operation = wire.Operation
Clock = Callable[[], dt.datetime]

PARTITIONS: dict[str, str] = {
    "roles": "role", "users": "user", "employees": "employee", "calendars": "calendar",
    "events": "event", "outboundEvents": "outbound",
}
SETTINGS_PK = "settings"
BUCKETS = keys.BUCKETS
"""Partitions per bucketed kind (`BUCKETED`). Azurite finds the entity a write
replaces by scanning its partition, so a write costs in proportion to the
partition's size (one partition of 20,000 users: about 300 writes/s), and Azure
Table Storage serves one partition at about 2,000 entities/s. 256 buckets keep
about 400 users per partition at 100,000 users (4 full transactions each) and
still fit two hex digits; a kind is read with one range query over its buckets.
Changing the count moves entities: export, then import --replace. Calendars and events
are bucketed too (10,000 users with 2 calendars of 20 events are 400,000 events), by
their *user* (`keys.user_bucket`, the first part of their RowKey), so the mailbox pass
reads the calendars and events of a range of users with one range query per kind
(`MAILBOX_KINDS`, `range_filter`)."""
BUCKETED = frozenset({"users", "employees", "calendars", "events"})
MAILBOX_KINDS = frozenset({"calendars", "events"})
"""Kinds bucketed by their user (the first part of their compound RowKey)."""
MAX_BATCH = 100
MAX_BATCH_BYTES = 3_000_000  # the service limit is 4 MiB per transaction
CONCURRENCY = 8
GENERATION = re.compile(r"[0-9a-f]{32}")
META_PK, VERSION_RK = "meta", "version"
CACHE_FORMAT = 9  # 2: users and employees in hash buckets; 3: in columns; 4: with pks;
# 5: users with roleBasis and linkedDomain; 6: users with entraCreate; 7: calendars and
# events in hash buckets; 8: outbound events with their content and push bookkeeping;
# 9: calendars and events bucketed by user, and no longer in the copy (the mailbox pass
# reads them a range of users at a time)
# Fields a cached copy of the Emply side leaves out (bulky, not needed to plan):
# `read_entities` fetches the whole entity before it is rewritten.
HEAVY_FIELDS: dict[str, frozenset[str]] = {"users": frozenset({"lastChange", "history"})}


bucket = keys.bucket
user_bucket = keys.user_bucket
ALL_BUCKETS = keys.ALL_BUCKETS


def range_filter(kind: str, first: str, last: str) -> str:
    """The OData filter of a bucketed kind's entities in buckets `first`..`last`."""
    partition = CODECS[kind].partition
    if not (first in ALL_BUCKETS and last in ALL_BUCKETS and first <= last):
        raise ValueError(f"no bucket range {first!r}..{last!r}")
    return (f"PartitionKey ge '{partition}-{first}' and "
            f"PartitionKey le '{partition}-{last}'")


def calendar_events_filter(user_id: str, calendar_id: str) -> str:
    """The OData filter of the events of one calendar (one partition, a RowKey range:
    the event RowKeys of a calendar share the prefix `user|calendar|`)."""
    prefix = keys.compound_key((user_id, calendar_id)) + "|"
    codec = CODECS["events"]
    escaped = prefix.replace("'", "''")
    # "|" is followed by "}" in the code table: every RowKey with the prefix sorts
    # between the prefix and the prefix with its last "|" made "}".
    return (f"PartitionKey eq '{codec.pk(prefix)}' and RowKey ge '{escaped}' and "
            f"RowKey lt '{escaped[:-1]}}}'")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: object) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class Codec:
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
        if self.kind in MAILBOX_KINDS:  # by the user: the RowKey's first part
            return f"{self.partition}-{bucket(row_key.partition('|')[0])}"
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


CODECS: dict[str, Codec] = {kind: Codec(kind) for kind in ("settings", *PARTITIONS)}
PARTITION_KINDS = {codec.partition: kind for kind, codec in CODECS.items()}
"""PartitionKey (a bucketed kind's without its "-XX") -> kind."""

def identities(rows: Iterable[Mapping[str, Any]]
                ) -> tuple[emply_checks.Stored, dict[str, set[str]]]:
    """What a plain import validates against, from the stored rows: their ids per kind
    and the users' and employees' values that must stay unique."""
    stored = emply_checks.Stored({"users": [], "employees": []})
    known: dict[str, set[str]] = {"roles": set(), "users": set(), "employees": set()}
    for row in rows:
        pk = row["PartitionKey"]
        kind = PARTITION_KINDS.get(pk) or PARTITION_KINDS.get(pk.rpartition("-")[0])
        if kind in known and isinstance(row.get("id"), str):
            known[kind].add(row["id"])
            if kind in stored.kinds:
                stored.kinds[kind].append(row)
    return stored, known


def import_rows(clean: Mapping[str, Any], positions: Mapping[str, list[int]] | None = None,
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
        codec = CODECS[kind]
        indices = (positions or {}).get(kind) or range(len(items))
        for index, item in zip(indices, items, strict=True):
            row = codec.to_row(item)
            where = "settings" if kind == "settings" else emply_checks.label(kind, index, item)
            problems += limits.row_problems(row, where)
            rows[(row["PartitionKey"], row["RowKey"])] = row
        counts[kind] = len(items)
    return rows, counts, problems


def cache_values(entry: dict[str, Any] | list[Any], fields: Sequence[str]) -> Sequence[Any]:
    """An entry of the compact copy (a loaded entity, or a written one's `cache_row`)
    as values in `fields` order."""
    return entry if isinstance(entry, list) else [entry.get(f) for f in fields]


def chunks(ops: list[Operation]) -> Iterable[list[Operation]]:
    """One partition's operations in transactions: at most 100 and 3 MB each."""
    chunk: list[Operation] = []
    size = 0
    for op in ops:
        op_size = sum(len(v) for v in op[1].values() if isinstance(v, str)) + 200
        if chunk and (len(chunk) >= MAX_BATCH or size + op_size > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(op)
        size += op_size
    if chunk:
        yield chunk


def with_etag(entity: Any) -> dict[str, Any]:
    row = dict(entity)
    row[wire.ETAG] = entity.metadata["etag"]
    return row


async def get_row(table: TableClient, pk: str, rk: str) -> dict[str, Any] | None:
    """One entity with its ETag (`wire.ETAG`), or None."""
    try:
        return with_etag(await table.get_entity(pk, rk))
    except ResourceNotFoundError:
        return None
