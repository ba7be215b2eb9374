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


class PlannedWrites:
    """The entities a plan changes, each built only when asked for.

    A 100,000-user initial sync changes every user; building them all before writing
    held about 200 MB of entities at once. The store asks for them a partition at a
    time instead (`user`/`employee` are pure and may be called in any order).
    """

    def __init__(
        self,
        users: Mapping[str, Mapping[str, Any]],
        employees: Mapping[str, Mapping[str, Any]],
        plan: model.Plan,
        run_id: str,
        at: str,
    ) -> None:
        self._users = users
        self._employees = employees
        self._run_id = run_id
        self._at = at
        self._user_changes: dict[str, list[model.Change]] = {}
        self._employee_changes: dict[str, list[model.Change]] = {}
        for change in plan.changes:
            if change.kind in model.ENTRA_KINDS:
                continue  # written to Entra by shared.graph.writer, never to Emply (R5)
            if change.employee_id is not None:
                self._employee_changes.setdefault(change.employee_id, []).append(change)
            elif change.user_id is not None and change.kind not in model.CALENDAR_KINDS:
                self._user_changes.setdefault(change.user_id, []).append(change)
        self._kept = {u.user_id: u for u in plan.bookkeeping}
        # Changed users first, in plan order; then users with bookkeeping only.
        self.user_ids: tuple[str, ...] = (
            *self._user_changes,
            *(i for i in self._kept if i not in self._user_changes),
        )
        self.employee_ids: tuple[str, ...] = tuple(self._employee_changes)

    def user(self, user_id: str) -> dict[str, Any]:
        """The user as it must be stored after the plan."""
        changes = self._user_changes.get(user_id, ())
        base = self._users.get(user_id)
        user = dict(base) if base is not None else {}
        if changes:
            history = list(user.get("history") or ())
            for change in changes:
                user.update(change.after)
                entry = audit_entry(change, self._run_id, self._at)
                user["lastChange"] = entry
                history.append(entry)
            user["history"] = history[-HISTORY_LIMIT:]
        kept = self._kept.get(user_id)
        if kept is not None:
            user.update(kept.fields)
        return user

    def employee(self, employee_id: str) -> dict[str, Any]:
        employee = dict(self._employees[employee_id])
        for change in self._employee_changes[employee_id]:
            employee.update(change.after)
        return employee


def apply_plan(
    users: Mapping[str, Mapping[str, Any]],
    employees: Mapping[str, Mapping[str, Any]],
    plan: model.Plan,
    run_id: str,
    at: str,
) -> Writes:
    """Users and employees as they must be stored after `plan`, only those that change."""
    planned = PlannedWrites(users, employees, plan, run_id, at)
    return Writes([planned.user(i) for i in planned.user_ids],
                  [planned.employee(i) for i in planned.employee_ids])
