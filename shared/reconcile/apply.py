"""Apply a plan to the Emply document, purely: which entities change and how.

The store then writes exactly the returned entities. Each changed user gets its
last change (rule, reason, words, run id, time) and a bounded history, so
`explain` can answer "why?" without one stored entity per change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shared.reconcile import model

HISTORY_LIMIT = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Writes:
    users: list[dict[str, Any]]
    employees: list[dict[str, Any]]


def audit_entry(change: model.Change, run_id: str, at: str) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "rule": change.rule,
        "reason": change.reason,
        "message": change.message,
        "runId": run_id,
        "at": at,
    }


def apply_plan(
    users: Mapping[str, Mapping[str, Any]],
    employees: Mapping[str, Mapping[str, Any]],
    plan: model.Plan,
    run_id: str,
    at: str,
) -> Writes:
    """Users and employees as they must be stored after `plan`, only those that change."""
    changed_users: dict[str, dict[str, Any]] = {}
    changed_employees: dict[str, dict[str, Any]] = {}
    for change in plan.changes:
        if change.employee_id is not None:
            employee = changed_employees.get(change.employee_id)
            if employee is None:
                employee = dict(employees[change.employee_id])
                changed_employees[change.employee_id] = employee
            employee.update(change.after)
            continue
        if change.user_id is None:
            continue
        user = changed_users.get(change.user_id)
        if user is None:
            base = users.get(change.user_id)
            user = dict(base) if base is not None else {}
            user.setdefault("history", [])
            user["history"] = list(user["history"])
            changed_users[change.user_id] = user
        user.update(change.after)
        entry = audit_entry(change, run_id, at)
        user["lastChange"] = entry
        user["history"] = [*user["history"], entry][-HISTORY_LIMIT:]
    for update in plan.bookkeeping:
        user = changed_users.get(update.user_id)
        if user is None:
            user = dict(users[update.user_id])
            changed_users[update.user_id] = user
        user["syncGroups"] = list(update.sync_groups)
    return Writes(list(changed_users.values()), list(changed_employees.values()))
