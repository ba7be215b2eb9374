"""Which users a run must plan: those that changed, and every user whose plan could
depend on them.

A user's plan depends on others only through R3's and R4's keys: an Entra user claims
the Emply users whose Entra id, username, e-mail or employee e-mail is its id, UPN or
mail (R3's steps 1-4), and is refused creation by the users, the employee or the new
user id that hold them (R4's `username_taken`, `email_taken`,
`employee_without_account`), or by another Entra user created in the same run with
the same UPN or mail. So the world falls apart into parts that share no key, and a
plan made for some parts (`closure` of what changed) is the whole plan restricted to
them: `tests/unit/test_properties.py` checks it on generated worlds.

`closure` walks those keys from the changed entities, through both the keys an entity
has now and those it had before (`Seeds.before`): an Entra user whose UPN changed from
X to Y leaves whoever matched X as much as it reaches whoever matches Y. Pure: the
world is looked at through `World` (an index of 100,000 users in a real run; the
planner's snapshots in tests, `SnapshotWorld`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal, Protocol

from shared.reconcile import model

EntraIndex = Literal["upn", "mail"]
UserIndex = Literal["id", "entra", "name", "mail", "employee"]
NEW_USER_PREFIX = "entra-"
"""Users the sync creates are `entra-<Entra id>` (`planner.new_user_id`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class EntraKeys:
    id: str
    upn: str
    mail: str
    """`model.norm` of the mail, or of the UPN when mail is empty."""


@dataclasses.dataclass(frozen=True, slots=True)
class UserKeys:
    id: str
    entra: str | None
    """The linked Entra id, lower case."""
    name: str
    mail: str
    employee: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class EmployeeKeys:
    id: str
    mail: str


class World(Protocol):
    """The keys of each entity, and who holds a key (both as they are now)."""

    def entra(self, entra_id: str) -> EntraKeys | None: ...

    def user(self, user_id: str) -> UserKeys | None: ...

    def employee(self, employee_id: str) -> EmployeeKeys | None: ...

    def entra_with(self, index: EntraIndex, key: str) -> Iterable[str]: ...

    def users_with(self, index: UserIndex, key: str) -> Iterable[str]: ...

    def employees_with(self, key: str) -> Iterable[str]:
        """Employees whose e-mail is `key`."""
        ...


@dataclasses.dataclass
class Seeds:
    """What changed (ids), and the keys the changed entities had before."""

    entra: set[str] = dataclasses.field(default_factory=set)
    users: set[str] = dataclasses.field(default_factory=set)
    employees: set[str] = dataclasses.field(default_factory=set)
    before: list[EntraKeys | UserKeys | EmployeeKeys] = dataclasses.field(
        default_factory=list)


@dataclasses.dataclass(frozen=True)
class Touched:
    """Entities a plan looks at: ids of Entra users, Emply users and employees."""

    entra: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    employees: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.entra) + len(self.users) + len(self.employees)

    def __or__(self, other: Touched) -> Touched:
        return Touched(self.entra | other.entra, self.users | other.users,
                       self.employees | other.employees)

    def __sub__(self, other: Touched) -> Touched:
        return Touched(self.entra - other.entra, self.users - other.users,
                       self.employees - other.employees)


def entra_keys(user: model.EntraUser) -> EntraKeys:
    return EntraKeys(user.id, model.norm(user.user_principal_name), model.norm(user.mail_or_upn))


def user_keys(user: model.EmplyUser) -> UserKeys:
    return UserKeys(user.id, user.entra_id.lower() if user.entra_id else None,
                    model.norm(user.username), model.norm(user.email), user.employee_id)


def employee_keys(employee: model.Employee) -> EmployeeKeys:
    return EmployeeKeys(employee.id, model.norm(employee.email))


def closure(world: World, seeds: Seeds) -> Touched:
    """The seeds and everything that shares a key with them, transitively."""
    entra: set[str] = set()
    users: set[str] = set()
    employees: set[str] = set()
    todo_entra, todo_users, todo_employees = list(seeds.entra), list(seeds.users), list(
        seeds.employees)
    pending_keys: list[EntraKeys | UserKeys | EmployeeKeys] = list(seeds.before)

    def neighbours(keys: EntraKeys | UserKeys | EmployeeKeys) -> None:
        if isinstance(keys, EntraKeys):
            todo_users.extend(world.users_with("entra", keys.id.lower()))
            todo_users.extend(world.users_with("name", keys.upn))
            todo_users.extend(world.users_with("mail", keys.mail))
            todo_users.extend(world.users_with("id", NEW_USER_PREFIX + keys.id.lower()))
            todo_employees.extend(world.employees_with(keys.mail))
            todo_entra.extend(world.entra_with("upn", keys.upn))
            todo_entra.extend(world.entra_with("mail", keys.mail))
        elif isinstance(keys, UserKeys):
            if keys.entra:
                todo_entra.append(keys.entra)
            if keys.id.startswith(NEW_USER_PREFIX):
                todo_entra.append(keys.id[len(NEW_USER_PREFIX):])
            todo_entra.extend(world.entra_with("upn", keys.name))
            if keys.mail:
                todo_entra.extend(world.entra_with("mail", keys.mail))
            if keys.employee:
                todo_employees.append(keys.employee)
        else:
            todo_users.extend(world.users_with("employee", keys.id))
            todo_entra.extend(world.entra_with("mail", keys.mail))

    while pending_keys or todo_entra or todo_users or todo_employees:
        while pending_keys:
            neighbours(pending_keys.pop())
        while todo_entra:
            found = world.entra(todo_entra[-1])
            entra_id = found.id if found is not None else todo_entra[-1]
            todo_entra.pop()
            if entra_id in entra:
                continue
            entra.add(entra_id)
            if found is not None:
                pending_keys.append(found)
        while todo_users:
            user_id = todo_users.pop()
            if user_id in users:
                continue
            users.add(user_id)
            found_user = world.user(user_id)
            if found_user is not None:
                pending_keys.append(found_user)
        while todo_employees:
            employee_id = todo_employees.pop()
            if employee_id in employees:
                continue
            employees.add(employee_id)
            found_employee = world.employee(employee_id)
            if found_employee is not None:
                pending_keys.append(found_employee)
    return Touched(frozenset(entra), frozenset(users), frozenset(employees))


class SnapshotWorld:
    """`World` over the planner's snapshots (tests, and small worlds)."""

    def __init__(self, entra: model.EntraSnapshot, emply: model.EmplySnapshot) -> None:
        self._entra = {u.id: entra_keys(u) for u in entra.users.values()}
        self._entra_lower = {k.lower(): v for k, v in self._entra.items()}
        self._users = {u.id: user_keys(u) for u in emply.users}
        self._employees = {e.id: employee_keys(e) for e in emply.employees}

    def entra(self, entra_id: str) -> EntraKeys | None:
        return self._entra.get(entra_id) or self._entra_lower.get(entra_id.lower())

    def user(self, user_id: str) -> UserKeys | None:
        return self._users.get(user_id)

    def employee(self, employee_id: str) -> EmployeeKeys | None:
        return self._employees.get(employee_id)

    def entra_with(self, index: EntraIndex, key: str) -> list[str]:
        return [k.id for k in self._entra.values() if getattr(k, index) == key]

    def users_with(self, index: UserIndex, key: str) -> list[str]:
        return [k.id for k in self._users.values() if getattr(k, index) == key]

    def employees_with(self, key: str) -> list[str]:
        return [k.id for k in self._employees.values() if k.mail == key]


def restrict(entra: model.EntraSnapshot, emply: model.EmplySnapshot, touched: Touched
             ) -> tuple[model.EntraSnapshot, model.EmplySnapshot]:
    """The snapshots with only the touched users and employees; every group stays, with
    its nested groups and its touched users as members (so scope comes out the same
    for them)."""
    users = {k: u for k, u in entra.users.items() if k in touched.entra}
    groups = {
        g.id: dataclasses.replace(g, members=frozenset(
            m for m in g.members if m in entra.groups or m in touched.entra))
        for g in entra.groups.values()
    }
    return (
        dataclasses.replace(entra, users=users, groups=groups),
        dataclasses.replace(
            emply,
            users=tuple(u for u in emply.users if u.id in touched.users),
            employees=tuple(e for e in emply.employees if e.id in touched.employees),
        ),
    )


def linked_active(users: Iterable[model.EmplyUser]) -> int:
    """R7's base: users linked and active."""
    return sum(1 for u in users if u.entra_id is not None and u.status == "active")
