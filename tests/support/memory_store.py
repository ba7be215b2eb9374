"""In-memory fakes of the storage protocols (`shared.store.protocols`), for service tests.

One fake per protocol, put together as `MemoryStore` (a `SyncStore`), the way
`EmplyStore` puts the Azure ones together. They keep what the Azure implementations
promise and nothing more: the same lease rules, conditional writes against the ETags
a load read, a version marker that moves on every write, a compact copy served only
while the marker has not moved, JSON round trips for what Azure stores as JSON.
`tests/store/test_protocol_contract.py` runs the same cases against both, so a fake
that drifts from Azure fails there. Test support only: nothing deployed imports it.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import datetime as dt
import itertools
import json
import secrets
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any

from shared.emply import checks as emply_checks
from shared.emply import document as emply_doc
from shared.store import chunked_json, codec, errors, keys, unique_index
from shared.store.feed_chunks import Chunk
from shared.store.protocols import (
    EMPLY_KINDS,
    LEASE_TTL_SECONDS,
    Debounce,
    LoadedEmply,
    SubscriptionRecord,
)
from shared.store.runlog import OPTIONAL_SUMMARY_FIELDS, SUMMARY_FIELDS, summary
from shared.store.syncstate import INDEX_PARTS, index_blob, state_part_blob

_FORMAT = "memory-1"
_LEASE_FIELDS = ("runId", "trigger", "startedAt", "expiresAt", "renewedAt")
_KINDS = ("settings", *codec.PARTITIONS)


def _json(value: Any) -> Any:
    """A JSON round trip, as Azure stores it (a run's change log written a block at a time)."""
    return json.loads("".join(chunked_json.plain_pieces(value)))


class _Etags:
    def __init__(self) -> None:
        self._next = itertools.count(1)

    def new(self) -> str:
        return f'W/"{next(self._next)}"'


# --- RunLease, RunMarker ----------------------------------------------------------------


class MemoryRunLease:
    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self.lease: dict[str, Any] | None = None
        self.marker: dict[str, Any] | None = None
        self._etags = _Etags()

    async def acquire_lease(self, run_id: str, trigger: str, *,
                            ttl_seconds: int = LEASE_TTL_SECONDS) -> dict[str, Any] | None:
        now = self._clock()
        entity = {"runId": run_id, "trigger": trigger, "startedAt": codec.iso(now),
                  "renewedAt": codec.iso(now),
                  "expiresAt": codec.iso(now + dt.timedelta(seconds=ttl_seconds))}
        current, taken = self.lease, None
        if current is not None:
            expires = codec.parse_time(current.get("expiresAt"))
            if current["runId"] != run_id and expires is not None and expires > now:
                raise errors.RunInProgress(str(current["runId"]), str(current["trigger"]),
                                           str(current["startedAt"]))
            if current["runId"] == run_id:
                entity["startedAt"] = current["startedAt"]
            else:
                taken = {k: current.get(k) for k in _LEASE_FIELDS}
        self.lease = entity
        return taken

    async def renew_lease(self, run_id: str, *, ttl_seconds: int = LEASE_TTL_SECONDS) -> None:
        if self.lease is None or self.lease["runId"] != run_id:
            raise errors.LeaseLost(run_id)
        now = self._clock()
        self.lease = {**self.lease, "renewedAt": codec.iso(now),
                      "expiresAt": codec.iso(now + dt.timedelta(seconds=ttl_seconds))}

    async def release_lease(self, run_id: str) -> None:
        if self.lease is not None and self.lease["runId"] == run_id:
            self.lease = None

    async def current_lease(self) -> dict[str, Any] | None:
        return None if self.lease is None else {k: self.lease.get(k) for k in _LEASE_FIELDS}

    async def create_marker(self, run_id: str, queued_at: str) -> bool:
        if self.marker is not None:
            return False
        self.marker = {"runId": run_id, "queuedAt": queued_at, "etag": self._etags.new()}
        return True

    async def read_marker(self) -> dict[str, Any] | None:
        return None if self.marker is None else dict(self.marker)

    async def delete_marker(self, etag: str) -> None:
        if self.marker is not None and self.marker["etag"] == etag:
            self.marker = None


# --- RunLog -------------------------------------------------------------------------------


class MemoryRunLog:
    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self.reports: dict[str, dict[str, Any]] = {}
        self._order: dict[str, tuple[int, str]] = {}

    async def save_run(self, report: Mapping[str, Any]) -> None:
        run_id = report.get("runId")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError("run report needs a runId")
        started = (codec.parse_time(report.get("queuedAt"))
                   or codec.parse_time(report.get("startedAt")) or self._clock())
        self.reports[run_id] = _json(report)
        self._order[run_id] = (-int(started.timestamp() * 1000), keys.encode_key(run_id))

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        report = self.reports.get(run_id)
        return None if report is None else _json(report)

    async def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        newest = sorted(self.reports, key=self._order.__getitem__)[:max(limit, 0)]
        out = []
        for run_id in newest:
            full = {k: v for k, v in summary(self.reports[run_id]).items() if v is not None}
            out.append({k: full.get(k) for k in SUMMARY_FIELDS
                        if k in full or k not in OPTIONAL_SUMMARY_FIELDS}
                       | {"counts": full.get("counts") or {}})
        return _json(out)

    async def last_run(self) -> dict[str, Any] | None:
        runs = await self.list_runs(1)
        return runs[0] if runs else None


# --- SyncStateStore -------------------------------------------------------------------


class MemorySyncState:
    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.indexes: dict[str, bytes] = {}
        self.parts: dict[str, Any] = {}

    async def load_state_part(self, name: str) -> Any:
        return _json(self.parts.get(state_part_blob(name)))

    async def save_state_part(self, name: str, value: Any) -> None:
        self.parts[state_part_blob(name)] = _json(value)

    async def load_sync_state(self) -> dict[str, Any] | None:
        return _json(self.state)

    async def save_sync_state(self, state: Mapping[str, Any]) -> None:
        self.state = _json(state)

    async def load_index(self, generation: str, part: str) -> bytes | None:
        return self.indexes.get(index_blob(part, generation))

    async def save_index(self, generation: str, part: str,
                         data: Sequence[bytes | bytearray | memoryview]) -> None:
        self.indexes[index_blob(part, generation)] = b"".join(data)

    async def delete_index(self, generation: str) -> None:
        for part in INDEX_PARTS:
            self.indexes.pop(index_blob(part, generation), None)


# --- EmplyTables, EmplyGenerations --------------------------------------------------------


@dataclasses.dataclass(slots=True)
class MemoryLedger:
    """`protocols.Ledger`: the ETags a load read, its entities, and the marker it left."""

    etags: dict[tuple[str, str], str]
    known: dict[str, dict[str, dict[str, Any]]] | None
    marker: str | None
    ours: bool
    partial: bool = False

    def cache(self) -> dict[str, Any] | None:
        if self.known is None or not self.ours or self.marker is None or self.partial:
            return None
        return {"format": _FORMAT, "version": self.marker,
                "kinds": {kind: [[k, self.etags.get((kind, k)), item]
                                 for k, item in sorted(items.items())]
                          for kind, items in self.known.items()}}

    def version(self) -> str | None:
        return self.marker if self.ours else None

    def entries(self, kind: str, ids: Iterable[str] | None = None
                ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        items = (self.known or {}).get(kind) or {}
        kc = codec.CODECS[kind]
        row_keys = items if ids is None else (kc.row_key({"id": i}) for i in ids)
        for key in row_keys:
            if key in items:
                yield self.etags.get((kind, key)), copy.deepcopy(items[key])


def _ledger(loaded: LoadedEmply | None) -> MemoryLedger:
    if loaded is None:
        return MemoryLedger({}, None, None, False)
    assert isinstance(loaded.ledger, MemoryLedger), "not loaded from a MemoryStore"
    return loaded.ledger


def _light(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    heavy = codec.HEAVY_FIELDS.get(kind, frozenset())
    return {k: v for k, v in item.items() if k not in heavy}


class MemoryEmplyTables:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, tuple[dict[str, Any], str]]] = {k: {} for k in _KINDS}
        """kind -> row key -> (entity as the table gives it back, ETag)."""
        self.version: str | None = None
        self.generation_id = ""
        self._etags = _Etags()

    def _document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {kind: [copy.deepcopy(item) for _k, (item, _e)
                                      in sorted(self.rows[kind].items())]
                               for kind in codec.PARTITIONS}
        settings = self.rows["settings"].get(codec.SETTINGS_PK)
        doc["settings"] = copy.deepcopy(settings[0]) if settings else None
        return doc

    def _bump(self, ledger: MemoryLedger) -> None:
        ledger.ours = ledger.ours and ledger.marker == self.version
        self.version = ledger.marker = uuid.uuid4().hex

    async def load_emply(self, cache: Mapping[str, Any] | None = None, *,
                         sparse: bool = False,
                         kinds: Collection[str] = EMPLY_KINDS) -> LoadedEmply:
        if (cache and self.version and cache.get("format") == _FORMAT
                and cache.get("version") == self.version
                and all(k in cache["kinds"] for k in kinds)):
            ledger = MemoryLedger({}, {}, self.version, True)
            doc: dict[str, Any] = {"settings": None, **{k: [] for k in codec.PARTITIONS}}
            for kind, entries in cache["kinds"].items():
                if kind not in kinds:
                    continue
                assert ledger.known is not None
                ledger.known[kind] = {k: item for k, _etag, item in entries}
                ledger.etags.update(((kind, k), etag) for k, etag, _item in entries if etag)
                items = [copy.deepcopy(item) for _k, _etag, item in entries]
                if kind == "settings":
                    doc["settings"] = items[0] if items else None
                else:
                    doc[kind] = items
            return LoadedEmply(doc=doc, served_from_cache=True, ledger=ledger)
        ledger = MemoryLedger({(kind, k): etag for kind, rows in self.rows.items()
                               if kind in kinds for k, (_item, etag) in rows.items()},
                              {kind: {k: _light(kind, item) for k, (item, _e) in rows.items()}
                               for kind, rows in self.rows.items() if kind in kinds},
                              self.version, self.version is not None)
        doc = self._document()
        for kind in codec.PARTITIONS:
            if kind not in kinds:
                doc[kind] = []
        if "settings" not in kinds:
            doc["settings"] = None
        return LoadedEmply(doc=doc, served_from_cache=False, ledger=ledger)

    async def read_entities(self, kind: str, ids: Iterable[str], *,
                            loaded: LoadedEmply | None = None,
                            skip_conflicts: bool = False) -> dict[str, dict[str, Any]]:
        ledger, kc, out = _ledger(loaded), codec.CODECS[kind], {}
        for entity_id in dict.fromkeys(ids):
            key = kc.row_key({"id": entity_id})
            row, known = self.rows[kind].get(key), ledger.etags.get((kind, key))
            if known is not None and (row is None or row[1] != known):
                if skip_conflicts:
                    continue
                raise errors.ConcurrentChangeError(kind, entity_id)
            if row is not None:
                out[entity_id] = copy.deepcopy(row[0])
        return out

    async def write_entities(self, kind: str, items: Sequence[Mapping[str, Any]], *,
                             loaded: LoadedEmply | None = None) -> None:
        if not items:
            return
        ledger, kc = _ledger(loaded), codec.CODECS[kind]
        rows = [kc.from_row(kc.to_row(item)) for item in items]  # as the table gives it back
        for row in rows:  # all checked first: nothing is written when one is stale
            key = kc.row_key(row)
            known, current = ledger.etags.get((kind, key)), self.rows[kind].get(key)
            if known is not None and (current is None or current[1] != known):
                raise errors.ConcurrentChangeError(kind, str(row.get("id")))
        refused = self._taken(kind, rows)
        if refused:
            owner, field = next(iter(sorted(refused.items())))
            raise errors.UniqueTaken(kind, owner, field)
        self._bump(ledger)
        for row in rows:
            key, etag = kc.row_key(row), self._etags.new()
            self.rows[kind][key] = (row, etag)
            ledger.etags[(kind, key)] = etag
            if ledger.known is not None and kind in ledger.known:
                ledger.known[kind][key] = _light(kind, row)
        self._bump(ledger)

    async def write_built(self, kind: str, ids: Iterable[str],
                          build: Callable[[str], Mapping[str, Any]], *,
                          loaded: LoadedEmply | None = None,
                          skip_conflicts: bool = False) -> list[str]:
        if kind not in codec.BUCKETED:
            raise ValueError(f"write_built takes users or employees, not {kind}")
        items = [build(i) for i in ids]
        skipped: list[str] = []
        if skip_conflicts:  # the stale ones left out, the rest written
            ledger, kc = _ledger(loaded), codec.CODECS[kind]
            for item in items:
                key = kc.row_key(item)
                known, current = ledger.etags.get((kind, key)), self.rows[kind].get(key)
                if known is not None and (current is None or current[1] != known):
                    skipped.append(str(item["id"]))
            skipped += [i for i in self._taken(kind, items) if i not in skipped]
            if skipped:
                ledger.ours = False  # someone else wrote: no cached copy is right
                items = [item for item in items if str(item["id"]) not in skipped]
        await self.write_entities(kind, items, loaded=loaded)
        return skipped

    def _taken(self, kind: str, items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Users (id -> field) whose username or Entra id another user holds (the Azure
        store's uniqueness index, `shared.store.unique_index`)."""
        if kind != "users":
            return {}
        writing = {str(item["id"]) for item in items}
        holders: dict[tuple[str, str], str] = {}
        for row, _etag in self.rows["users"].values():
            if str(row["id"]) not in writing:
                for claim in unique_index.claims_of([row]):
                    holders[(claim.field, claim.key)] = claim.owner
        refused: dict[str, str] = {}
        for claim in unique_index.claims_of(items):
            holder = holders.setdefault((claim.field, claim.key), claim.owner)
            if holder != claim.owner:
                refused.setdefault(claim.owner, claim.field)
        return refused

    async def delete_entities(self, kind: str, items: Iterable[Mapping[str, Any]], *,
                              loaded: LoadedEmply | None = None) -> None:
        ledger, kc = _ledger(loaded), codec.CODECS[kind]
        row_keys = [kc.row_key(item) for item in items]
        if not row_keys:
            return
        self._bump(ledger)
        for key in row_keys:
            self.rows[kind].pop(key, None)
            ledger.etags.pop((kind, key), None)
            if ledger.known is not None and kind in ledger.known:
                ledger.known[kind].pop(key, None)
        self._bump(ledger)

    async def current_version(self) -> str | None:
        return self.version

    async def scan(self, take: Callable[[str, str | None, dict[str, Any], bool], None]
                   ) -> str | None:
        heavy = codec.HEAVY_FIELDS.get("users", frozenset())
        for kind in _KINDS:
            for _key, (item, etag) in sorted(self.rows[kind].items()):
                take(kind, etag, _light(kind, copy.deepcopy(item)),
                     not any(item.get(name) for name in heavy))
        return self.version

    def write_unit(self, kind: str, entity_id: str) -> str:
        kc = codec.CODECS[kind]
        return kc.pk(kc.row_key({"id": entity_id}))

    async def loaded_from(self, version: str,
                          entries: Mapping[str, Iterable[tuple[str | None, dict[str, Any]]]],
                          *, whole: Collection[str] = ()) -> LoadedEmply:
        ledger = MemoryLedger({}, {kind: {} for kind in _KINDS}, version,
                              self.version == version, partial=True)
        doc: dict[str, Any] = {"settings": None, **{kind: [] for kind in codec.PARTITIONS}}
        for kind, found in entries.items():
            kc = codec.CODECS[kind]
            for etag, item in found:
                key = kc.row_key(item)
                if etag:
                    ledger.etags[(kind, key)] = etag
                assert ledger.known is not None
                ledger.known[kind][key] = copy.deepcopy(item)
                if kind == "settings":
                    doc["settings"] = copy.deepcopy(item)
                else:
                    doc[kind].append(copy.deepcopy(item))
        return LoadedEmply(doc=doc, served_from_cache=True, ledger=ledger,
                           whole=frozenset(whole))

    async def export_document(self) -> dict[str, Any]:
        return self._document()

    async def import_document(self, doc: object, *, replace: bool = False,
                              before_switch: Callable[[], Awaitable[None]] | None = None,
                              ) -> dict[str, int]:
        stored = None
        known: dict[str, set[str]] = {"roles": set(), "users": set(), "employees": set()}
        calendars: set[tuple[str, str]] = set()
        if not replace:
            stored = emply_checks.Stored({k: [item for item, _e in self.rows[k].values()]
                                          for k in ("users", "employees")})
            known = {k: {str(item["id"]) for item, _e in self.rows[k].values()}
                     for k in known}
            calendars = {(str(c["userId"]), str(c["id"]))
                         for c, _e in self.rows["calendars"].values()}
        clean = emply_doc.validate_document(
            doc, known_role_ids=known["roles"], known_user_ids=known["users"],
            known_employee_ids=known["employees"], stored=stored, known_calendars=calendars)
        if before_switch is not None:
            await before_switch()
        if replace:
            self.rows = {k: {} for k in _KINDS}
        sections = [("settings", [clean["settings"]] if clean["settings"] is not None else []),
                    *((kind, clean[kind]) for kind in codec.PARTITIONS)]
        for kind, items in sections:
            kc = codec.CODECS[kind]
            for item in items:
                row = kc.from_row(kc.to_row(item))
                self.rows[kind][kc.row_key(row)] = (row, self._etags.new())
        self.version = uuid.uuid4().hex
        self.generation_id = uuid.uuid4().hex  # an import makes a new generation
        return {kind: len(items) for kind, items in sections}

    async def remove_stale_generations(self) -> int:
        return 0  # one generation, replaced in place


# --- NotificationRecords, CursorKeys --------------------------------------------------------


class MemoryNotificationRecords:
    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._etags = _Etags()
        self.subscription_records: dict[str, SubscriptionRecord] = {}
        self.debounce = Debounce(None, None)
        self.lifecycle_claims: dict[tuple[str, str], str] = {}
        self._key = secrets.token_bytes(32)

    async def subscriptions(self) -> dict[str, SubscriptionRecord]:
        return dict(self.subscription_records)

    async def save_subscription(self, record: SubscriptionRecord, *,
                                expected: SubscriptionRecord | None) -> bool:
        current = self.subscription_records.get(record.resource)
        if (current is None) != (expected is None) or (
                current is not None and expected is not None and current.etag != expected.etag):
            return False
        self.subscription_records[record.resource] = dataclasses.replace(
            record, etag=self._etags.new())
        return True

    async def delete_subscription(self, record: SubscriptionRecord) -> None:
        current = self.subscription_records.get(record.resource)
        if current is not None and current.etag == record.etag:
            del self.subscription_records[record.resource]

    async def read_debounce(self) -> Debounce:
        return self.debounce

    async def write_debounce(self, seen: Debounce, scheduled_at: str) -> bool:
        if seen.etag != self.debounce.etag:
            return False
        self.debounce = Debounce(scheduled_at, self._etags.new())
        return True

    async def claim_lifecycle(self, subscription_id: str, event: str, now: str, *,
                              ttl_seconds: int | None = None) -> bool:
        claimed = self.lifecycle_claims.get((subscription_id, event))
        if claimed is not None:
            then, moment = codec.parse_time(claimed), codec.parse_time(now)
            if ttl_seconds is None or then is None or moment is None \
                    or moment - then < dt.timedelta(seconds=ttl_seconds):
                return False
        self.lifecycle_claims[(subscription_id, event)] = now
        return True

    async def release_lifecycle(self, subscription_id: str, event: str) -> None:
        self.lifecycle_claims.pop((subscription_id, event), None)

    async def cursor_key(self) -> bytes:
        return self._key


# --- all of them ------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MemoryStore(MemoryRunLease, MemoryRunLog, MemorySyncState, MemoryEmplyTables,
                  MemoryNotificationRecords):
    """`protocols.SyncStore` in memory."""

    def __init__(self, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        MemoryRunLease.__init__(self, clock)
        MemoryRunLog.__init__(self, clock)
        MemorySyncState.__init__(self)
        MemoryEmplyTables.__init__(self)
        MemoryNotificationRecords.__init__(self, clock)
        self.change_feed = MemoryChunks()
        """The change feed's chunks."""
        self.mailboxes = MemoryMailboxSide(self)
        self.states = MemoryMailboxStates()

    def feed_chunks(self) -> MemoryChunks:
        return self.change_feed

    def mailbox_side(self) -> MemoryMailboxSide:
        return self.mailboxes

    def mailbox_states(self) -> MemoryMailboxStates:
        return self.states

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryChunks:
    """`FeedChunks` in memory."""

    def __init__(self) -> None:
        self.chunks: dict[str, Chunk] = {}

    async def put(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self.chunks[chunk.key] = chunk

    async def from_key(self, key: str) -> AsyncIterator[Chunk]:
        keys = sorted(self.chunks)
        for found in keys[bisect.bisect_left(keys, key):]:
            yield self.chunks[found]

    async def delete_before(self, key: str) -> int:
        old = [k for k in self.chunks if k < key]
        for k in old:
            del self.chunks[k]
        return len(old)


class MemoryPhotoBlobs:
    """`shared.store.photo_blobs.PhotoBlobs` in memory."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str]] = {}

    async def put(self, user_id: str, data: bytes, content_type: str) -> None:
        self.blobs[user_id] = (data, content_type)

    async def delete(self, user_id: str) -> None:
        self.blobs.pop(user_id, None)

    async def get(self, user_id: str) -> tuple[bytes, str] | None:
        return self.blobs.get(user_id)



# --- Mailboxes --------------------------------------------------------------------------


class MemoryMailboxSide:
    """`MailboxSide` over a `MemoryEmplyTables`' calendars and events (no marker moved)."""

    def __init__(self, tables: MemoryEmplyTables) -> None:
        self._tables = tables

    async def generation(self) -> str:
        return self._tables.generation_id

    def _in(self, kind: str, first: str, last: str) -> list[tuple[dict[str, Any], str]]:
        return [(copy.deepcopy(item), etag)
                for _k, (item, etag) in sorted(self._tables.rows[kind].items())
                if first <= codec.user_bucket(str(item["userId"])) <= last]

    async def read_calendars(self, first: str, last: str) -> list[tuple[dict[str, Any], str]]:
        return self._in("calendars", first, last)

    async def read_events(self, first: str, last: str) -> list[dict[str, Any]]:
        return [item for item, _etag in self._in("events", first, last)]

    async def read_calendar_events(self, user_id: str, calendar_id: str
                                   ) -> list[dict[str, Any]]:
        return [copy.deepcopy(item) for _k, (item, _e) in
                sorted(self._tables.rows["events"].items())
                if (item["userId"], item["calendarId"]) == (user_id, calendar_id)]

    async def write_calendars(self, items: Sequence[tuple[Mapping[str, Any], str | None]]
                              ) -> set[str]:
        rows, kc = self._tables.rows["calendars"], codec.CODECS["calendars"]
        stale = {str(item["userId"]) for item, etag in items if etag is not None
                 and (kc.row_key(item) not in rows or rows[kc.row_key(item)][1] != etag)}
        for item, _etag in items:
            if str(item["userId"]) not in stale:
                row = kc.from_row(kc.to_row(item))
                rows[kc.row_key(row)] = (row, self._tables._etags.new())
        return stale

    async def write_events(self, items: Iterable[Mapping[str, Any]]) -> None:
        rows, kc = self._tables.rows["events"], codec.CODECS["events"]
        for item in items:
            row = kc.from_row(kc.to_row(item))
            rows[kc.row_key(row)] = (row, self._tables._etags.new())

    async def delete(self, kind: str, keys: Iterable[Mapping[str, Any]]) -> None:
        kc = codec.CODECS[kind]
        for item in keys:
            self._tables.rows[kind].pop(kc.row_key(item), None)


class MemoryMailboxStates:
    """`MailboxStates` in memory (JSON round trips, as the table's text)."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.index: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, tuple[dict[str, Any], str]]] = {}
        self._etags = _Etags()

    async def read_states(self, first: str, last: str) -> dict[str, dict[str, Any]]:
        return {u: _json(s) for u, s in sorted(self.states.items())
                if first <= codec.user_bucket(u) <= last}

    async def write_states(self, states: Mapping[str, Mapping[str, Any] | None]) -> None:
        for user_id, state in states.items():
            if state is None:
                self.states.pop(user_id, None)
            else:
                self.states[user_id] = _json(state)

    async def read_index(self) -> dict[str, dict[str, Any]]:
        return {b: _json(v) for b, v in sorted(self.index.items())}

    async def write_index(self, rows: Mapping[str, Mapping[str, Any] | None]) -> None:
        for bucket, value in rows.items():
            if value is None:
                self.index.pop(bucket, None)
            else:
                self.index[bucket] = _json(value)

    async def read_records(self, partition_key: str) -> dict[str, tuple[dict[str, Any], str]]:
        return {k: (_json(v), e) for k, (v, e) in
                sorted(self.records.get(partition_key, {}).items())}

    async def put_record(self, partition_key: str, key: str, value: Mapping[str, Any], *,
                         etag: str | None = None, create: bool = False) -> str | None:
        part = self.records.setdefault(partition_key, {})
        current = part.get(key)
        if (create and current is not None) or (
                etag is not None and (current is None or current[1] != etag)):
            return None
        new = self._etags.new()
        part[key] = (_json(value), new)
        return new

    async def delete_record(self, partition_key: str, key: str, *,
                            etag: str | None = None) -> bool:
        part = self.records.get(partition_key, {})
        current = part.get(key)
        if current is not None and etag is not None and current[1] != etag:
            return False
        part.pop(key, None)
        return True
