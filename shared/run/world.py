"""The world a run that plans by parts looks at: both indexes as R3's keys see them
(`IndexWorld`, a `touched.World`), the planner's snapshots of a part (`part_view`), and
the whole world cut into parts (`parts_of_everything`).

A part is closed under R3's keys (`shared.reconcile.touched`), so its plan is the whole
plan restricted to it. Cutting everything into parts (a first run, changed settings)
keeps a run's memory to one part's users at a time: entities that share a key are put
together (union-find over the keys, the same edges `touched.closure` walks), and the
users R7 may deactivate go in the last part, with everyone their keys reach, so the
guard sees all of a run's deactivations at once.
"""

from __future__ import annotations

import dataclasses
import json
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.reconcile import convert, model, scope, touched
from shared.run import emply_index, entra_index, records
from shared.run import groups as group_graph
from shared.run.emply_index import EmplyIndex
from shared.run.entra_index import EntraIndex

PART_SIZE = 10_000
"""Entities (Entra users, Emply users, employees) a part holds at most, but for one
part whose keys tie more together."""


class IndexWorld:
    """`touched.World` over the two indexes."""

    def __init__(self, entra: EntraIndex, emply: EmplyIndex) -> None:
        self.entra_index = entra
        self.emply_index = emply

    def entra(self, entra_id: str) -> touched.EntraKeys | None:
        record = self.entra_index.record(entra_id)
        if record is None or not entra_index.full(record):
            return None
        return touched.entra_keys(convert.entra_user(record[:entra_index.WIDTH]))

    def user(self, user_id: str) -> touched.UserKeys | None:
        found = self.emply_index.users.by_id(user_id)
        return None if found is None else touched.user_keys(convert.emply_user(found[1][1]))

    def employee(self, employee_id: str) -> touched.EmployeeKeys | None:
        found = self.emply_index.employees.by_id(employee_id)
        if found is None:
            return None
        return touched.EmployeeKeys(employee_id, model.norm(found[1][1].get("email")))

    def entra_with(self, index: touched.EntraIndex, key: str) -> list[str]:
        return self.entra_index.ids_by(index, key)

    def users_with(self, index: touched.UserIndex, key: str) -> list[str]:
        return [str(entry[1]["id"]) for _row, entry in self.emply_index.users.find(
            index, key)]

    def employees_with(self, key: str) -> list[str]:
        return [str(entry[1]["id"]) for _row, entry in self.emply_index.employees.find(
            "mail", key)]


# --- the planner's view of a part ------------------------------------------------------


@dataclasses.dataclass
class PartView:
    """A part as the planner sees it, and the Emply entities it is made of (for the
    `LoadedEmply` its writes are guarded by)."""

    entra: model.EntraSnapshot
    emply: model.EmplySnapshot
    entries: dict[str, list[emply_index.Entry]]
    outside: model.Outside


def part_view(part: touched.Touched, entra: EntraIndex, emply: EmplyIndex, *,
              before: Mapping[str, list[Any] | None] | None = None,
              groups: group_graph.GroupGraph | None = None) -> PartView:
    """The snapshots of `part`; with `before` (records of changed Entra users as they
    were) and `groups` (the group graph as it was), the part as it was."""
    users = sorted((entry for u in part.users if (entry := _entry(emply.users, u))),
                   key=lambda e: str(e[1]["id"]))
    employees = sorted((entry for e in part.employees
                        if (entry := _entry(emply.employees, e))),
                       key=lambda e: str(e[1]["id"]))
    items = [item for _etag, item in users]
    doc = {"users": items, "employees": [item for _e, item in employees],
           **{kind: [item for _e, item in emply.other[kind]]
              for kind in emply_index.OTHER_KINDS if kind != "settings"}}
    return PartView(
        entra=entra.snapshot(part.entra, before=before, groups=groups),
        emply=convert.emply_snapshot(doc),
        entries={"users": users, "employees": employees,
                 **{kind: list(emply.other[kind]) for kind in emply_index.OTHER_KINDS}},
        outside=model.Outside(emply.linked_active - sum(
            emply_index.linked_active(item) for item in items)),
    )


def _entry(kind: Any, entity_id: str) -> emply_index.Entry | None:
    found = kind.by_id(entity_id)
    return None if found is None else found[1]


# --- everything, in parts ------------------------------------------------------------

UnitOf = Callable[[str, str], str]
"""(kind, id) -> the store's write unit of that entity (`protocols.EmplyTables.write_unit`)."""


def parts_of_everything(entra: EntraIndex, emply: EmplyIndex, settings: model.Settings,
                        unit_of: UnitOf, held: Iterable[str] = (), size: int | None = None
                        ) -> Iterator[touched.Touched]:
    """Every entity, in parts closed under R3's keys; the users R7 may deactivate (and
    `held`: those the last run held) come in the last part. The other parts hold whole
    write units of the users they write (a user written by two parts would take two
    transactions where one does).

    Memory: one number per entity and one per key (entities are rows of the indexes;
    keys are 40-bit hashes, sorted, so equal keys are neighbours): a few MB at 100,000
    users, where sets of key texts took a hundred. An Entra user kept as its id only
    (out of scope, not linked) that shares no key with anything is in no part: no plan
    has anything to say of it, so a tenant much larger than the scope is cut into the
    parts of its scope."""
    size = size or PART_SIZE
    nodes = _Nodes(entra, emply)
    nodes.mark_bare()
    if nodes.live() <= size:  # one part: the whole world
        yield nodes.touched(n for n in range(len(nodes)) if not nodes.bare[n])
        return
    nodes.join(settings, set(held), unit_of)
    yield from nodes.parts(size)


class _Nodes:
    """The entities as numbers: Entra rows, then user rows, then employee rows."""

    def __init__(self, entra: EntraIndex, emply: EmplyIndex) -> None:
        self.entra, self.emply = entra, emply
        self.first_user = len(entra.table)
        self.first_employee = self.first_user + len(emply.users.table)
        self.count = self.first_employee + len(emply.employees.table)
        self.parent = array("I", range(self.count))
        self.unit = array("i", [-1]) * self.count
        self.last: set[int] = set()
        """Roots of the components that go in the last part (R7's)."""
        self.bare = bytearray(self.count)
        """1: a free row, or an Entra user kept as its id only that shares no key with
        another entity (`mark_bare`): in no part."""

    def __len__(self) -> int:
        return self.count

    def _find(self, node: int) -> int:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def _union(self, a: int, b: int) -> None:
        a, b = self._find(a), self._find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def live(self) -> int:
        """How many entities some part holds."""
        return self.count - self.bare.count(1)

    def mark_bare(self) -> None:
        """Mark free rows, and the Entra users kept as their ids only whose keys (their
        id's) no Emply user has: one linked to them, or the user the sync made for them
        (`touched.NEW_USER_PREFIX`). Employees have no key of an Entra id."""
        users = self.emply.users
        for row in range(len(self.entra.table)):
            raw = self.entra.table.raw(row)
            if raw is None:
                self.bare[row] = 1
                continue
            entra_id = entra_index.id_only(raw)
            self.bare[row] = entra_id is not None and not (
                users.find("entra", entra_id.lower())
                or any(users.by_id(touched.NEW_USER_PREFIX + i) is not None
                       for i in {entra_id, entra_id.lower()}))
        for holder, first in ((users, self.first_user), (self.emply.employees,
                                                         self.first_employee)):
            for row in range(len(holder.table)):
                self.bare[first + row] = holder.table.raw(row) is None

    def join(self, settings: model.Settings, held: set[str], unit_of: UnitOf) -> None:
        """Entities that share a key, joined; each one's write unit; R7's users marked."""
        keyed = array("Q")
        units: dict[str, int] = {}
        conf = self.entra.groups.configured_of_all([g.group_id for g in settings.groups])
        guarded: list[int] = []
        for node, kind, item in self._items():
            if self.bare[node]:
                continue
            if kind == "entra":
                keys = _entra_keys(item)
                unit = unit_of("users", touched.NEW_USER_PREFIX + str(item[0]).lower())
            elif kind == "user":
                user = convert.emply_user(item)
                keys = _user_keys(user)
                unit = unit_of("users", user.id)
                if user.id in held or _may_leave(user, self.entra, settings, conf):
                    guarded.append(node)
            else:
                keys = [f"P:{item['id']}", f"M:{model.norm(item.get('email'))}"]
                unit = ""
            keyed.extend(records.key_hash(k) << records.ROW_BITS | node for k in keys)
            self.unit[node] = units.setdefault(unit, len(units)) if unit else -1
        keyed = array("Q", sorted(keyed))
        previous = -1
        for entry in keyed:
            if entry >> records.ROW_BITS == previous >> records.ROW_BITS and previous >= 0:
                self._union(previous & _NODE_MASK, entry & _NODE_MASK)
            previous = entry
        self.last = {self._find(n) for n in guarded}

    def _items(self) -> Iterator[tuple[int, str, Any]]:
        """(node, kind, record or entity) of every entity, decoded one at a time."""
        for row in range(len(self.entra.table)):
            raw = self.entra.table.raw(row)
            if raw is not None:
                yield row, "entra", json.loads(raw)
        for kind, holder, first in (("user", self.emply.users, self.first_user),
                                    ("employee", self.emply.employees, self.first_employee)):
            for row in range(len(holder.table)):
                raw = holder.table.raw(row)
                if raw is not None:
                    yield first + row, kind, holder.decode(json.loads(raw))[1]

    def parts(self, size: int) -> Iterator[touched.Touched]:
        """Components grouped by the write units their users are in (a component with
        users writes theirs; one without, its Entra users' new users'), then cut into
        parts of about `size`, whole groups each; R7's components last."""
        by_root: dict[int, list[int]] = {}
        for node in range(self.count):
            if not self.bare[node]:
                by_root.setdefault(self._find(node), []).append(node)
        groups = _UnitGroups()
        for root, members in by_root.items():
            if root in self.last:
                continue
            mine = {self.unit[n] for n in members if self.first_user <= n < self.first_employee}
            groups.add(root, mine or {self.unit[n] for n in members if n < self.first_user})
        pending: list[int] = []
        for roots in groups.together():
            for root in roots:
                pending.extend(by_root[root])
            if len(pending) >= size:
                yield self.touched(pending)
                pending = []
        if pending:
            yield self.touched(pending)
        yield self.touched([n for root in self.last for n in by_root[root]])

    def touched(self, nodes: Iterable[int]) -> touched.Touched:
        out: dict[str, set[str]] = {"entra": set(), "users": set(), "employees": set()}
        for node in nodes:
            if node < self.first_user:
                record = self.entra.table.get(node)
                if record is not None:
                    out["entra"].add(str(record[0]))
                continue
            holder, kind, row = ((self.emply.users, "users", node - self.first_user)
                                 if node < self.first_employee else
                                 (self.emply.employees, "employees", node - self.first_employee))
            entry = holder.entry(row)
            if entry is not None:
                out[kind].add(str(entry[1]["id"]))
        return touched.Touched(frozenset(out["entra"]), frozenset(out["users"]),
                               frozenset(out["employees"]))


_NODE_MASK = (1 << records.ROW_BITS) - 1


def _entra_keys(record: Sequence[Any]) -> list[str]:
    entra_id = str(record[0]).lower()
    out = [f"E:{entra_id}", f"U:{touched.NEW_USER_PREFIX}{entra_id}"]
    if entra_index.full(record):
        user = convert.entra_user(record[:entra_index.WIDTH])
        out += [f"N:{model.norm(user.user_principal_name)}", f"M:{model.norm(user.mail_or_upn)}"]
    return out


def _user_keys(user: model.EmplyUser) -> list[str]:
    out = [f"U:{user.id}", f"N:{model.norm(user.username)}"]
    if user.entra_id:
        out.append(f"E:{user.entra_id.lower()}")
    if user.id.startswith(touched.NEW_USER_PREFIX):
        out.append(f"E:{user.id[len(touched.NEW_USER_PREFIX):].lower()}")
    if user.email:
        out.append(f"M:{model.norm(user.email)}")
    if user.employee_id:
        out.append(f"P:{user.employee_id}")
    return out


def _may_leave(user: model.EmplyUser, entra: EntraIndex, settings: model.Settings,
               conf: Mapping[int, tuple[str, ...]]) -> bool:
    """Whether R6 could deactivate this user now (more users than it will: a linked,
    active user whose Entra user is not plainly in scope)."""
    if user.entra_id is None or user.status != "active":
        return False
    record = entra.record(user.entra_id)
    if record is None or not entra_index.full(record):
        return True
    entra_user = convert.entra_user(record[:entra_index.WIDTH])
    groups = tuple(g for n in record[-1] for g in conf.get(n, ()))
    return not (scope.in_scope(entra_user, groups, settings)
                and scope.domain_kept(entra_user, user.linked_domain, settings)
                and (user.link_tenant_id is None
                     or user.link_tenant_id.lower() == settings.tenant_id.lower()))


class _UnitGroups:
    """Components that write to a shared unit go together (union-find over units)."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._components: dict[int, list[int]] = {}

    def _find(self, unit: int) -> int:
        while self._parent[unit] != unit:
            self._parent[unit] = self._parent[self._parent[unit]]
            unit = self._parent[unit]
        return unit

    def add(self, component: int, units: set[int]) -> None:
        first = -1
        for unit in sorted(units):
            self._parent.setdefault(unit, unit)
            root = self._find(unit)
            if first < 0:
                first = root
            elif root != first:
                self._parent[root] = first
        self._components.setdefault(first, []).append(component)

    def together(self) -> Iterator[list[int]]:
        """Components, grouped by the units they write, units in order."""
        grouped: dict[int, list[int]] = {}
        for unit, components in self._components.items():
            root = self._find(unit) if unit in self._parent else unit
            grouped.setdefault(root, []).extend(components)
        for root in sorted(grouped):
            yield grouped[root]
