"""Which changes a run leaves out when Emply wrote an entity during it, and what its
report then says (`shared.run.conflicts`, folded by `shared.run.steps.base.Applied`)."""

from __future__ import annotations

import pytest

from shared.reconcile import model
from shared.run import conflicts
from shared.run.steps import base

LINK_ANNA = model.Change(model.LINK_USER, "R3", "email", "u-anna", "e-anna")
ROLES_ANNA = model.Change(model.SET_ROLES, "R11", "case_2C", "u-anna", "e-anna")
WRITE_ANNA = model.Change(model.ENTRA_UPDATE, "R9", "employee_profile", "u-anna", "e-anna")
CALENDAR_ANNA = model.Change(model.CALENDAR_ADD, "R13", "default_calendar", "u-anna")
LINK_BO = model.Change(model.LINK_USER, "R3", "username", "u-bo", "e-bo")
EMPLOYEE_BO = model.Change(model.EMPLOYEE_STATUS, "R8", "archived", "u-bo",
                           employee_id="x-bo")
CREATE = model.Change(model.CREATE_USER, "R2", "new_in_entra", None, "e-new")
PLAN = model.Plan(changes=(LINK_ANNA, ROLES_ANNA, WRITE_ANNA, CALENDAR_ANNA, LINK_BO,
                           EMPLOYEE_BO, CREATE))


@pytest.mark.parametrize(("skipped", "left_out"), [
    (conflicts.Skipped(), []),
    # A user's Emply changes and the Entra writes planned from it; not its calendars
    # (other entities, written apart).
    (conflicts.Skipped(users=frozenset({"u-anna"})), [LINK_ANNA, ROLES_ANNA, WRITE_ANNA]),
    # An employee's changes only, not its user's.
    (conflicts.Skipped(employees=frozenset({"x-bo"})), [EMPLOYEE_BO]),
    (conflicts.Skipped(users=frozenset({"u-bo"})), [LINK_BO]),
])
def test_left_out(skipped: conflicts.Skipped, left_out: list[model.Change]) -> None:
    assert conflicts.left_out(PLAN.changes, skipped) == tuple(left_out)


def test_the_report_names_each_skipped_entity_and_counts_only_what_was_applied() -> None:
    skipped = conflicts.Skipped(users=frozenset({"u-anna"}), employees=frozenset({"x-bo"}))
    outcome = base.StepOutcome("directory", dropped=conflicts.left_out(PLAN.changes, skipped),
                               errors=tuple(skipped.errors()), conflicts=skipped)
    after = base.Applied(PLAN).then(outcome)
    assert after.counts() == {model.CALENDAR_ADD: 1, model.LINK_USER: 1,
                              model.CREATE_USER: 1}
    assert after.changes() == [CALENDAR_ANNA, LINK_BO, CREATE]
    # Later steps do not carry out what was dropped (the Entra write planned for Anna).
    assert after.pending(model.ENTRA_KINDS) == []
    assert after.conflicts == skipped
    assert [(e["reason"], e.get("userId"), e.get("employeeId")) for e in after.errors()] == [
        ("concurrent_change", "u-anna", None), ("concurrent_change", None, "x-bo")]
    assert all(e["temporary"] is True and "next run" in e["message"] for e in after.errors())
    nothing = base.Applied(PLAN).then(base.StepOutcome("directory"))
    assert nothing.counts() == PLAN.counts() and nothing.errors() == []
