"""The Emply state document: validation and normalisation (pure, no I/O).

The document is what `emply-sync emply import` reads and `export` prints
(README, "Files": the Emply state file). `validate_document` checks it against the
schema table below and returns a *normalised* copy: every section and every
field present, defaults filled in, so the rest of the code never has to guess.

Invariants of a normalised document:

- the seven sections `settings` (object or None), `roles`, `users`,
  `employees`, `calendars`, `events`, `outboundEvents` (lists) are present;
- every entity carries exactly the fields of its schema, no more (unknown
  fields are refused so a typo is never silently dropped), no fewer;
- ids are unique per entity kind; references resolve (users' `employeeId`,
  settings' role ids, calendars'/events' `userId`), either inside the document
  or against the ids the caller says already exist;
- a user with status `deactivated` has a `deactivatedBy` (`emply` when the file
  did not say: a user deactivated in Emply is never reactivated by the sync).

- usernames, `entraId`s and employee e-mail addresses are unique ignoring case,
  surrounding space and Unicode normalisation (also against the stored entities a
  plain import keeps); two users may share an e-mail address (R3); e-mail fields are
  addresses; users' roles exist; at most `MAX_ROLES` roles (`shared.emply.checks`);
- identifiers (ids, usernames, e-mail addresses, Entra ids) are NFC-normalised and
  hold no invisible or control character (`shared.emply.fields`, `shared.emply.gate`).

Errors raise `DocumentError` whose `path` names the entity and field, e.g.
``users[3] (id "u-megan").status``; it collects every problem of the document (each
entity's fields all checked), keeps the first `MAX_LISTED` and counts them all.
Reading a file's bytes into JSON is `shared.emply.file`; what Table Storage would
refuse on top is `shared.store.limits`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from shared.emply import checks as emply_checks
from shared.emply import outbound_checks
from shared.emply.fields import (
    BOOL_FALSE,
    BOOL_TRUE,
    STR,
    Field,
    Invalid,
    any_object,
    check_fields,
    date,
    date_time,
    expected,
    identifier,
    integer,
    json_field,
    list_of,
    map_of,
    number,
    object_of,
    object_schema,
    one_of,
    optional,
    type_name,
    zoned_date_time,
)

__all__ = [
    "ENTITY_KINDS",
    "MAX_ROLES",
    "SCHEMAS",
    "SECTIONS",
    "DocumentError",
    "Field",
    "entity_key",
    "json_fields",
    "object_schema",
    "validate_document",
]

_show = emply_checks.show
_label = emply_checks.label


MAX_LISTED = 50
"""Problems a `DocumentError` keeps (and a message lists); `total` counts them all."""


class DocumentError(ValueError):
    """A document (or part of one) does not follow the schema.

    `path` and `detail` describe the first problem; `errors` holds the first
    `MAX_LISTED` of them as ``(path, detail)`` pairs and `total` counts them all.
    ``str(error)`` is ``"<path>: <detail>"``; `report()` lists them.
    """

    def __init__(self, path: str, detail: str,
                 errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{path}: {detail}" if path else detail)
        self.path = path
        self.detail = detail
        problems = errors or [(path, detail)]
        self._all = problems
        self.total = len(problems)
        self.errors: list[tuple[str, str]] = problems[:MAX_LISTED]
        self.valid: dict[str, Any] | None = None
        """The entities that passed their own checks, when the whole document was
        checked (as `validate_document` returns them), so a caller can look for more
        problems in them (`positions`: their indices in the document, per kind)."""
        self.positions: dict[str, list[int]] = {}

    def with_more(self, problems: list[tuple[str, str]]) -> DocumentError:
        """This error with `problems` added after its own."""
        return DocumentError.of([*self._all, *problems])

    @classmethod
    def of(cls, errors: list[tuple[str, str]]) -> DocumentError:
        """The error for a non-empty list of problems (the first one heads it)."""
        return cls(errors[0][0], errors[0][1], errors)

    def report(self) -> str:
        """Every kept problem on its own line, and how many more there are."""
        head = "1 problem" if self.total == 1 else f"{self.total} problems"
        lines = [f"{head}:"]
        lines += [f"  {path}: {detail}" if path else f"  {detail}" for path, detail in self.errors]
        if self.total > len(self.errors):
            lines.append(f"  ... and {self.total - len(self.errors)} more")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The problems as JSON (an HTTP problem body's `errors`)."""
        return {"total": self.total,
                "errors": [{"path": path, "detail": detail} for path, detail in self.errors]}



# --- the schema table ------------------------------------------------------

MAX_PAST_DAYS = 365
MAX_FUTURE_DAYS = 730
"""R14's event window at most (a calendarView spans a few years at most)."""

SETTINGS: dict[str, Field] = {
    "enabled": BOOL_TRUE,
    "tenantId": Field(identifier, required=True),
    "groups": json_field(list_of(object_of({
        "groupId": Field(identifier, required=True),
        "roleId": Field(optional(identifier)),
    })), [], required=True),
    "syncRoles": BOOL_FALSE,
    "defaultRoleId": Field(identifier, required=True),
    "allowedDomains": json_field(list_of(identifier), []),
    "writeBack": json_field(object_of({"create": BOOL_FALSE, "update": BOOL_FALSE,
                              "delete": BOOL_FALSE}),
                     {"create": False, "update": False, "delete": False}),
    "calendarSync": BOOL_FALSE,
    # R14: the days before and after today (UTC) whose events are mirrored.
    "eventWindow": json_field(object_of({
        "pastDays": Field(integer(0, MAX_PAST_DAYS), default=1),
        "futureDays": Field(integer(1, MAX_FUTURE_DAYS), default=60),
    }), {"pastDays": 1, "futureDays": 60}),
    "photoSync": BOOL_FALSE,
    "deactivationGuard": json_field(object_of({
        "maxCount": Field(integer(0), default=50),
        "maxPercent": Field(number(0, 100), default=20),
        "minCount": Field(integer(0), default=10),
    }), {"maxCount": 50, "maxPercent": 20, "minCount": 10}),
}

MAX_ROLES = 100
"""Roles the Emply side holds at most (a few dozen in practice; one Table transaction
holds 100): `PUT /api/roles` and every import are refused beyond it."""
USER_STATUSES = ("active", "deactivated", "deleted")
EMPLOYEE_STATUSES = ("active", "pending", "archived")
OUTBOUND_STATUSES = ("pending", "created", "updated", "cancelled", "deleted", "failed")
"""What M365 holds of an outbound event (R15)."""

SCHEMAS: dict[str, dict[str, Field]] = {
    "roles": {
        "id": Field(identifier, required=True),
        "name": STR,
        "administrator": BOOL_FALSE,
    },
    "users": {
        "id": Field(identifier, required=True),
        "username": Field(identifier, required=True),
        "email": Field(optional(identifier)),
        "displayName": STR,
        "status": Field(one_of(*USER_STATUSES), default="active"),
        "roles": json_field(list_of(identifier), []),
        "employeeId": Field(optional(identifier)),
        "source": Field(identifier, default="manual"),
        "entraId": Field(optional(identifier)),
        "calendarSync": BOOL_TRUE,
        # What the sync knows (export adds them; import takes them back).
        "deactivationReason": STR,
        "deactivatedBy": Field(optional(one_of("sync", "emply"))),
        "linkedAt": Field(optional(date_time)),
        "tenantId": Field(optional(identifier)),
        "photo": json_field(optional(object_of({"sha256": Field(identifier, required=True)},
                                       open_ended=True)), None),
        "syncGroups": json_field(list_of(identifier), []),
        "roleBasis": json_field(optional(map_of(optional(identifier))), None),
        "linkedDomain": STR,
        "entraCreate": STR,
        "lastChange": json_field(optional(any_object), None),
        "history": json_field(list_of(any_object), []),
    },
    "employees": {
        "id": Field(identifier, required=True),
        "email": Field(identifier, required=True),
        "displayName": STR,
        "givenName": STR,
        "surname": STR,
        "jobTitle": STR,
        "department": STR,
        "mobilePhone": STR,
        "resignationDate": Field(optional(date)),
        "status": Field(one_of(*EMPLOYEE_STATUSES), default="active"),
    },
    "calendars": {
        "userId": Field(identifier, required=True),
        "id": Field(identifier, required=True),
        "name": STR,
        "isDefault": BOOL_FALSE,
        "enabled": BOOL_FALSE,
    },
    "events": {
        "userId": Field(identifier, required=True),
        "calendarId": Field(identifier, required=True),
        "id": Field(identifier, required=True),
        "subject": STR,
        "start": Field(date_time, required=True),
        "end": Field(date_time, required=True),
        "timeZone": STR,
        "showAs": STR,
        "sensitivity": STR,
        "isAllDay": BOOL_FALSE,
    },
    "outboundEvents": {
        "id": Field(identifier, required=True),
        "userId": Field(identifier, required=True),
        "subject": STR,
        "start": Field(zoned_date_time, required=True),
        "end": Field(zoned_date_time, required=True),
        "location": STR,
        "body": STR,
        "attendees": json_field(list_of(object_of({"email": Field(identifier, required=True),
                                                   "name": STR})), []),
        "cancelled": BOOL_FALSE,
        "deleteRequested": BOOL_FALSE,
        # What the sync knows (R15; export adds them, import takes them back).
        "graphId": Field(optional(identifier)),
        "status": Field(one_of(*OUTBOUND_STATUSES), default="pending"),
        "reason": STR,
        "lastError": STR,
        "pushed": json_field(optional(map_of(identifier)), None),
        "attemptedAt": Field(optional(date_time)),
        "failedFor": STR,
    },
}

ENTITY_KINDS: tuple[str, ...] = tuple(SCHEMAS)
SECTIONS: tuple[str, ...] = ("settings", *ENTITY_KINDS)

# Entities identified by more than their id (a calendar id is unique per mailbox).
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "calendars": ("userId", "id"),
    "events": ("userId", "calendarId", "id"),
}


def entity_key(kind: str, entity: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields that identify an entity of `kind` (its id, or user + id)."""
    return tuple(entity[f] for f in _KEY_FIELDS.get(kind, ("id",)))


def json_fields(kind: str) -> frozenset[str]:
    """Fields of `kind` ("settings" or an entity kind) that are lists/objects."""
    schema = SETTINGS if kind == "settings" else SCHEMAS[kind]
    return frozenset(name for name, spec in schema.items() if spec.json)


def validate_document(
    doc: object,
    *,
    partial: bool = True,
    known_role_ids: Iterable[str] | None = None,
    known_user_ids: Iterable[str] | None = None,
    known_employee_ids: Iterable[str] | None = None,
    stored: emply_checks.Stored | None = None,
    known_calendars: Iterable[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Check an Emply state document and return it normalised.

    `partial`: sections may be left out (they come back empty / None); with
    ``partial=False`` all seven must be present. References are checked
    against the document's own ids plus the matching `known_*` ids (what the
    store already holds); when a section is absent and its `known_*` is None,
    references to it are not checked. `stored`: the store's entities the
    uniqueness checks compare with besides the document's own (a plain import).
    `known_calendars`: the (userId, id) of the stored calendars events may belong to.
    Raises `DocumentError` naming the entity and field of every problem found.
    """
    if not isinstance(doc, dict):
        raise DocumentError("", f"expected a JSON object, got {type_name(doc)}")
    errors = _section_problems(doc, partial)
    out: dict[str, Any] = {"settings": None}
    positions: dict[str, list[int]] = {}
    if doc.get("settings") is not None:
        try:
            out["settings"] = object_of(SETTINGS)(doc["settings"], "settings")
        except Invalid as e:
            errors += e.problems
    for kind, schema in SCHEMAS.items():
        out[kind], positions[kind] = _entities(kind, schema, doc.get(kind, []), errors)

    # Across entities, over those that passed their own checks.
    errors += emply_checks.too_many_roles(doc, known_role_ids, MAX_ROLES)
    emply_checks.check_references(doc, out, errors, known_role_ids, known_user_ids,
                                  known_employee_ids)
    errors += emply_checks.event_calendars(doc, out, known_calendars)
    errors += emply_checks.check_emails(out)
    errors += outbound_checks.check_outbound(out["outboundEvents"])
    errors += emply_checks.check_unique(out, stored)
    if errors:
        error = DocumentError.of(errors)
        error.valid, error.positions = out, positions
        raise error
    return out


def _section_problems(doc: Mapping[str, Any], partial: bool) -> list[tuple[str, str]]:
    """Unknown sections (with a "did you mean"), and missing ones unless `partial`."""
    errors: list[tuple[str, str]] = []
    for key in doc:
        if key not in SECTIONS:
            hint = difflib.get_close_matches(str(key), SECTIONS, n=1)
            errors.append((str(key), "unknown section" + (
                f' (did you mean "{hint[0]}"?)' if hint else "")
                + "; allowed: " + ", ".join(SECTIONS)))
    if not partial:
        errors += [(s, "required section missing") for s in SECTIONS if s not in doc]
    return errors


def _entities(kind: str, schema: Mapping[str, Field], items: object,
              errors: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The entities of one section that pass their own checks, and their indices in the
    section; the problems of the others are added to `errors`."""
    if not isinstance(items, list):
        errors.append((kind, f"expected a list, got {type_name(items)}"))
        return [], []
    good: list[dict[str, Any]] = []
    where: list[int] = []
    seen: dict[tuple[str, ...], int] = {}
    for i, item in enumerate(items):
        label = _label(kind, i, item)
        try:
            if not isinstance(item, dict):
                raise expected("an object", item, label)
            entity = check_fields(item, schema, label)
        except Invalid as e:
            errors += e.problems
            continue
        key = entity_key(kind, entity)
        if key in seen:
            errors.append((f"{label}.id", f"duplicate {kind} id, also {kind}[{seen[key]}]"))
            continue
        seen[key] = i
        if kind == "users" and entity["status"] == "deactivated" \
                and entity["deactivatedBy"] is None:
            entity["deactivatedBy"] = "emply"
        good.append(entity)
        where.append(i)
    return good, where
