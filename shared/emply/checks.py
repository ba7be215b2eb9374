"""Checks of an Emply state document across entities (pure, no I/O).

`shared.emply.document` checks each entity against its schema; what it cannot see one
entity at a time is here: values that must be unique across a kind (usernames, Entra
object ids, employees' e-mail addresses), e-mail addresses that are not addresses,
references that must resolve (roles, users, employees, calendars) and how many roles
there may be.

Uniqueness follows R3's comparison (case, surrounding white space and Unicode
normalisation ignored: `same`): two users whose usernames differ only in case would
both match one Entra user, so the sync could never link either (`ambiguous_match`).
Two users may share an e-mail address (R3); the matching reports that tie. A plain
import adds to what the store holds, so the stored entities the file does not replace
count too (`Stored`). Problems are ``(path, detail)`` pairs naming the entity and field.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Problem = tuple[str, str]

# Values that must be unique: kind, field, what the message calls it. Two users may
# share an e-mail address (R3: a rehire, a shared mailbox); matching reports the tie.
UNIQUE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("users", "username", "username"),
    ("users", "entraId", "entraId"),
    ("employees", "email", "e-mail address"),
)
EMAIL_FIELDS: tuple[tuple[str, str], ...] = (("users", "email"), ("employees", "email"))

# local@domain.tld: no white space or second "@", a dot-separated domain of non-empty
# labels. Deliberately loose (RFC 5322 allows far more); it catches the typos that
# matter: a missing "@", a name instead of an address, "a@b", "a@@b.com", "a b@c.com".
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def show(value: object) -> str:
    """A value for a message: JSON, cut at 60 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def label(kind: str, index: int, item: object) -> str:
    """How a message names an entity: ``users[3] (id "u-megan")``."""
    text = f"{kind}[{index}]"
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        text += f" (id {show(item['id'])})"
    return text


def same(value: str) -> str:
    """The form two values are compared in (R3: case and surrounding space ignored),
    also the key of the store's uniqueness index: Unicode's canonical caseless form
    (NFD, casefold, NFC), so "É" and "e\u0301" are one name."""
    key = value.strip().casefold()
    if key.isascii():
        return key
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", key).casefold())


@dataclass
class Stored:
    """What the store already holds that the document's entities must not clash with:
    per kind, entities with at least `id` and the `UNIQUE_FIELDS` of that kind."""

    kinds: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)


def check_unique(doc: Mapping[str, Any], stored: Stored | None) -> list[Problem]:
    """Each `UNIQUE_FIELDS` value held once among the document's entities and the stored
    ones it does not replace (same id)."""
    problems: list[Problem] = []
    for kind, name, what in UNIQUE_FIELDS:
        items: list[Mapping[str, Any]] = doc[kind]
        replaced = {item["id"] for item in items}
        holders: dict[str, str] = {}
        singular = kind[:-1]
        for entity in (stored.kinds.get(kind, ()) if stored else ()):
            value = entity.get(name)
            if isinstance(value, str) and entity.get("id") not in replaced:
                holders.setdefault(same(value), f"stored {singular} {show(entity.get('id'))}")
        for i, item in enumerate(items):
            value = item.get(name)
            if value is None:
                continue
            key = same(value)
            holder = holders.get(key)
            if holder is None:
                holders[key] = label(kind, i, item)
                continue
            problems.append((f"{label(kind, i, item)}.{name}",
                             f"{show(value)} is also the {what} of {holder} "
                             "(compared ignoring case and surrounding spaces)"))
    return problems


def is_email(value: str) -> bool:
    """Whether `value` is an address (surrounding white space tolerated)."""
    return _EMAIL.fullmatch(value.strip()) is not None


def check_emails(doc: Mapping[str, Any]) -> list[Problem]:
    """Every e-mail field an address (surrounding white space is tolerated, as R3
    ignores it)."""
    problems: list[Problem] = []
    for kind, name in EMAIL_FIELDS:
        for i, item in enumerate(doc[kind]):
            value = item.get(name)
            if value is not None and not _EMAIL.fullmatch(value.strip()):
                problems.append((f"{label(kind, i, item)}.{name}",
                                 f"expected an e-mail address like name@example.com, "
                                 f"got {show(value)}"))
    return problems


def raw_ids(items: object) -> set[str]:
    """The string ids of a section as given, also of entities refused for other reasons
    (a reference to them is not a second problem)."""
    if not isinstance(items, list):
        return set()
    return {item["id"] for item in items
            if isinstance(item, dict) and isinstance(item.get("id"), str)}


def ids_of(entities: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(entity["id"]) for entity in entities}


# --- references ------------------------------------------------------------------

def _refs(doc: Mapping[str, Any], section: str, known: Iterable[str] | None,
          present: bool) -> set[str] | None:
    """Ids a reference may point at: the document's own plus the known ones.

    Known ids count even when the section is present: a plain import only adds
    to what the store holds (with `--replace` the store passes empty sets).
    """
    ids = None if known is None else set(known)
    if present:
        ids = (ids or set()) | raw_ids(doc.get(section))
    return ids


def too_many_roles(doc: Mapping[str, Any], known: Iterable[str] | None,
                   max_roles: int) -> list[Problem]:
    """At most `max_roles` roles: in the section, and with the stored ones a plain import
    keeps (`known`)."""
    roles = doc.get("roles")
    if not isinstance(roles, list):
        return []
    ids = {r.get("id") for r in roles if isinstance(r, dict)} | set(known or ())
    count = max(len(roles), len(ids))
    if count <= max_roles:
        return []
    return [("roles", f"{count} roles; the Emply side holds at most {max_roles}")]


def event_calendars(doc: Mapping[str, Any], out: Mapping[str, Any],
                     known: Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Every event in a calendar Emply keeps (R14 mirrors events of kept calendars only):
    the document's own calendars plus the `known` ones; unchecked when the document has
    no calendars section and no known ones are given."""
    if known is None and "calendars" not in doc:
        return []
    calendars = {(c["userId"], c["id"]) for c in out["calendars"]} | set(known or ())
    return [(f"{label('events', i, e)}.calendarId",
             f"unknown calendar {show(e['calendarId'])} of user {show(e['userId'])}")
            for i, e in enumerate(out["events"])
            if (e["userId"], e["calendarId"]) not in calendars]


def check_references(
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
                               f"duplicate group {show(group['groupId'])}"))
            groups_seen.add(group["groupId"])
            if roles is not None and group["roleId"] is not None \
                    and group["roleId"] not in roles:
                errors.append((f"{path}.roleId", f"unknown role {show(group['roleId'])}"))
        if roles is not None and settings["defaultRoleId"] not in roles:
            errors.append(("settings.defaultRoleId",
                           f"unknown role {show(settings['defaultRoleId'])}"))

    for i, user in enumerate(out["users"]):
        if employees is not None and user["employeeId"] is not None \
                and user["employeeId"] not in employees:
            errors.append((f"{label('users', i, user)}.employeeId",
                           f"unknown employee {show(user['employeeId'])}"))
        if roles is not None:
            errors += [(f"{label('users', i, user)}.roles[{j}]", f"unknown role {show(role)}")
                       for j, role in enumerate(user["roles"]) if role not in roles]
    for i, calendar in enumerate(out["calendars"]):
        if calendar["isDefault"] and not calendar["enabled"]:
            errors.append((f"{label('calendars', i, calendar)}.enabled",
                           "a user's default calendar cannot be disabled (R13); only "
                           "additional calendars can"))
    if users is not None:
        for kind in ("calendars", "events", "outboundEvents"):
            for i, item in enumerate(out[kind]):
                if item["userId"] not in users:
                    errors.append((f"{label(kind, i, item)}.userId",
                                   f"unknown user {show(item['userId'])}"))
