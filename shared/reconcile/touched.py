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
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from shared.reconcile import model

EntraIndex = Literal["upn", "mail"]
UserIndex = Literal["id", "entra", "name", "mail", "employee"]
NEW_USER_PREFIX = "entra-"
"""Users the sync creates are `entra-<Entra id>` (`creation.new_user_id`)."""


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
    walk = _Walk(world)
    walk.entra_ids.extend(seeds.entra)
    walk.user_ids.extend(seeds.users)
    walk.employee_ids.extend(seeds.employees)
    walk.keys.extend(seeds.before)
    return walk.run()


class _Walk:
    """A breadth-first walk over keys: ids to visit, keys whose holders to visit."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.entra: set[str] = set()
        self.users: set[str] = set()
        self.employees: set[str] = set()
        self.entra_ids: list[str] = []
        self.user_ids: list[str] = []
        self.employee_ids: list[str] = []
        self.keys: list[EntraKeys | UserKeys | EmployeeKeys] = []

    def run(self) -> Touched:
        while self.keys or self.entra_ids or self.user_ids or self.employee_ids:
            while self.keys:
                self._neighbours(self.keys.pop())
            self._visit()
        return Touched(frozenset(self.entra), frozenset(self.users), frozenset(self.employees))

    def _visit(self) -> None:
        world = self.world
        while self.entra_ids:
            found = world.entra(self.entra_ids[-1])
            entra_id = found.id if found is not None else self.entra_ids[-1]
            self.entra_ids.pop()
            if entra_id not in self.entra:
                self.entra.add(entra_id)
                if found is not None:
                    self.keys.append(found)
        while self.user_ids:
            user_id = self.user_ids.pop()
            if user_id not in self.users:
                self.users.add(user_id)
                if (user := world.user(user_id)) is not None:
                    self.keys.append(user)
        while self.employee_ids:
            employee_id = self.employee_ids.pop()
            if employee_id not in self.employees:
                self.employees.add(employee_id)
                if (employee := world.employee(employee_id)) is not None:
                    self.keys.append(employee)

    def _neighbours(self, keys: EntraKeys | UserKeys | EmployeeKeys) -> None:
        world = self.world
        if isinstance(keys, EntraKeys):
            # R3 steps 1-4 and R4's refusals; Entra users created alike refuse each other.
            held: tuple[tuple[UserIndex, str], ...] = (
                ("entra", keys.id.lower()), ("name", keys.upn), ("mail", keys.mail),
                ("id", NEW_USER_PREFIX + keys.id.lower()))
            for index, key in held:
                self.user_ids.extend(world.users_with(index, key))
            self.employee_ids.extend(world.employees_with(keys.mail))
            self.entra_ids.extend(world.entra_with("upn", keys.upn))
            self.entra_ids.extend(world.entra_with("mail", keys.mail))
        elif isinstance(keys, UserKeys):
            if keys.entra:
                self.entra_ids.append(keys.entra)
            if keys.id.startswith(NEW_USER_PREFIX):
                self.entra_ids.append(keys.id[len(NEW_USER_PREFIX):])
            self.entra_ids.extend(world.entra_with("upn", keys.name))
            if keys.mail:
                self.entra_ids.extend(world.entra_with("mail", keys.mail))
            if keys.employee:
                self.employee_ids.append(keys.employee)
        else:
            self.user_ids.extend(world.users_with("employee", keys.id))
            self.entra_ids.extend(world.entra_with("mail", keys.mail))


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


def names_entity(error: Mapping[str, Any]) -> bool:
    """Whether a reported problem is about particular users (else about the whole run:
    settings, the guard), in its JSON form (`model.Problem.to_json`)."""
    return bool(error.get("entraId") or error.get("userId") or error.get("candidates"))


def carried(previous_errors: Sequence[Mapping[str, Any]], previous_skips: Mapping[str, int],
            old: model.Plan, new: model.Plan) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The whole run's errors and skips after planning part of the world again.

    `previous_*`: what the last run left (its residual: the whole world's outcome then);
    `old`: the plan of the part as it was (the residual's share of it: a plan applied
    leaves the same residual); `new`: the plan of the part now. Whole-run problems
    (settings, the guard) are `new`'s; a user's problems are the previous ones less
    `old`'s, plus `new`'s. Skips are counts: previous, less `old`'s, plus `new`'s."""
    gone = Counter(_key(p.to_json()) for p in old.errors if names_entity(p.to_json()))
    kept: list[dict[str, Any]] = []
    for error in previous_errors:
        if not names_entity(error):
            continue
        key = _key(error)
        if gone[key]:
            gone[key] -= 1
        else:
            kept.append(dict(error))
    fresh = [p.to_json() for p in new.errors]
    errors = [*(e for e in fresh if not names_entity(e)), *kept,
              *(e for e in fresh if names_entity(e))]
    skips = Counter(dict(previous_skips))
    skips.subtract(old.skips)
    skips.update(new.skips)
    return errors, {reason: n for reason, n in skips.items() if n > 0}


def _key(error: Mapping[str, Any]) -> str:
    return json.dumps(error, sort_keys=True)
