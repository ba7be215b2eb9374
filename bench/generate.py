"""A synthetic tenant (simulator tenant file) and Emply state (import document).

Deterministic for a given seed. Shapes as `demo/tenant.json` and `demo/emply.json`.

- ``groups`` groups; the first ``top`` are configured in the settings (each mapped
  to its own role), every other group is nested in one of them, some two deep,
  so every group is in scope through nesting.
- every user is a direct member of 1-3 groups;
- half of the users (even index) already exist in Emply as manual, unlinked users
  with username = UPN; a third of those have an employee profile.
"""

from __future__ import annotations

import copy
import random
from typing import Any

TENANT_ID = "7b0f6c1e-3a52-4d8e-9a61-5c2f0e4d8b13"
DOMAIN = "bench.example"


def user_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def group_id(g: int) -> str:
    return f"10000000-0000-4000-8000-{g:012d}"


def upn(i: int) -> str:
    return f"user{i}@{DOMAIN}"


def entra_user(i: int, *, enabled: bool = True) -> dict[str, Any]:
    return {
        "id": user_id(i),
        "userPrincipalName": upn(i),
        "mail": f"User{i}@{DOMAIN}",
        "displayName": f"User {i}",
        "givenName": "User",
        "surname": str(i),
        "accountEnabled": enabled,
        "onPremisesSyncEnabled": None,
        "jobTitle": "Engineer" if i % 3 else None,
        "department": f"Dept {i % 17}",
        "mobilePhone": None,
    }


def top_level(groups: int) -> int:
    return max(1, groups // 4)


def tenant(users: int, groups: int, seed: int = 1, *, outside: int = 0,
           outside_groups: int = 5) -> dict[str, Any]:
    """``users`` users in ``groups`` groups, all in scope through nesting; with
    ``outside``, as many more users in ``outside_groups`` groups that no configured group
    reaches (a tenant much larger than the integration's scope)."""
    rng = random.Random(seed)
    top = top_level(groups)
    members: list[list[str]] = [[] for _ in range(groups)]
    for g in range(top, groups):
        # Nested: the first nested groups under a top-level one, the rest one level deeper.
        parent = (g - top) % top if g < 2 * top else rng.randrange(top, g)
        members[parent].append(group_id(g))
    for i in range(users):
        for g in rng.sample(range(groups), rng.randint(1, min(3, groups))):
            members[g].append(user_id(i))
    others: list[list[str]] = [[] for _ in range(outside_groups if outside else 0)]
    for i in range(users, users + outside):
        others[(i - users) % len(others)].append(user_id(i))
    return {
        "organization": {
            "id": TENANT_ID,
            "displayName": "Bench",
            "onPremisesSyncEnabled": False,
            "verifiedDomains": [{"name": DOMAIN, "isDefault": True}],
        },
        "users": [entra_user(i) for i in range(users + outside)],
        "groups": [
            *({"id": group_id(g), "displayName": f"Group {g}", "members": members[g]}
              for g in range(groups)),
            *({"id": group_id(groups + k), "displayName": f"Elsewhere {k}", "members": m}
              for k, m in enumerate(others)),
        ],
    }


def emply(users: int, groups: int) -> dict[str, Any]:
    top = top_level(groups)
    roles = [{"id": "administrator", "name": "Administrator", "administrator": True},
             {"id": "employee", "name": "Employee", "administrator": False}]
    roles += [{"id": f"role-{g}", "name": f"Role {g}", "administrator": False}
              for g in range(top)]
    doc_users: list[dict[str, Any]] = []
    employees: list[dict[str, Any]] = []
    for n, i in enumerate(range(0, users, 2)):
        employee_id = f"e-{i}" if n % 3 == 0 else None
        doc_users.append({
            "id": f"u-{i}", "username": upn(i), "email": upn(i), "displayName": f"User {i}",
            "status": "active", "roles": ["employee"], "employeeId": employee_id,
            "source": "manual", "entraId": None, "calendarSync": True,
        })
        if employee_id:
            employees.append({
                "id": employee_id, "email": upn(i), "displayName": f"User {i}",
                "givenName": "User", "surname": str(i), "jobTitle": None, "department": None,
                "mobilePhone": None, "resignationDate": None, "status": "active",
            })
    return {
        "settings": {
            "enabled": True,
            "tenantId": TENANT_ID,
            "groups": [{"groupId": group_id(g), "roleId": f"role-{g}"} for g in range(top)],
            "syncRoles": True,
            "defaultRoleId": "employee",
            "allowedDomains": [DOMAIN],
            "deactivationGuard": {"maxCount": 100_000, "maxPercent": 100},
        },
        "roles": roles,
        "users": doc_users,
        "employees": employees,
        "calendars": [],
        "events": [],
        "outboundEvents": [],
    }


def churn(base: dict[str, Any], fraction: float = 0.01, seed: int = 2, *,
          first_new: int | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """``base`` with ``fraction`` of its users changed: a quarter each joins (new users
    in a group, numbered from ``first_new``, by default the user count), leaves
    (removed from every group), group moves, disabled accounts."""
    rng = random.Random(seed)
    out = copy.copy(base)
    users = [dict(u) for u in base["users"]]
    groups = [{**g, "members": list(g["members"])} for g in base["groups"]]
    n = len(users)
    each = max(1, int(n * fraction) // 4)
    picked = rng.sample(range(n), 3 * each)
    leaves, moves, disabled = picked[:each], picked[each:2 * each], picked[2 * each:]
    group_ids = [g["id"] for g in groups]
    position = {gid: k for k, gid in enumerate(group_ids)}
    of_user: dict[str, list[int]] = {}
    for k, g in enumerate(groups):
        for m in g["members"]:
            of_user.setdefault(m, []).append(k)
    for i in leaves:
        uid = users[i]["id"]
        for k in of_user.get(uid, ()):
            groups[k]["members"].remove(uid)
    for i in moves:
        uid = users[i]["id"]
        current = of_user.get(uid, [])
        if current:
            groups[current[0]]["members"].remove(uid)
        choices = [k for k in range(len(groups)) if k not in current]
        groups[rng.choice(choices) if choices else 0]["members"].append(uid)
    for i in disabled:
        users[i]["accountEnabled"] = False
    start = n if first_new is None else first_new
    for j in range(each):
        new = entra_user(start + j)
        users.append(new)
        groups[position[group_ids[j % len(group_ids)]]]["members"].append(new["id"])
    out["users"] = users
    out["groups"] = groups
    return out, {"joins": each, "leaves": each, "moves": each, "disabled": each}
