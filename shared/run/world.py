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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.reconcile import convert, model, scope, touched
from shared.run import emply_index, entra_index
from shared.run import groups as group_graph
from shared.run.emply_index import EmplyIndex
from shared.run.entra_index import EntraIndex

PART_SIZE = 20_000
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


def parts_of_everything(entra: EntraIndex, emply: EmplyIndex, settings: model.Settings,
                        held: Iterable[str] = (), size: int = PART_SIZE
                        ) -> Iterator[touched.Touched]:
    """Every entity, in parts closed under R3's keys; the users R7 may deactivate (and
    `held`: those the last run held) come in the last part."""
    keys = _Keys()
    for _row, record in entra.table.records():
        keys.add(("entra", str(record[0])), _entra_keys(record))
    guarded: set[tuple[str, str]] = set()
    conf = entra.groups.configured_of_all([g.group_id for g in settings.groups])
    held_ids = set(held)
    for row in emply.users.table.rows():
        entry = emply.users.entry(row)
        if entry is None:
            continue
        user = convert.emply_user(entry[1])
        keys.add(("user", user.id), _user_keys(user))
        if user.id in held_ids or _may_leave(user, entra, settings, conf):
            guarded.add(("user", user.id))
    for row in emply.employees.table.rows():
        entry = emply.employees.entry(row)
        if entry is not None:
            employee_id = str(entry[1]["id"])
            keys.add(("employee", employee_id),
                     [f"P:{employee_id}", f"M:{model.norm(entry[1].get('email'))}"])
    yield from keys.parts(guarded, size)


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


class _Keys:
    """Union-find over entities through the keys they share."""

    def __init__(self) -> None:
        self._parent: dict[tuple[str, str], tuple[str, str]] = {}
        self._holder: dict[str, tuple[str, str]] = {}

    def _find(self, node: tuple[str, str]) -> tuple[str, str]:
        parent = self._parent
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    def add(self, node: tuple[str, str], keys: Iterable[str]) -> None:
        self._parent.setdefault(node, node)
        for key in keys:
            other = self._holder.setdefault(key, node)
            if other != node:
                a, b = self._find(node), self._find(other)
                if a != b:
                    self._parent[a] = b

    def parts(self, last: set[tuple[str, str]], size: int) -> Iterator[touched.Touched]:
        groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for node in self._parent:
            groups.setdefault(self._find(node), []).append(node)
        self._holder = {}
        if len(self._parent) <= size:  # one part: the whole world
            yield _touched(list(self._parent))
            return
        final_roots = {self._find(n) for n in last}
        pending: list[tuple[str, str]] = []
        for root, members in groups.items():
            if root in final_roots:
                continue
            pending.extend(members)
            if len(pending) >= size:
                yield _touched(pending)
                pending = []
        if pending:
            yield _touched(pending)
        yield _touched([n for root in final_roots for n in groups[root]])


def _touched(nodes: Sequence[tuple[str, str]]) -> touched.Touched:
    by: dict[str, set[str]] = {"entra": set(), "user": set(), "employee": set()}
    for kind, entity_id in nodes:
        by[kind].add(entity_id)
    return touched.Touched(frozenset(by["entra"]), frozenset(by["user"]),
                           frozenset(by["employee"]))
