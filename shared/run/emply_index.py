"""The Emply side as the sync keeps it between runs: users and employees found by id,
Entra id, username or e-mail without decoding them all.

The Emply side lives in Table Storage; this is the sync's own compact copy of it (the
entities without `lastChange` and `history`, with their ETags), tagged with the store's
version marker: while the marker has that value, the copy is the Emply side
(`shared.store.emply_tables`). Users and employees are `RecordTable`s
(`shared.run.records`); the other kinds (settings, roles, calendars, events, outbound
events: few in a run that plans from this copy) are kept whole. Two aggregates are kept
up to date with the records, so a run that looks at a few users still knows what R7
and R8 need of all of them: how many users are linked and active (the guard's base),
and which employees have a resignation date to act on (`dated`).

A record is ``[ETag, *values]`` in the order of the field names saved with the table
(`fields`), so a record written before a field was added still reads; a field most
users share a few values of (`CODED`) holds the number of its value in the table's
`values` instead.

Indexes: users by ``id``, ``entra`` (the Entra id, lower case), ``name`` and ``mail``
(`model.norm` of username and e-mail) and ``employee`` (employee id); employees by ``id``
and ``mail``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.emply import document as emply_doc
from shared.reconcile import model
from shared.run import records
from shared.run.records import Builder, RecordTable

Entry = tuple[str | None, dict[str, Any]]
"""(ETag, compact entity): what `protocols.Ledger.entries` gives and `loaded_from` takes."""
HEAVY = frozenset({"lastChange", "history"})
"""Fields the copy leaves out (bulky, not needed to plan: read whole before a rewrite)."""
KINDS = ("users", "employees")
OTHER_KINDS = ("settings", "roles", "calendars", "events", "outboundEvents")
INDEXES = {"users": ("id", "entra", "name", "mail", "employee"),
           "employees": ("id", "mail")}
FORMAT = 1


def _fields(kind: str) -> tuple[str, ...]:
    return tuple(f for f in emply_doc.SCHEMAS[kind] if f not in HEAVY)


FIELDS = {kind: _fields(kind) for kind in KINDS}


def user_keys(item: Mapping[str, Any]) -> dict[str, list[str]]:
    out = {"id": [str(item["id"])], "name": [model.norm(item.get("username"))]}
    if item.get("entraId"):
        out["entra"] = [str(item["entraId"]).lower()]
    if item.get("email"):
        out["mail"] = [model.norm(item["email"])]
    if item.get("employeeId"):
        out["employee"] = [str(item["employeeId"])]
    return out


def employee_keys(item: Mapping[str, Any]) -> dict[str, list[str]]:
    return {"id": [str(item["id"])], "mail": [model.norm(item.get("email"))]}


def linked_active(item: Mapping[str, Any] | None) -> bool:
    """R7's base counts it: linked and active."""
    return item is not None and bool(item.get("entraId")) and item.get(
        "status", "active") == "active"


CODED = frozenset({"status", "roles", "source", "calendarSync", "deactivationReason",
                   "deactivatedBy", "linkedAt", "tenantId", "syncGroups", "roleBasis",
                   "linkedDomain", "resignationDate"})
"""Fields most users share a few values of (a tenant, a status, sets of groups): a record
holds a small number for each, from its table's `values` (half of a record's size)."""


class _Kind:
    """One kind's table, the field order of its records and their shared values."""

    def __init__(self, kind: str, table: RecordTable, fields: Sequence[str],
                 values: Sequence[Any] = ()) -> None:
        self.kind = kind
        self.table = table
        self.fields = tuple(fields)
        self.coded = tuple(f in CODED for f in self.fields)
        self.count = 0
        """Entities held (rows less free ones)."""
        self.values: list[Any] = list(values)
        self._codes: dict[str, int] = {}
        self.reset_codes()

    def reset_codes(self) -> None:
        self._codes = {_code_key(v): n for n, v in enumerate(self.values)}

    def entry(self, row: int) -> Entry | None:
        record = self.table.get(row)
        return None if record is None else self.decode(record)

    def decode(self, record: Sequence[Any]) -> Entry:
        """(ETag, entity) of a record of this table."""
        values = self.values
        item = {}
        for field, coded, value in zip(self.fields, self.coded, record[1:], strict=False):
            if value is not None:
                item[field] = values[value] if coded else value
        return record[0], item

    def record(self, entry: Entry) -> list[Any]:
        etag, item = entry
        return [etag, *(self._code(item.get(f)) if coded else item.get(f)
                        for f, coded in zip(self.fields, self.coded, strict=True))]

    def _code(self, value: Any) -> int | None:
        if value is None:
            return None
        key = _code_key(value)
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self.values)
            self.values.append(value)
        return code

    def find(self, index: str, key: str) -> list[tuple[int, Entry]]:
        """The rows whose entity has `key` in `index` (hash candidates compared)."""
        keyer = user_keys if self.kind == "users" else employee_keys
        out = []
        for row in self.table.find(index, key):
            entry = self.entry(row)
            if entry is not None and key in keyer(entry[1]).get(index, ()):
                out.append((row, entry))
        return out

    def by_id(self, entity_id: str) -> tuple[int, Entry] | None:
        found = self.find("id", entity_id)
        return found[0] if found else None

    def pieces(self) -> list[records.Piece]:
        self.table.meta = {"fields": list(self.fields), "values": self.values,
                           "count": self.count}
        return self.table.pieces()


def _code_key(value: Any) -> Any:
    """What tells shared values apart, without JSON for the usual ones: a text itself, a
    list of texts as a tuple, otherwise the value's JSON text in a 1-tuple (a mapping is
    not hashable; and 1, 1.0 and True are one key to a dict but three values here)."""
    if type(value) is str:
        return value
    if type(value) is list and all(type(v) is str for v in value):
        return ("[]", *value)  # ("[]",) is also the JSON key of [] below: the same value
    return (json.dumps(value, sort_keys=True, separators=(",", ":")),)


def _table(kind: str, fields: Sequence[str]) -> tuple[Any, tuple[str, ...]]:
    """The keys function of a kind's records (its key fields are never coded)."""
    keyer = user_keys if kind == "users" else employee_keys
    assert not CODED & {"id", "username", "email", "entraId", "employeeId"}

    def keys(record: Any) -> dict[str, list[str]]:
        return keyer(dict(zip(fields, record[1:], strict=False)))

    return keys, INDEXES[kind]


class Building:
    """An index made an entity at a time (`protocols.EmplyTables.scan` gives them)."""

    def __init__(self) -> None:
        self._kinds: dict[str, tuple[_Kind, Builder]] = {}
        for kind in KINDS:
            keys, names = _table(kind, FIELDS[kind])
            self._kinds[kind] = (_Kind(kind, RecordTable(keys, names), FIELDS[kind]),
                                 Builder(keys, names))
        self._other: dict[str, list[Entry]] = {k: [] for k in OTHER_KINDS}
        self._linked = 0
        self._dated: dict[str, str] = {}
        self._whole: set[str] = set()

    def take(self, kind: str, etag: str | None, item: dict[str, Any],
             whole: bool = False) -> None:
        if kind in self._other:
            self._other[kind].append((etag, item))
            return
        holder, builder = self._kinds[kind]
        builder.add(holder.record((etag, item)))
        holder.count += 1
        if kind == "users":
            self._linked += linked_active(item)
            if whole:
                self._whole.add(str(item["id"]))
        else:
            _date(self._dated, item)

    def index(self, version: str | None) -> EmplyIndex:
        kinds = {}
        for kind, (holder, builder) in self._kinds.items():
            holder.table = builder.table()
            kinds[kind] = holder
        index = EmplyIndex(version, kinds, self._other, linked=self._linked,
                           dated=self._dated)
        index.whole_users = self._whole
        return index


class EmplyIndex:
    def __init__(self, version: str | None, kinds: Mapping[str, _Kind],
                 other: Mapping[str, list[Entry]], *, linked: int,
                 dated: Mapping[str, str]) -> None:
        self.version = version
        """The store's version marker this copy is the Emply side at (None: unknown)."""
        self.kinds = dict(kinds)
        self.other: dict[str, list[Entry]] = {k: list(other.get(k, ())) for k in OTHER_KINDS}
        self.linked_active = linked
        """Users linked and active (R7's base), kept with the records."""
        self.dated: dict[str, str] = dict(dated)
        """Employee id -> resignation date, for employees not archived (R8 acts on them
        when the date comes)."""
        self.whole_users: set[str] = set()
        """Users just read with empty `lastChange` and `history`: the copy is all of
        them (`protocols.LoadedEmply.whole`). Not saved; a write takes a user out."""

    @property
    def users(self) -> _Kind:
        return self.kinds["users"]

    @property
    def employees(self) -> _Kind:
        return self.kinds["employees"]

    @property
    def settings(self) -> dict[str, Any] | None:
        found = self.other["settings"]
        return found[0][1] if found else None

    # --- building and saving -----------------------------------------------------

    @classmethod
    def from_entries(cls, version: str | None,
                     entries: Mapping[str, Iterable[Entry]]) -> EmplyIndex:
        """The index of a whole Emply side (every kind's entries)."""
        building = Building()
        for kind in (*OTHER_KINDS, *KINDS):
            for etag, item in entries.get(kind, ()):
                building.take(kind, etag, item)
        return building.index(version)

    def to_bytes(self) -> bytes:
        return b"".join(self.pieces())

    def pieces(self) -> list[records.Piece]:
        """One blob, in pieces: a small header line, then each kind's table."""
        bodies = {kind: self.kinds[kind].pieces() for kind in KINDS}
        header = {**self._header(),
                  "sizes": {k: sum(len(p) for p in b) for k, b in bodies.items()}}
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
        return [text + b"\n", *(p for k in KINDS for p in bodies[k])]

    def _header(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": self.version, "other": self.other,
                "linkedActive": self.linked_active, "dated": self.dated}

    def changed_share(self) -> float:
        return max(self.kinds[k].table.changed_share() for k in KINDS)

    def delta_bytes(self) -> bytes:
        """What changed since the index was saved whole (`apply_delta` takes it back)."""
        bodies = {}
        for kind, holder in self.kinds.items():
            holder.table.meta = {"fields": list(holder.fields), "values": holder.values,
                                 "count": holder.count}
            bodies[kind] = holder.table.delta_bytes()
        header = {**self._header(), "sizes": {k: len(b) for k, b in bodies.items()}}
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
        return b"".join([text, b"\n", *(bodies[k] for k in KINDS)])

    def apply_delta(self, data: bytes) -> None:
        end = data.find(b"\n")
        header = json.loads(data[:end])
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("not an Emply index delta of this format")
        position = end + 1
        for kind in KINDS:
            size = header["sizes"][kind]
            holder = self.kinds[kind]
            holder.table.apply_delta(data[position:position + size])
            position += size
            meta = holder.table.meta
            holder.values = list(meta["values"])
            holder.reset_codes()
            holder.count = int(meta.get("count", holder.count))
        self.version = header.get("version")
        self.other = {k: [(e[0], e[1]) for e in header["other"].get(k, ())]
                      for k in OTHER_KINDS}
        self.linked_active = int(header["linkedActive"])
        self.dated = dict(header.get("dated") or {})

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> EmplyIndex:
        """ValueError when `data` is not an index of this format."""
        view = memoryview(data)
        end = records.first_line_end(view)
        try:
            header = json.loads(bytes(view[:end])) if end > 0 else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("not an Emply index of this format")
        position = end + 1
        kinds: dict[str, _Kind] = {}
        for kind in KINDS:
            size = header["sizes"][kind]
            body = view[position:position + size]
            position += size
            fields, values = _saved_meta(body)
            keys, names = _table(kind, fields)
            table = RecordTable.from_bytes(body, keys, names)
            kinds[kind] = _Kind(kind, table, fields, values)
            kinds[kind].count = int(table.meta.get("count", 0))
        if position != len(view):
            raise ValueError("an Emply index's tables do not match its header")
        other = {k: [(e[0], e[1]) for e in header["other"].get(k, ())] for k in OTHER_KINDS}
        return cls(header.get("version"), kinds, other, linked=int(header["linkedActive"]),
                   dated=header.get("dated") or {})

    # --- reading and writing entities --------------------------------------------

    def entries(self, kind: str) -> Iterator[Entry]:
        """Every entity of `kind`, in row order."""
        if kind in OTHER_KINDS:
            yield from self.other[kind]
            return
        holder = self.kinds[kind]
        for row in holder.table.rows():
            entry = holder.entry(row)
            if entry is not None:
                yield entry

    def put(self, kind: str, entry: Entry) -> None:
        """Store an entity as written (a new one gets a new row)."""
        if kind in OTHER_KINDS:
            key = other_key(kind, entry[1])
            kept = [e for e in self.other[kind] if other_key(kind, e[1]) != key]
            self.other[kind] = [*kept, entry]
            return
        holder = self.kinds[kind]
        found = holder.by_id(str(entry[1]["id"]))
        old = found[1][1] if found is not None else None
        holder.table.put(found[0] if found is not None else None, holder.record(entry))
        holder.count += found is None
        if kind == "users":
            self.whole_users.discard(str(entry[1]["id"]))
            self.linked_active += linked_active(entry[1]) - linked_active(old)
        else:
            self.dated.pop(str(entry[1]["id"]), None)
            _date(self.dated, entry[1])

    def remove(self, kind: str, entity_id: str) -> None:
        holder = self.kinds[kind]
        found = holder.by_id(entity_id)
        if found is None:
            return
        holder.table.free(found[0])
        holder.count -= 1
        if kind == "users":
            self.linked_active -= linked_active(found[1][1])
        else:
            self.dated.pop(entity_id, None)

    def due(self, today: dt.date) -> list[str]:
        """Employees whose resignation date has come (R8 archives them)."""
        return sorted(e for e, day in self.dated.items() if day <= today.isoformat())


def _date(dated: dict[str, str], item: Mapping[str, Any]) -> None:
    day = item.get("resignationDate")
    if day and item.get("status") != "archived":
        dated[str(item["id"])] = str(day)[:10]


def other_key(kind: str, item: Mapping[str, Any]) -> tuple[str, ...]:
    """What tells an entity of one of the other kinds from the rest of its kind."""
    if kind == "settings":
        return ()
    return tuple(emply_doc.entity_key(kind, item))


def _saved_meta(body: memoryview) -> tuple[tuple[str, ...], list[Any]]:
    end = records.first_line_end(body)
    header = json.loads(bytes(body[:end])) if end > 0 else {}
    meta = header.get("meta") or {}
    fields, values = meta.get("fields"), meta.get("values")
    if not (isinstance(fields, list) and fields and all(isinstance(f, str) for f in fields)
            and isinstance(values, list)):
        raise ValueError("an Emply index table names no fields or values")
    return tuple(fields), values
