"""Per-entity write conflicts of a run: Emply wrote a user or an employee
while the run was under way, after the run had loaded it.

The run's Emply writes are conditional on the ETags it loaded; the store leaves out each
entity whose ETag moved (`EmplyStore.write_built(skip_conflicts=True)`) and writes the
rest. Here those entities become what the report says: one `concurrent_change` error per
entity (naming its id), their changes left out of the report's changes and counts (so
out of the change feed too), and the Entra writes planned for those users not made (they
were planned from what Emply has since changed). The run's residual is not kept, so the
next run reads the Emply side again and plans those users from what Emply wrote.
The directory step reports them in its outcome (`shared.run.steps.directory`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from shared.reconcile import model
from shared.run import report as run_report


@dataclasses.dataclass(frozen=True)
class Skipped:
    """The ids of the entities a run did not write because Emply changed them meanwhile."""

    users: frozenset[str] = frozenset()
    employees: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.users or self.employees)

    def __or__(self, other: Skipped) -> Skipped:
        return Skipped(self.users | other.users, self.employees | other.employees)

    def concerns(self, change: model.Change) -> bool:
        """Whether `change` was not applied because of these conflicts."""
        if change.employee_id is not None:
            return change.employee_id in self.employees
        if change.user_id is None or change.user_id not in self.users:
            return False
        return change.kind not in model.CALENDAR_KINDS  # calendars are other entities

    def errors(self) -> list[run_report.Json]:
        out: list[run_report.Json] = []
        for kind, ids in (("user", self.users), ("employee", self.employees)):
            for entity_id in sorted(ids):
                error: run_report.Json = {
                    "reason": "concurrent_change", "temporary": True,
                    "message": f"{kind} {entity_id!r} was changed by someone else (Emply) "
                    "while the run was under way; its changes were not written and the "
                    "next run plans it again from what was written"}
                error["userId" if kind == "user" else "employeeId"] = entity_id
                out.append(error)
        return out


def left_out(changes: Iterable[model.Change], skipped: Skipped) -> tuple[model.Change, ...]:
    """The changes not applied because of the conflicts."""
    if not skipped:
        return ()
    return tuple(c for c in changes if skipped.concerns(c))
