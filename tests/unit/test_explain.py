"""R18: explanations for the situations the FAQ names, and for the awkward ones."""

from __future__ import annotations

from typing import Any

import pytest

from shared.reconcile import explain, model
from tests.unit import builders as b

MAP: dict[str, str | None] = {"grp-staff": "employee"}


def explain_for(
    key: str,
    entra: model.EntraSnapshot,
    users: list[model.EmplyUser],
    employees: tuple[model.Employee, ...] = (),
    cfg: model.Settings | None = None,
) -> dict[str, Any]:
    cfg = cfg or b.settings(MAP)
    emply = model.EmplySnapshot(tuple(users), employees, b.ROLES)
    plan = b.run(entra, users, cfg, employees=employees)
    docs = {u.id: {"id": u.id, "username": u.username, "email": u.email,
                   "employeeId": u.employee_id} for u in users}
    return explain.explain(key, entra, emply, docs, cfg, plan, b.NOW)


def test_unlinked_user_left_alone_by_an_ambiguous_match_says_so() -> None:
    one = b.entra_user("a-id", "a@contoso.com", mail="team@contoso.com")
    two = b.entra_user("b-id", "b@contoso.com", mail="team@contoso.com")
    entra = b.tenant([one, two], {"grp-staff": ["a-id", "b-id"]})
    result = explain_for("u1", entra, [b.emply_user("u1", username="t", email="team@contoso.com")])
    assert "ambiguous_match" in result["why"][0]
    assert [p["reason"] for p in result["nextRun"]["problems"]] == ["ambiguous_match"] * 2


def test_employee_whose_account_has_another_email_explains_the_account() -> None:
    entra = b.tenant([], {"grp-staff": []})
    account = b.emply_user("u-kim", username="kim", email="kim.private@example.com",
                           employee_id="e-kim")
    employee = model.Employee("e-kim", "kim@contoso.com")
    result = explain_for("kim@contoso.com", entra, [account], (employee,))
    assert result["user"]["id"] == "u-kim"
    assert any("employee e-kim is Active" in why for why in result["why"])


@pytest.mark.parametrize("key", ["e-kim", "kim@contoso.com"])
def test_employee_without_account_by_id_or_email(key: str) -> None:
    kim = b.entra_user("kim-id", "kim.k@contoso.com", mail="kim@contoso.com")
    entra = b.tenant([kim], {"grp-staff": ["kim-id"]})
    result = explain_for(key, entra, [], (model.Employee("e-kim", "kim@contoso.com"),))
    assert result["why"][0].startswith("not linked: employee exists without a user account")
    assert "kim.k@contoso.com" in result["why"][0]
    assert [p["reason"] for p in result["nextRun"]["problems"]] == ["employee_without_account"]


def test_two_users_with_one_username_asks_for_an_id() -> None:
    users = [b.emply_user("u-1", username="megan@contoso.com"),
             b.emply_user("u-2", username="MEGAN@contoso.com")]
    with pytest.raises(explain.AmbiguousUser, match="u-1, u-2"):
        explain_for("megan@contoso.com", b.tenant([], {"grp-staff": []}), users)


def test_unknown_key_is_not_found() -> None:
    with pytest.raises(explain.NotFound):
        explain_for("nobody", b.tenant([], {"grp-staff": []}), [])


def test_link_from_another_tenant_names_the_tenant_change() -> None:
    user = b.emply_user("u-1", entra_id="x", link_tenant_id="old-tenant", status="deactivated",
                        deactivated_by="sync", deactivation_reason=model.TENANT_CHANGED)
    result = explain_for("u-1", b.tenant([], {"grp-staff": []}), [user])
    assert "old-tenant" in result["why"][0] and "tenant_changed" in result["why"][0]


def test_roles_explained_for_a_user_with_an_employee_profile() -> None:
    anna = b.entra_user("anna")
    user = b.emply_user("u-anna", entra_id="anna", link_tenant_id=b.TENANT,
                        employee_id="e-anna", roles=["manager"], sync_groups=["grp-staff"])
    result = explain_for("u-anna", b.tenant([anna], {"grp-staff": ["anna"]}), [user],
                         (model.Employee("e-anna", "anna@contoso.com"),))
    assert "roles not synced: the user has an employee profile" in result["why"]
    assert result["nextRun"]["summary"] == "nothing"
