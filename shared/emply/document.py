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

- usernames, user e-mail addresses, employee e-mail addresses and `entraId`s are
  unique ignoring case and surrounding space (also against the stored entities a
  plain import keeps), e-mail fields are addresses, users' roles exist
  (`shared.emply.checks`).

Errors raise `DocumentError` whose `path` names the entity and field, e.g.
``users[3] (id "u-megan").status``; it collects every problem of the document (each
entity's fields all checked), keeps the first `MAX_LISTED` and counts them all.
Reading a file's bytes into JSON is `shared.emply.file`; what Table Storage would
refuse on top is `shared.store.limits`.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from shared.emply import checks as emply_checks
from shared.emply import outbound_checks

__all__ = [
    "ENTITY_KINDS",
    "SCHEMAS",
    "SECTIONS",
    "DocumentError",
    "Field",
    "entity_key",
    "json_fields",
    "validate_document",
]


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


class _Invalid(Exception):
    """One or more problems of one value: `problems` lists them, the first is `path`."""

    def __init__(self, path: str, detail: str,
                 problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(path, detail)
        self.path = path
        self.detail = detail
        self.problems = problems or [(path, detail)]

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> _Invalid:
        return cls(problems[0][0], problems[0][1], problems)


Check = Callable[[object, str], Any]

JSON_SCHEMAS: dict[Check, dict[str, Any]] = {}
"""Each checker's JSON Schema (`shared.emply.schema` builds the OpenAPI document from
them): the schema is declared beside the check it describes, so they cannot drift."""


def _described(check: Check, schema: dict[str, Any]) -> Check:
    JSON_SCHEMAS[check] = schema
    return check


class Field(NamedTuple):
    """One field of an entity: how to check it, and its default."""

    check: Check
    required: bool = False
    default: Any = None
    json: bool = False  # a list/object: the store keeps it as JSON text


_show = emply_checks.show
_label = emply_checks.label


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _expected(what: str, value: object, path: str) -> _Invalid:
    got = _show(value) if isinstance(value, str | int | float) or value is None else _type_name(
        value)
    return _Invalid(path, f"expected {what}, got {got}")


# --- checkers: (value, path) -> normalised value, or raise _Invalid ---------

def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _expected("a string", value, path)
    return value


def _id(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _expected("a non-empty string", value, path)
    if len(value) > 255:
        raise _Invalid(path, "expected at most 255 characters")
    return value


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _expected("true or false", value, path)
    return value


def _optional(check: Check) -> Check:
    def run(value: object, path: str) -> Any:
        return None if value is None else check(value, path)
    return _described(run, {"anyOf": [JSON_SCHEMAS[check], {"type": "null"}]})


def _one_of(*choices: str) -> Check:
    def run(value: object, path: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _expected("one of " + ", ".join(choices), value, path)
        return value
    return _described(run, {"type": "string", "enum": list(choices)})


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def run(value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum \
                or (maximum is not None and value > maximum):
            raise _expected(f"an integer >= {minimum}" if maximum is None else
                            f"an integer from {minimum} to {maximum}", value, path)
        return value
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return _described(run, schema)


def _number(low: float, high: float) -> Check:
    def run(value: object, path: str) -> int | float:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or (isinstance(value, float) and not math.isfinite(value))
                or not low <= value <= high):
            raise _expected(f"a number from {low:g} to {high:g}", value, path)
        return value
    return _described(run, {"type": "number", "minimum": low, "maximum": high})


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(value: object, path: str) -> str:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            dt.date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise _expected("a date YYYY-MM-DD", value, path)


def _datetime(value: object, path: str) -> str:
    if isinstance(value, str) and len(value) >= 10:
        try:
            dt.datetime.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise _expected("an ISO 8601 date-time", value, path)


def _zoned_datetime(value: object, path: str) -> str:
    """An ISO 8601 date-time with its zone (`Z` or an offset): an instant, as Graph needs."""
    if isinstance(value, str) and len(value) >= 16:
        try:
            if dt.datetime.fromisoformat(value.upper()).tzinfo is not None:
                return value
        except ValueError:
            pass
    raise _expected("an ISO 8601 date-time with a zone (e.g. 2026-12-02T10:00:00Z)",
                    value, path)


def _list_of(item: Check) -> Check:
    def run(value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _expected("a list", value, path)
        out: list[Any] = []
        problems: list[tuple[str, str]] = []
        for i, v in enumerate(value):
            try:
                out.append(item(v, f"{path}[{i}]"))
            except _Invalid as e:
                problems += e.problems
        if problems:
            raise _Invalid.of(problems)
        return out
    return _described(run, {"type": "array", "items": JSON_SCHEMAS[item]})


def _map_of(item: Check) -> Check:
    """An object with any keys (ids), each value checked by `item`."""
    def run(value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _expected("an object", value, path)
        return {_id(k, f"{path} key"): item(v, f"{path}.{k}") for k, v in value.items()}
    return _described(run, {"type": "object", "propertyNames": JSON_SCHEMAS[_id],
                            "additionalProperties": JSON_SCHEMAS[item]})


def _any_object(value: object, path: str) -> dict[str, Any]:
    """An object the sync owns (history entry, last change): kept as is."""
    if not isinstance(value, dict):
        raise _expected("an object", value, path)
    _check_depth(value, path)
    return copy.deepcopy(value)


MAX_DEPTH = 32
"""How deeply a free-form value (history entry, last change, photo) may nest."""


def _check_depth(value: object, path: str) -> None:
    """Refuse a free-form value nested deeper than `MAX_DEPTH` (copying or encoding it
    would recurse that deep). Iterative, so checking never recurses itself."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Invalid(path, f"nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))


def _object(schema: Mapping[str, Field], *, open_ended: bool = False) -> Check:
    def run(value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _expected("an object", value, path)
        return _check_fields(value, schema, path, open_ended=open_ended)
    return _described(run, object_schema(schema, open_ended=open_ended))


def object_schema(schema: Mapping[str, Field], *, open_ended: bool = False,
                  partial: bool = False) -> dict[str, Any]:
    """The JSON Schema of an entity of `schema`'s fields (`partial`: none required, as
    a merge patch's body; a null there clears the field)."""
    properties: dict[str, Any] = {}
    for name, spec in schema.items():
        described = JSON_SCHEMAS[spec.check]
        if partial:
            described = {"anyOf": [described, {"type": "null"}]}
        properties[name] = described
    out: dict[str, Any] = {"type": "object", "properties": properties,
                           "additionalProperties": open_ended}
    required = [name for name, spec in schema.items() if spec.required and not partial]
    if required:
        out["required"] = required
    return out


def _check_fields(value: Mapping[str, Any], schema: Mapping[str, Field], path: str,
                  *, open_ended: bool = False) -> dict[str, Any]:
    """The entity's fields checked and defaulted; every problem of it in one `_Invalid`."""
    prefix = f"{path}." if path else ""
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key in value:
        if key not in schema and not open_ended:
            hint = difflib.get_close_matches(str(key), list(schema), n=1)
            detail = "unknown field" + (f' (did you mean "{hint[0]}"?)' if hint else "")
            problems.append((f"{prefix}{key}", detail + "; allowed: " + ", ".join(schema)))
    for name, spec in schema.items():
        try:
            if name in value:
                out[name] = spec.check(value[name], prefix + name)
            elif spec.required:
                raise _Invalid(prefix + name, "required field missing")
            else:
                out[name] = copy.deepcopy(spec.default)
        except _Invalid as e:
            problems += e.problems
    if open_ended:
        for key, extra in value.items():
            if key not in schema:
                try:
                    _check_depth(extra, prefix + str(key))
                except _Invalid as e:
                    problems += e.problems
                    continue
                out[key] = copy.deepcopy(extra)
    if problems:
        raise _Invalid.of(problems)
    return out


_described(_string, {"type": "string"})
_described(_id, {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"})
_described(_boolean, {"type": "boolean"})
_described(_date, {"type": "string", "format": "date"})
_described(_datetime, {"type": "string", "minLength": 10,
                       "description": "ISO 8601 date-time"})
_described(_zoned_datetime, {"type": "string", "format": "date-time",
                             "description": "ISO 8601 date-time with a zone"})
_described(_any_object, {"type": "object"})


def _js(check: Check, default: Any, *, required: bool = False) -> Field:
    return Field(check, required, default, json=True)


_STR = Field(_optional(_string))
_BOOL_TRUE = Field(_boolean, default=True)
_BOOL_FALSE = Field(_boolean, default=False)

# --- the schema table ------------------------------------------------------

MAX_PAST_DAYS = 365
MAX_FUTURE_DAYS = 730
"""R14's event window at most (a calendarView spans a few years at most)."""

SETTINGS: dict[str, Field] = {
    "enabled": _BOOL_TRUE,
    "tenantId": Field(_id, required=True),
    "groups": _js(_list_of(_object({
        "groupId": Field(_id, required=True),
        "roleId": Field(_optional(_id)),
    })), [], required=True),
    "syncRoles": _BOOL_FALSE,
    "defaultRoleId": Field(_id, required=True),
    "allowedDomains": _js(_list_of(_id), []),
    "writeBack": _js(_object({"create": _BOOL_FALSE, "update": _BOOL_FALSE,
                              "delete": _BOOL_FALSE}),
                     {"create": False, "update": False, "delete": False}),
    "calendarSync": _BOOL_FALSE,
    # R14: the days before and after today (UTC) whose events are mirrored.
    "eventWindow": _js(_object({
        "pastDays": Field(_integer(0, MAX_PAST_DAYS), default=1),
        "futureDays": Field(_integer(1, MAX_FUTURE_DAYS), default=60),
    }), {"pastDays": 1, "futureDays": 60}),
    "photoSync": _BOOL_FALSE,
    "deactivationGuard": _js(_object({
        "maxCount": Field(_integer(0), default=50),
        "maxPercent": Field(_number(0, 100), default=20),
        "minCount": Field(_integer(0), default=10),
    }), {"maxCount": 50, "maxPercent": 20, "minCount": 10}),
}

USER_STATUSES = ("active", "deactivated", "deleted")
EMPLOYEE_STATUSES = ("active", "pending", "archived")
OUTBOUND_STATUSES = ("pending", "created", "updated", "cancelled", "deleted", "failed")
"""What M365 holds of an outbound event (R15)."""

SCHEMAS: dict[str, dict[str, Field]] = {
    "roles": {
        "id": Field(_id, required=True),
        "name": _STR,
        "administrator": _BOOL_FALSE,
    },
    "users": {
        "id": Field(_id, required=True),
        "username": Field(_id, required=True),
        "email": _STR,
        "displayName": _STR,
        "status": Field(_one_of(*USER_STATUSES), default="active"),
        "roles": _js(_list_of(_id), []),
        "employeeId": Field(_optional(_id)),
        "source": Field(_id, default="manual"),
        "entraId": Field(_optional(_id)),
        "calendarSync": _BOOL_TRUE,
        # What the sync knows (export adds them; import takes them back).
        "deactivationReason": _STR,
        "deactivatedBy": Field(_optional(_one_of("sync", "emply"))),
        "linkedAt": Field(_optional(_datetime)),
        "tenantId": Field(_optional(_id)),
        "photo": _js(_optional(_object({"sha256": Field(_id, required=True)},
                                       open_ended=True)), None),
        "syncGroups": _js(_list_of(_id), []),
        "roleBasis": _js(_optional(_map_of(_optional(_id))), None),
        "linkedDomain": _STR,
        "entraCreate": _STR,
        "lastChange": _js(_optional(_any_object), None),
        "history": _js(_list_of(_any_object), []),
    },
    "employees": {
        "id": Field(_id, required=True),
        "email": Field(_id, required=True),
        "displayName": _STR,
        "givenName": _STR,
        "surname": _STR,
        "jobTitle": _STR,
        "department": _STR,
        "mobilePhone": _STR,
        "resignationDate": Field(_optional(_date)),
        "status": Field(_one_of(*EMPLOYEE_STATUSES), default="active"),
    },
    "calendars": {
        "userId": Field(_id, required=True),
        "id": Field(_id, required=True),
        "name": _STR,
        "isDefault": _BOOL_FALSE,
        "enabled": _BOOL_FALSE,
    },
    "events": {
        "userId": Field(_id, required=True),
        "calendarId": Field(_id, required=True),
        "id": Field(_id, required=True),
        "subject": _STR,
        "start": Field(_datetime, required=True),
        "end": Field(_datetime, required=True),
        "timeZone": _STR,
        "showAs": _STR,
        "sensitivity": _STR,
        "isAllDay": _BOOL_FALSE,
    },
    "outboundEvents": {
        "id": Field(_id, required=True),
        "userId": Field(_id, required=True),
        "subject": _STR,
        "start": Field(_zoned_datetime, required=True),
        "end": Field(_zoned_datetime, required=True),
        "location": _STR,
        "body": _STR,
        "attendees": _js(_list_of(_object({"email": Field(_id, required=True),
                                           "name": _STR})), []),
        "cancelled": _BOOL_FALSE,
        "deleteRequested": _BOOL_FALSE,
        # What the sync knows (R15; export adds them, import takes them back).
        "graphId": Field(_optional(_id)),
        "status": Field(_one_of(*OUTBOUND_STATUSES), default="pending"),
        "reason": _STR,
        "lastError": _STR,
        "pushed": _js(_optional(_map_of(_id)), None),
        "attemptedAt": Field(_optional(_datetime)),
        "failedFor": _STR,
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


def _refs(doc: Mapping[str, Any], section: str, known: Iterable[str] | None,
          present: bool) -> set[str] | None:
    """Ids a reference may point at: the document's own plus the known ones.

    Known ids count even when the section is present: a plain import only adds
    to what the store holds (with `--replace` the store passes empty sets).
    """
    ids = None if known is None else set(known)
    if present:
        ids = (ids or set()) | emply_checks.raw_ids(doc.get(section))
    return ids


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
    errors: list[tuple[str, str]] = []
    if not isinstance(doc, dict):
        raise DocumentError("", f"expected a JSON object, got {_type_name(doc)}")
    for key in doc:
        if key not in SECTIONS:
            hint = difflib.get_close_matches(str(key), SECTIONS, n=1)
            errors.append((str(key), "unknown section" + (
                f' (did you mean "{hint[0]}"?)' if hint else "")
                + "; allowed: " + ", ".join(SECTIONS)))
    if not partial:
        errors += [(s, "required section missing") for s in SECTIONS if s not in doc]

    out: dict[str, Any] = {"settings": None}
    positions: dict[str, list[int]] = {}
    if doc.get("settings") is not None:
        try:
            out["settings"] = _object(SETTINGS)(doc["settings"], "settings")
        except _Invalid as e:
            errors += e.problems
    for kind, schema in SCHEMAS.items():
        items = doc.get(kind, [])
        if not isinstance(items, list):
            errors.append((kind, f"expected a list, got {_type_name(items)}"))
            out[kind] = []
            continue
        good: list[dict[str, Any]] = []
        positions[kind] = where = []
        seen: dict[tuple[str, ...], int] = {}
        for i, item in enumerate(items):
            label = _label(kind, i, item)
            try:
                if not isinstance(item, dict):
                    raise _expected("an object", item, label)
                entity = _check_fields(item, schema, label)
            except _Invalid as e:
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
        out[kind] = good

    # Across entities, over those that passed their own checks.
    _check_references(doc, out, errors, known_role_ids, known_user_ids, known_employee_ids)
    errors += _event_calendars(doc, out, known_calendars)
    errors += emply_checks.check_emails(out)
    errors += outbound_checks.check_outbound(out["outboundEvents"])
    errors += emply_checks.check_unique(out, stored)
    if errors:
        error = DocumentError.of(errors)
        error.valid, error.positions = out, positions
        raise error
    return out


def _event_calendars(doc: Mapping[str, Any], out: Mapping[str, Any],
                     known: Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Every event in a calendar Emply keeps (R14 mirrors events of kept calendars only):
    the document's own calendars plus the `known` ones; unchecked when the document has
    no calendars section and no known ones are given."""
    if known is None and "calendars" not in doc:
        return []
    calendars = {(c["userId"], c["id"]) for c in out["calendars"]} | set(known or ())
    return [(f"{_label('events', i, e)}.calendarId",
             f"unknown calendar {_show(e['calendarId'])} of user {_show(e['userId'])}")
            for i, e in enumerate(out["events"])
            if (e["userId"], e["calendarId"]) not in calendars]


def _check_references(
    doc: Mapping[str, Any], out: dict[str, Any], errors: list[tuple[str, str]],
    known_role_ids: Iterable[str] | None, known_user_ids: Iterable[str] | None,
    known_employee_ids: Iterable[str] | None,
) -> None:
    roles = _refs(doc, "roles", known_role_ids, "roles" in doc)
    users = _refs(doc, "users", known_user_ids, "users" in doc)
    employees = _refs(doc, "employees", known_employee_ids, "employees" in doc)

    settings = out["settings"]
    if settings is not None:
        if not settings["groups"]:
            errors.append(("settings.groups", "expected at least one group"))
        groups_seen: set[str] = set()
        for i, group in enumerate(settings["groups"]):
            path = f"settings.groups[{i}]"
            if group["groupId"] in groups_seen:
                errors.append((f"{path}.groupId",
                               f"duplicate group {_show(group['groupId'])}"))
            groups_seen.add(group["groupId"])
            if roles is not None and group["roleId"] is not None \
                    and group["roleId"] not in roles:
                errors.append((f"{path}.roleId", f"unknown role {_show(group['roleId'])}"))
        if roles is not None and settings["defaultRoleId"] not in roles:
            errors.append(("settings.defaultRoleId",
                           f"unknown role {_show(settings['defaultRoleId'])}"))

    for i, user in enumerate(out["users"]):
        if employees is not None and user["employeeId"] is not None \
                and user["employeeId"] not in employees:
            errors.append((f"{_label('users', i, user)}.employeeId",
                           f"unknown employee {_show(user['employeeId'])}"))
        if roles is not None:
            errors += [(f"{_label('users', i, user)}.roles[{j}]", f"unknown role {_show(role)}")
                       for j, role in enumerate(user["roles"]) if role not in roles]
    for i, calendar in enumerate(out["calendars"]):
        if calendar["isDefault"] and not calendar["enabled"]:
            errors.append((f"{_label('calendars', i, calendar)}.enabled",
                           "a user's default calendar cannot be disabled (R13); only "
                           "additional calendars can"))
    if users is not None:
        for kind in ("calendars", "events", "outboundEvents"):
            for i, item in enumerate(out[kind]):
                if item["userId"] not in users:
                    errors.append((f"{_label(kind, i, item)}.userId",
                                   f"unknown user {_show(item['userId'])}"))
