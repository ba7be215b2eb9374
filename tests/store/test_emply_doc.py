"""Validation and normalisation of the Emply state document (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.emply.document import DocumentError, validate_document


def good() -> dict[str, Any]:
    return {
        "settings": {"tenantId": "tenant-1",
                     "groups": [{"groupId": "g-emp", "roleId": "employee"},
                                {"groupId": "g-scope", "roleId": None}],
                     "defaultRoleId": "employee"},
        "roles": [{"id": "employee", "name": "Employee"},
                  {"id": "administrator", "name": "Administrator", "administrator": True}],
        "users": [{"id": "u-megan", "username": "megan.jordan@contoso.com",
                   "roles": ["employee"], "employeeId": None},
                  {"id": "u-ray", "username": "ray.ross@contoso.com", "employeeId": "e-ray"}],
        "employees": [{"id": "e-ray", "email": "ray.ross@contoso.com",
                       "resignationDate": "2027-01-31"}],
        "calendars": [{"userId": "u-megan", "id": "cal-1", "isDefault": True, "enabled": True}],
        "events": [],
        "outboundEvents": [{"id": "o-1", "userId": "u-megan", "subject": "Interview",
                            "start": "2026-12-02T10:00:00Z", "end": "2026-12-02T11:00:00Z"}],
    }


def test_defaults_are_filled() -> None:
    doc = validate_document(good())
    assert doc["settings"]["syncRoles"] is False
    assert doc["settings"]["enabled"] is True
    assert doc["settings"]["allowedDomains"] == []
    assert doc["settings"]["writeBack"] == {"create": False, "update": False, "delete": False}
    assert doc["settings"]["deactivationGuard"] == {"maxCount": 50, "maxPercent": 20,
                                                    "minCount": 10}
    megan = doc["users"][0]
    assert megan["status"] == "active"
    assert megan["source"] == "manual"
    assert megan["entraId"] is None
    assert megan["calendarSync"] is True
    assert megan["syncGroups"] == [] and megan["history"] == []
    assert megan["lastChange"] is None and megan["photo"] is None
    assert doc["employees"][0]["status"] == "active"
    assert doc["outboundEvents"][0]["status"] == "pending"
    assert doc["roles"][0]["administrator"] is False


def test_partial_document_gets_every_section() -> None:
    doc = validate_document({"users": [{"id": "u1", "username": "a"}]})
    assert doc["settings"] is None
    assert doc["roles"] == [] and doc["employees"] == [] and doc["calendars"] == []
    with pytest.raises(DocumentError, match="required section missing"):
        validate_document({"users": []}, partial=False)


def test_input_is_not_modified() -> None:
    original = good()
    before = copy.deepcopy(original)
    validate_document(original)
    assert original == before


def test_deactivated_without_deactivated_by_means_emply() -> None:
    doc = validate_document({"users": [
        {"id": "u1", "username": "a", "status": "deactivated"},
        {"id": "u2", "username": "b", "status": "deactivated", "deactivatedBy": "sync"},
        {"id": "u3", "username": "c"},
    ]})
    assert [u["deactivatedBy"] for u in doc["users"]] == ["emply", "sync", None]


def test_known_role_ids_when_roles_section_absent() -> None:
    settings = good()["settings"]
    validate_document({"settings": settings}, known_role_ids={"employee"})
    validate_document({"settings": settings})  # nothing known: not checked
    with pytest.raises(DocumentError) as info:
        validate_document({"settings": settings}, known_role_ids={"hr"})
    assert info.value.path == "settings.groups[0].roleId"
    # roles in the file add to the known ones
    settings["groups"].append({"groupId": "g-hr", "roleId": "hr"})
    validate_document({"settings": settings, "roles": [{"id": "employee"}]},
                      known_role_ids={"hr"})
    with pytest.raises(DocumentError, match='unknown role "hr"'):
        validate_document({"settings": settings, "roles": [{"id": "employee"}]})


def test_known_employee_ids() -> None:
    users = [{"id": "u1", "username": "a", "employeeId": "e-1"}]
    validate_document({"users": users}, known_employee_ids={"e-1"})
    with pytest.raises(DocumentError, match='unknown employee "e-1"'):
        validate_document({"users": users}, known_employee_ids=set())


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()

BAD: list[tuple[tuple[Any, ...], Any, str, str]] = [
    (("users", 1, "status"), "enabled", 'users[1] (id "u-ray").status',
     'expected one of active, deactivated, deleted, got "enabled"'),
    (("users", 0, "username"), _DELETE, 'users[0] (id "u-megan").username',
     "required field missing"),
    (("users", 0, "id"), _DELETE, "users[0].id", "required field missing"),
    (("users", 0, "rolse"), ["employee"], 'users[0] (id "u-megan").rolse',
     'unknown field (did you mean "roles"?)'),
    (("users", 0, "roles"), "employee", 'users[0] (id "u-megan").roles',
     'expected a list, got "employee"'),
    (("users", 0, "roles"), ["employee", 3], 'users[0] (id "u-megan").roles[1]',
     "expected a non-empty string, got 3"),
    (("users", 0, "calendarSync"), "yes", 'users[0] (id "u-megan").calendarSync',
     'expected true or false, got "yes"'),
    (("users", 0, "employeeId"), "e-nobody", 'users[0] (id "u-megan").employeeId',
     'unknown employee "e-nobody"'),
    (("users", 0, "deactivatedBy"), "admin", 'users[0] (id "u-megan").deactivatedBy',
     "expected one of sync, emply"),
    (("users", 0, "linkedAt"), "yesterday", 'users[0] (id "u-megan").linkedAt',
     "expected an ISO 8601 date-time"),
    (("users", 1, "id"), "u-megan", 'users[1] (id "u-megan").id', "duplicate users id"),
    (("users", 0), "megan", "users[0]", 'expected an object, got "megan"'),
    (("users",), {"id": "u"}, "users", "expected a list, got an object"),
    (("employees", 0, "email"), _DELETE, 'employees[0] (id "e-ray").email',
     "required field missing"),
    (("employees", 0, "resignationDate"), "31/01/2027",
     'employees[0] (id "e-ray").resignationDate', "expected a date YYYY-MM-DD"),
    (("employees", 0, "resignationDate"), "2027-02-30",
     'employees[0] (id "e-ray").resignationDate', "expected a date YYYY-MM-DD"),
    (("employees", 0, "status"), "resigned", 'employees[0] (id "e-ray").status',
     "expected one of active, pending, archived"),
    (("roles", 0, "id"), _DELETE, "roles[0].id", "required field missing"),
    (("roles", 1, "administrator"), 1, 'roles[1] (id "administrator").administrator',
     "expected true or false, got 1"),
    (("settings", "tenantId"), _DELETE, "settings.tenantId", "required field missing"),
    (("settings", "defaultRoleId"), _DELETE, "settings.defaultRoleId",
     "required field missing"),
    (("settings", "defaultRoleId"), "boss", "settings.defaultRoleId", 'unknown role "boss"'),
    (("settings", "groups"), [], "settings.groups", "expected at least one group"),
    (("settings", "groups", 0, "roleId"), "hr", "settings.groups[0].roleId",
     'unknown role "hr"'),
    (("settings", "groups", 0, "groupId"), 5, "settings.groups[0].groupId",
     "expected a non-empty string, got 5"),
    (("settings", "groups", 1, "groupId"), "g-emp", "settings.groups[1].groupId",
     'duplicate group "g-emp"'),
    (("settings", "groups", 0, "role"), "x", "settings.groups[0].role",
     "unknown field"),
    (("settings", "syncroles"), True, "settings.syncroles",
     'unknown field (did you mean "syncRoles"?)'),
    (("settings", "deactivationGuard"), {"maxCount": -1},
     "settings.deactivationGuard.maxCount", "expected an integer >= 0, got -1"),
    (("settings", "deactivationGuard"), {"maxCount": True},
     "settings.deactivationGuard.maxCount", "expected an integer >= 0, got true"),
    (("settings", "deactivationGuard"), {"maxPercent": 120},
     "settings.deactivationGuard.maxPercent", "expected a number from 0 to 100, got 120"),
    (("settings", "writeBack"), {"create": "no"}, "settings.writeBack.create",
     "expected true or false"),
    (("settings", "writeBack"), {"craete": True}, "settings.writeBack.craete",
     'did you mean "create"'),
    (("settings", "allowedDomains"), "contoso.com", "settings.allowedDomains",
     "expected a list"),
    (("calendars", 0, "userId"), "u-ghost", 'calendars[0] (id "cal-1").userId',
     'unknown user "u-ghost"'),
    (("outboundEvents", 0, "start"), "tomorrow", 'outboundEvents[0] (id "o-1").start',
     "expected an ISO 8601 date-time"),
    (("outboundEvents", 0, "status"), "done", 'outboundEvents[0] (id "o-1").status',
     "expected one of pending, created, updated, cancelled, deleted, failed"),
    (("outboundEvents", 0, "attendees"), [{"email": "lee.gu"}],
     'outboundEvents[0] (id "o-1").attendees[0].email', "expected an e-mail address"),
    (("outboundEvents", 0, "attendees"), [{"email": "a@b.com"}, {"email": " A@B.com"}],
     'outboundEvents[0] (id "o-1").attendees[1].email', "is also attendees[0]"),
    (("outboundEvents", 0, "attendees"), [{"name": "Lee"}],
     'outboundEvents[0] (id "o-1").attendees[0].email', "required field missing"),
    (("outboundEvents", 0, "cancelled"), "yes", 'outboundEvents[0] (id "o-1").cancelled',
     "expected true or false"),
    (("emplyees",), [], "emplyees", 'unknown section (did you mean "employees"?)'),
]


@pytest.mark.parametrize(("where", "value", "path", "message"), BAD,
                         ids=[b[2] + ":" + b[3][:20] for b in BAD])
def test_bad_documents_name_entity_and_field(where: tuple[Any, ...], value: Any,
                                             path: str, message: str) -> None:
    doc = _set(good(), where, value)
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert info.value.path == path
    assert message in info.value.detail
    assert str(info.value).startswith(path + ": ")


def test_all_errors_are_listed() -> None:
    doc = good()
    doc["users"][0]["status"] = "enabled"
    doc["employees"][0]["status"] = "gone"
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert [p for p, _ in info.value.errors] == ['users[0] (id "u-megan").status',
                                                 'employees[0] (id "e-ray").status']


def test_not_an_object() -> None:
    with pytest.raises(DocumentError, match="expected a JSON object, got a list"):
        validate_document([])


UNIQUE: list[tuple[str, tuple[Any, ...], Any, str, str]] = [
    ("username differing in case", ("users", 1, "username"), " Megan.Jordan@CONTOSO.com",
     'users[1] (id "u-ray").username',
     '" Megan.Jordan@CONTOSO.com" is also the username of users[0] (id "u-megan")'),
    ("entraId", ("users", 1, "entraId"), "ABC-1", 'users[1] (id "u-ray").entraId',
     '"ABC-1" is also the entraId of users[0] (id "u-megan")'),
]


@pytest.mark.parametrize(("where", "value", "path", "message"),
                         [u[1:] for u in UNIQUE], ids=[u[0] for u in UNIQUE])
def test_values_that_identify_a_user_are_unique(where: tuple[Any, ...], value: Any,
                                                path: str, message: str) -> None:
    doc = good()
    doc["users"][0].update({"email": "megan@contoso.com", "entraId": "abc-1"})
    _set(doc, where, value)
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert info.value.errors == [(path, message + " (compared ignoring case and "
                                  "surrounding spaces)")]


def test_identifiers_are_nfc_and_unique_in_any_normal_form() -> None:
    doc = good()
    doc["users"][0]["username"] = "Rene\u0301@contoso.com"  # NFD: e + combining acute
    assert validate_document(doc)["users"][0]["username"] == "Ren\u00e9@contoso.com"
    doc["users"][1]["username"] = "ren\u00e9@CONTOSO.com"
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert info.value.path == 'users[1] (id "u-ray").username'


@pytest.mark.parametrize("char", ["\u200b", "\u200d", "\u202e", "\u2066", "\ufeff",
                                  "\u00ad", "\u3164", "\u00a0", "\x07", "\u2028"])
@pytest.mark.parametrize("field", ["username", "email", "id", "entraId"])
def test_invisible_characters_are_refused_in_identifiers(field: str, char: str) -> None:
    doc = good()
    doc["users"][0][field] = f"zz{char}@contoso.com"
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    path, detail = info.value.errors[0]  # (changing the id also orphans a calendar)
    assert path.endswith(f".{field}") and f"U+{ord(char):04X}" in detail


def test_two_users_may_share_an_e_mail_address() -> None:
    """R3: a rehire, a shared address; the matching reports the tie (test_faq_create)."""
    doc = good()
    doc["users"][0]["email"] = "megan@contoso.com"
    doc["users"][1]["email"] = " MEGAN@contoso.com"
    assert validate_document(doc)["users"][1]["email"] == " MEGAN@contoso.com"


def test_employee_e_mails_are_unique() -> None:
    doc = good()
    doc["employees"].append({"id": "e-2", "email": "Ray.Ross@contoso.com"})
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert info.value.path == 'employees[1] (id "e-2").email'
    assert 'also the e-mail address of employees[0] (id "e-ray")' in info.value.detail


@pytest.mark.parametrize("address", ["megan", "megan@", "@contoso.com", "megan@contoso",
                                     "me gan@contoso.com", "megan@@contoso.com",
                                     "megan@contoso..com"])
def test_e_mail_addresses_are_addresses(address: str) -> None:
    doc = good()
    doc["users"][0]["email"] = address
    doc["employees"][0]["email"] = address
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert [p for p, _ in info.value.errors] == ['users[0] (id "u-megan").email',
                                                 'employees[0] (id "e-ray").email']
    assert info.value.detail.startswith("expected an e-mail address like name@example.com")


def test_e_mail_with_surrounding_spaces_is_accepted_as_r3_ignores_them() -> None:
    doc = good()
    doc["users"][0]["email"] = "  megan.jordan@contoso.com "
    assert validate_document(doc)["users"][0]["email"] == "  megan.jordan@contoso.com "


def test_users_roles_must_exist() -> None:
    doc = good()
    doc["users"][0]["roles"] = ["employee", "boss", "administrator", "chief"]
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert info.value.errors == [('users[0] (id "u-megan").roles[1]', 'unknown role "boss"'),
                                 ('users[0] (id "u-megan").roles[3]', 'unknown role "chief"')]
    # against the stored roles when the file has no roles section
    users = {"users": [{"id": "u", "username": "u", "roles": ["hr"]}]}
    validate_document(users, known_role_ids={"hr"})
    with pytest.raises(DocumentError, match='unknown role "hr"'):
        validate_document(users, known_role_ids={"employee"})


def test_every_problem_of_one_entity_is_listed() -> None:
    doc = good()
    doc["users"][0].update({"status": "enabled", "calendarSync": "yes", "rolse": [],
                            "roles": [1, "employee", 2]})
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert [p for p, _ in info.value.errors] == [
        'users[0] (id "u-megan").rolse', 'users[0] (id "u-megan").status',
        'users[0] (id "u-megan").roles[0]', 'users[0] (id "u-megan").roles[2]',
        'users[0] (id "u-megan").calendarSync']


def test_problems_are_counted_beyond_the_first_fifty() -> None:
    doc = good()
    doc["users"] = [{"id": f"u{i}", "username": f"u{i}", "status": "on"} for i in range(70)]
    doc["calendars"] = doc["outboundEvents"] = []
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert info.value.total == 70
    assert len(info.value.errors) == 50
    report = info.value.report().splitlines()
    assert report[0] == "70 problems:"
    assert report[1] == '  users[0] (id "u0").status: expected one of active, deactivated, ' \
        'deleted, got "on"'
    assert report[-1] == "  ... and 20 more"
    assert len(report) == 52
    assert info.value.to_json()["total"] == 70


def test_a_reference_to_an_entity_refused_for_another_reason_is_not_a_second_problem() -> None:
    doc = good()
    doc["employees"][0]["status"] = "gone"
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert [p for p, _ in info.value.errors] == ['employees[0] (id "e-ray").status']


def test_free_form_values_nest_at_most_32_deep() -> None:
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"next": deep}
    doc = good()
    doc["users"][0]["history"] = [{"fine": {"a": [1, 2]}}, deep]
    doc["users"][0]["photo"] = {"sha256": "abc", "extra": deep}
    with pytest.raises(DocumentError) as info:
        validate_document(doc)
    assert info.value.errors == [
        ('users[0] (id "u-megan").photo.extra', "nested deeper than 32 levels"),
        ('users[0] (id "u-megan").history[1]', "nested deeper than 32 levels")]
