"""The Entra directory as the sync keeps it between runs: users found by id, UPN or
mail without decoding them all, and the groups' nesting.

What a run needs of a 100,000-user directory is usually the few users a delta round
names. So the directory is a `RecordTable` (`shared.run.records`) of users plus a small
group graph (`groups.GroupGraph`), kept in the sync state as one blob; a delta round is
folded into it in place (`fold`), and says which users it touched; the planner then
sees those users only (`snapshot`).

A user's record is ``[*USER_FIELDS values, [group numbers]]`` (its direct groups, by
their number in the group graph), or, for a user the sync has no use for, only
``[id, [group numbers]]``: its attributes are not kept. The sync has a use for a user
in a configured group (directly or through nesting) and for one an Emply user is
linked to (`keep`); a user that later gets a use is read again (`missing`, then
`complete`). So a tenant much larger than the integration's scope costs one id and a
few numbers per user outside it.

Indexes: ``id`` (the id, lower case), ``upn`` and ``mail`` (`model.norm` of the UPN and
of the mail, or UPN when mail is empty: R3's keys; only users whose attributes are
kept), ``group`` (each direct group's number).

Invariants:

- The head (tenant, organization, delta links) and the group graph always describe the
  same Graph state as the records: they are saved together (`to_bytes`).
- Group numbers never change while a group exists, so a record holds numbers, not ids.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.graph import delta, mirror
from shared.reconcile import convert, model
from shared.run import groups as group_graph
from shared.run import records
from shared.run.records import Builder, RecordTable

FIELDS = delta.USER_FIELDS
WIDTH = len(FIELDS)
FULL = WIDTH + 1
"""A record with attributes: the values, then the group numbers."""
INDEXES = ("id", "upn", "mail", "group")
FORMAT = 1

Keep = Callable[[str, Sequence[int], Mapping[int, tuple[str, ...]]], bool]
"""(Entra id, its direct group numbers, the configured groups of each group in a
configured one) -> whether its attributes are kept."""


def keys(record: Sequence[Any]) -> dict[str, list[str]]:
    out = {"id": [str(record[0]).lower()], "group": [str(g) for g in record[-1]]}
    if len(record) == FULL:
        upn = record[1] or ""
        mail = record[2] if record[2] and str(record[2]).strip() else upn
        out["upn"] = [model.norm(upn)]
        out["mail"] = [model.norm(mail)]
    return out


def full(record: Sequence[Any] | None) -> bool:
    return record is not None and len(record) == FULL


def id_only(raw: bytes) -> str | None:
    """The Entra id of a record's JSON text when the record is kept as its id only (its
    second value is the group list), else None: told from the id alone, which costs a
    tenth of decoding a record with attributes."""
    text = raw.decode()
    if not text.startswith('["'):
        return None
    entra_id, end = _DECODER.raw_decode(text, 1)
    return entra_id if isinstance(entra_id, str) and text.startswith(",[", end) else None


_DECODER = json.JSONDecoder()


@dataclasses.dataclass
class Folded:
    """What a delta round changed: the users whose record (or configured groups) changed,
    their records before, and the users whose attributes are now wanted but not held."""

    touched: set[str] = dataclasses.field(default_factory=set)
    before: dict[str, list[Any] | None] = dataclasses.field(default_factory=dict)
    missing: set[str] = dataclasses.field(default_factory=set)


class EntraIndex:
    def __init__(self, table: RecordTable, groups: group_graph.GroupGraph,
                 head: Mapping[str, Any], *, all_kept: bool = False) -> None:
        self.table = table
        self.groups = groups
        self.head: dict[str, Any] = dict(head)
        """The mirror's head: version, tenantId, organization, deltaLinks."""
        self.all_kept = all_kept
        """Every user's attributes are kept (an index made from a whole mirror); else
        users the sync has no use for may have only their ids."""

    def keeps_all(self) -> bool:
        return self.all_kept

    # --- looking up --------------------------------------------------------------

    def row_of(self, entra_id: str) -> int | None:
        wanted = entra_id.lower()
        for row in self.table.find("id", wanted):
            record = self.table.get(row)
            if record is not None and str(record[0]).lower() == wanted:
                return row
        return None

    def record(self, entra_id: str) -> list[Any] | None:
        row = self.row_of(entra_id)
        return None if row is None else self.table.get(row)

    def ids_by(self, index: str, key: str) -> list[str]:
        """Entra ids whose `index` ("upn", "mail") key is `key` (normalised)."""
        out = []
        for row in self.table.find(index, key):
            record = self.table.get(row)
            if record is not None and key in keys(record).get(index, ()):
                out.append(str(record[0]))
        return out

    def members(self, number: int) -> list[str]:
        """The users directly in group `number`."""
        out = []
        for row in self.table.find("group", str(number)):
            record = self.table.get(row)
            if record is not None and number in record[-1]:
                out.append(str(record[0]))
        return out

    def __len__(self) -> int:
        return self.table.held()

    # --- what the planner sees -------------------------------------------------

    def snapshot(self, entra_ids: Iterable[str], *,
                 before: Mapping[str, list[Any] | None] | None = None,
                 groups: group_graph.GroupGraph | None = None) -> model.EntraSnapshot:
        """The planner's view of these users (those whose attributes are held) with every
        group; a group's members are its nested groups and those of these users that are
        direct members, so scope (R2) comes out right for them. With `before` (records
        as they were, by id) and `groups` (the group graph as it was): as it was."""
        users: dict[str, model.EntraUser] = {}
        members: dict[int, set[str]] = {}
        for entra_id in entra_ids:
            if before is not None and entra_id in before:
                record = before[entra_id]
            else:
                record = self.record(entra_id)
            if record is None:
                continue
            user_id = str(record[0])
            if full(record):
                users[user_id] = convert.entra_user(record[:WIDTH])
            for number in record[-1]:
                members.setdefault(number, set()).add(user_id)
        org = self.head.get("organization") or {}
        return model.EntraSnapshot(
            tenant_id=str(self.head.get("tenantId") or org.get("id") or ""),
            users=users,
            groups=(groups or self.groups).snapshot(members),
            on_premises_sync_enabled=bool(org.get("onPremisesSyncEnabled")),
            verified_domains=tuple(org.get("verifiedDomains") or ()),
        )

    # --- a delta round ----------------------------------------------------------

    def fold(self, users: Sequence[Any], groups: Sequence[Any], keep: Keep,
             configured: Sequence[str]) -> Folded:
        """Apply a delta round (its users' and groups' items) in place."""
        folded = Folded()
        self.all_kept = False
        before = self.groups.configured_of_all(configured)
        for item in groups:
            self._fold_group(item, folded)
        after = self.groups.configured_of_all(configured)
        for number in {n for n in (*before, *after) if before.get(n) != after.get(n)}:
            for entra_id in self.members(number):  # nesting moved: their scope may differ
                self._touch(entra_id, folded)
        for item in users:
            self._fold_user(item, folded)
        for entra_id in list(folded.touched):
            self._settle(entra_id, keep, after, folded)
        return folded

    def _touch(self, entra_id: str, folded: Folded) -> tuple[int | None, list[Any] | None]:
        row = self.row_of(entra_id)
        record = None if row is None else self.table.get(row)
        if entra_id not in folded.touched:
            folded.touched.add(entra_id)
            folded.before[entra_id] = record
        return row, record

    def _fold_group(self, item: Any, folded: Folded) -> None:
        group_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(group_id, str):
            return
        if "@removed" in item:
            number = self.groups.number(group_id)
            if number is not None:
                for entra_id in self.members(number):
                    self._set_groups(entra_id, number, False, folded)
                self.groups.remove(group_id)
            return
        number = self.groups.add(group_id)
        if "displayName" in item:
            self.groups.names[number] = item["displayName"]
        for member in item.get("members@delta") or ():
            if not isinstance(member, dict) or not isinstance(member.get("id"), str):
                continue
            kind = member.get("@odata.type")
            if kind is not None and kind not in delta.MEMBER_TYPES:
                continue
            removed = "@removed" in member
            if kind == "#microsoft.graph.group" or (
                    kind is None and self.groups.number(member["id"]) is not None):
                self.groups.nest(number, member["id"], not removed)
            else:
                self._set_groups(member["id"], number, not removed, folded)

    def _set_groups(self, entra_id: str, number: int, member: bool, folded: Folded) -> None:
        row, record = self._touch(entra_id, folded)
        record = list(record) if record is not None else [entra_id, []]
        groups = [g for g in record[-1] if g != number]
        if member:
            groups.append(number)
            groups.sort()
        if groups != record[-1]:
            record[-1] = groups
            self.table.put(row, record)

    def _fold_user(self, item: Any, folded: Folded) -> None:
        entra_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(entra_id, str):
            return
        row, record = self._touch(entra_id, folded)
        if "@removed" in item:
            # "changed" (soft-deleted) and "deleted" alike: the user no longer exists.
            if row is not None:
                self.table.free(row)
            return
        groups = record[-1] if record is not None else []
        if full(record):
            assert record is not None
            values = [item.get(f, v) for f, v in zip(FIELDS, record[:WIDTH], strict=True)]
        elif all(f in item for f in FIELDS):
            values = [item.get(f) for f in FIELDS]
        else:  # a partial item for a user whose attributes were not kept
            self.table.put(row, [entra_id, groups])
            return
        new = [*values, groups]
        if new != record:
            self.table.put(row, new)

    def _settle(self, entra_id: str, keep: Keep, conf: Mapping[int, tuple[str, ...]],
                folded: Folded) -> None:
        """Attributes kept or dropped as `keep` says; wanted and not held: `missing`."""
        row = self.row_of(entra_id)
        record = None if row is None else self.table.get(row)
        if record is None:
            return
        wanted = keep(str(record[0]), record[-1], conf)
        if full(record) and not wanted:
            self.table.put(row, [record[0], record[-1]])
        elif not full(record) and wanted:
            folded.missing.add(str(record[0]))

    def complete(self, found: Mapping[str, list[Any] | None]) -> None:
        """Attributes read for users that lacked them (`reader.read_users`); a user Graph
        no longer knows is removed."""
        for entra_id, values in found.items():
            row = self.row_of(entra_id)
            record = None if row is None else self.table.get(row)
            if values is None:
                if row is not None:
                    self.table.free(row)
                continue
            self.table.put(row, [*values, record[-1] if record is not None else []])

    # --- whole forms --------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {"format": FORMAT, "head": self.head, "groups": self.groups.to_json(),
                "allKept": self.all_kept}

    def to_bytes(self) -> bytes:
        return b"".join(self.pieces())

    def pieces(self) -> list[records.Piece]:
        self.table.meta = self._meta()
        return self.table.pieces()

    def changed_share(self) -> float:
        return self.table.changed_share()

    def delta_bytes(self) -> bytes:
        """What changed since the index was saved whole (`apply_delta` takes it back)."""
        self.table.meta = self._meta()
        return self.table.delta_bytes()

    def apply_delta(self, data: bytes) -> None:
        self.table.apply_delta(data)
        meta = self.table.meta
        if meta.get("format") != FORMAT or not isinstance(meta.get("head"), dict):
            raise ValueError("not an Entra index delta of this format")
        self.head = dict(meta["head"])
        self.groups = group_graph.GroupGraph.from_json(meta.get("groups"))
        self.all_kept = meta.get("allKept") is True

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> EntraIndex:
        """ValueError when `data` is not an index of this format."""
        table = RecordTable.from_bytes(data, keys, INDEXES)
        meta = table.meta
        if meta.get("format") != FORMAT or not isinstance(meta.get("head"), dict):
            raise ValueError("not an Entra index of this format")
        return cls(table, group_graph.GroupGraph.from_json(meta.get("groups")), meta["head"],
                   all_kept=meta.get("allKept") is True)

    def to_mirror(self) -> dict[str, Any]:
        """The whole mirror (`shared.graph.mirror`), for a run that plans everything; a
        user whose attributes are not kept has only its id."""
        users: dict[str, list[Any]] = {}
        members: dict[int, list[str]] = {}
        for _row, record in self.table.records():
            user_id = str(record[0])
            users[user_id] = record[:WIDTH] if full(record) else [user_id] + [None] * (
                WIDTH - 1)
            for number in record[-1]:
                members.setdefault(number, []).append(user_id)
        return {**self.head, "users": users, "groups": self.groups.mirror_groups(members)}

    @classmethod
    def from_mirror(cls, whole: Mapping[str, Any]) -> EntraIndex:
        """The index of a whole mirror (every user's attributes kept)."""
        graph = group_graph.GroupGraph()
        memberships: dict[str, list[int]] = {}
        users = whole.get("users") or {}
        for group_id, group in (whole.get("groups") or {}).items():
            number = graph.add(group_id)
            graph.names[number] = group.get("displayName")
        for group_id, group in (whole.get("groups") or {}).items():
            number = graph.add(group_id)
            for member in group.get("members") or ():
                if graph.number(member) is not None and member not in users:
                    graph.nest(number, member, True)
                else:
                    memberships.setdefault(member, []).append(number)
        builder = Builder(keys, INDEXES)
        for user_id, values in users.items():
            builder.add([*values, sorted(memberships.get(user_id, ()))])
        head = {k: v for k, v in whole.items() if k not in ("users", "groups")}
        return cls(builder.table(), graph, head, all_kept=True)

    def head_usable(self) -> bool:
        return mirror.usable_head(self.head)


def records_of(index: EntraIndex) -> Iterator[list[Any]]:
    for _row, record in index.table.records():
        yield record
