"""An on-demand run's plan: the same planner, acting on one user only.

An on-demand run (`emply-sync sync --user KEY`) reads one Entra user (and any Entra user
its Emply user may match) directly from Graph, not the directory. Its Entra snapshot is
therefore a one-user view: that every other linked user is missing from it says nothing
about them. `Focus` names what was read and asked about, and the planner then:

- looks at everything it always does: all Emply users for R3's candidates and R4's
  refusals, all linked active users for R7's percentage, R7's rolling window;
- acts only on the users the focus concerns (`Focus.names`: the Emply users asked about
  and those linked to a focused Entra user), and on those the plan links or creates for
  a focused Entra user. Nobody else is deactivated, seeded, given calendars, employee
  status changes or write-back. Other Entra users in the view (read because they may
  claim the same Emply user at an earlier R3 step) are decided as a full run decides
  them and not acted on: a tie they are in keeps its candidates (R3: no change, so no
  deactivation), and what a full run creates for them takes its username and e-mail
  first (R4's refusals);
- leaves the run-wide memory as it was (the R11 mapping of the last full run, the set
  the last full run held); only R7's window takes this plan's deactivations.

So what an on-demand run applies is what a full run would apply for that user, and the
next full run plans nothing more for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable

from shared.reconcile import model


@dataclasses.dataclass(frozen=True, slots=True)
class Focus:
    entra_ids: frozenset[str]
    """The Entra users read for the run (lower case)."""
    user_ids: frozenset[str]
    """The Emply users asked about."""

    @classmethod
    def of(cls, entra_ids: Iterable[str], user_ids: Iterable[str]) -> Focus:
        return cls(frozenset(e.lower() for e in entra_ids), frozenset(user_ids))

    def names(self, user: model.EmplyUser) -> bool:
        return user.id in self.user_ids or (
            user.entra_id is not None and user.entra_id.lower() in self.entra_ids)


def acting(emply: model.EmplySnapshot, user_ids: Collection[str]) -> model.EmplySnapshot:
    """`emply` with only these users and what is theirs (employee profiles, calendars,
    events, outbound events); the roles stay."""
    users = tuple(u for u in emply.users if u.id in user_ids)
    profiles = {u.employee_id for u in users if u.employee_id}
    return model.EmplySnapshot(
        users=users,
        employees=tuple(e for e in emply.employees if e.id in profiles),
        roles=emply.roles,
        calendars=tuple(c for c in emply.calendars if c.user_id in user_ids),
        events=tuple(e for e in emply.events if e.user_id in user_ids),
        outbound=tuple(o for o in emply.outbound if o.user_id in user_ids),
    )


def concerns(change: model.Change, user_ids: Collection[str]) -> bool:
    return change.user_id is not None and change.user_id in user_ids


def concerns_problem(problem: model.Problem, user_ids: Collection[str],
                     entra_ids: Collection[str]) -> bool:
    """A problem about these users, or one about no user at all (the settings, the
    tenant): both are part of the answer."""
    if problem.user_id is None and problem.entra_id is None and not problem.candidates:
        return True
    return (problem.user_id in user_ids
            or any(c in user_ids for c in problem.candidates)
            or (problem.entra_id or "").lower() in entra_ids)
