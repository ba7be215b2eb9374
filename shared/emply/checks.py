"""Checks of an Emply state document across entities (pure, no I/O).

`shared.emply.document` checks each entity against its schema; what it cannot see one
entity at a time is here: values that must be unique across a kind (usernames,
e-mail addresses, Entra object ids) and e-mail addresses that are not addresses.

Uniqueness follows R3's comparison (case and surrounding white space ignored): two
users whose usernames differ only in case would both match one Entra user, so the
sync could never link either (`ambiguous_match`). A plain import adds to what the
store holds, so the stored entities the file does not replace count too
(`Stored`). Problems are ``(path, detail)`` pairs naming the entity and field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Problem = tuple[str, str]

# Values that must be unique: kind, field, what the message calls it.
UNIQUE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("users", "username", "username"),
    ("users", "email", "e-mail address"),
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
    """The form two values are compared in (R3: case and surrounding space ignored)."""
    return value.strip().casefold()


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
