"""The field checkers of the Emply state document's schema table (pure, no I/O).

A checker takes `(value, path)` and returns the value normalised, or raises `Invalid`
naming the path of every problem; each declares its JSON Schema beside it
(`described`, `JSON_SCHEMAS`), which `shared.emply.schema` turns into the OpenAPI
document's components, so the document and the checks cannot drift apart.
`shared.emply.document` builds the schema table from these. Identifiers (ids,
usernames, e-mail addresses) go through the input gate's rules (`shared.emply.gate`):
NFC, no invisible or control character.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from shared.emply import checks as emply_checks
from shared.emply import gate


class Invalid(Exception):
    """One or more problems of one value: `problems` lists them, the first is `path`."""

    def __init__(self, path: str, detail: str,
                 problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(path, detail)
        self.path = path
        self.detail = detail
        self.problems = problems or [(path, detail)]

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> Invalid:
        return cls(problems[0][0], problems[0][1], problems)


Check = Callable[[object, str], Any]

JSON_SCHEMAS: dict[Check, dict[str, Any]] = {}
"""Each checker's JSON Schema (`shared.emply.schema` builds the OpenAPI document from
them): the schema is declared beside the check it describes, so they cannot drift."""


def described(check: Check, schema: dict[str, Any]) -> Check:
    JSON_SCHEMAS[check] = schema
    return check


class Field(NamedTuple):
    """One field of an entity: how to check it, and its default."""

    check: Check
    required: bool = False
    default: Any = None
    json: bool = False  # a list/object: the store keeps it as JSON text


_show = emply_checks.show


def type_name(value: object) -> str:
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


def expected(what: str, value: object, path: str) -> Invalid:
    got = _show(value) if isinstance(value, str | int | float) or value is None else type_name(
        value)
    return Invalid(path, f"expected {what}, got {got}")


# --- checkers: (value, path) -> normalised value, or raise Invalid ---------

def string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise expected("a string", value, path)
    return value


def identifier(value: object, path: str) -> str:
    """An id, username, e-mail address or Entra id: 1 to 255 characters, not only
    spaces, NFC-normalised, no invisible or control character (`gate.identifier`)."""
    if not isinstance(value, str) or not value.strip():
        raise expected("a non-empty string", value, path)
    if len(value) > 255:
        raise Invalid(path, "expected at most 255 characters")
    try:
        return gate.identifier(value, path)
    except gate.GateError as exc:
        raise Invalid(path, exc.detail) from None


def boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise expected("true or false", value, path)
    return value


def optional(check: Check) -> Check:
    def run(value: object, path: str) -> Any:
        return None if value is None else check(value, path)
    return described(run, {"anyOf": [JSON_SCHEMAS[check], {"type": "null"}]})


def one_of(*choices: str) -> Check:
    def run(value: object, path: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise expected("one of " + ", ".join(choices), value, path)
        return value
    return described(run, {"type": "string", "enum": list(choices)})


def integer(minimum: int, maximum: int | None = None) -> Check:
    def run(value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum \
                or (maximum is not None and value > maximum):
            raise expected(f"an integer >= {minimum}" if maximum is None else
                            f"an integer from {minimum} to {maximum}", value, path)
        return value
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return described(run, schema)


def number(low: float, high: float) -> Check:
    def run(value: object, path: str) -> int | float:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or (isinstance(value, float) and not math.isfinite(value))
                or not low <= value <= high):
            raise expected(f"a number from {low:g} to {high:g}", value, path)
        return value
    return described(run, {"type": "number", "minimum": low, "maximum": high})


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def date(value: object, path: str) -> str:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            dt.date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise expected("a date YYYY-MM-DD", value, path)


def date_time(value: object, path: str) -> str:
    if isinstance(value, str) and len(value) >= 10:
        try:
            dt.datetime.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise expected("an ISO 8601 date-time", value, path)


def zoned_date_time(value: object, path: str) -> str:
    """An ISO 8601 date-time with its zone (`Z` or an offset): an instant, as Graph needs."""
    if isinstance(value, str) and len(value) >= 16:
        try:
            if dt.datetime.fromisoformat(value.upper()).tzinfo is not None:
                return value
        except ValueError:
            pass
    raise expected("an ISO 8601 date-time with a zone (e.g. 2026-12-02T10:00:00Z)",
                    value, path)


def list_of(item: Check) -> Check:
    def run(value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise expected("a list", value, path)
        out: list[Any] = []
        problems: list[tuple[str, str]] = []
        for i, v in enumerate(value):
            try:
                out.append(item(v, f"{path}[{i}]"))
            except Invalid as e:
                problems += e.problems
        if problems:
            raise Invalid.of(problems)
        return out
    return described(run, {"type": "array", "items": JSON_SCHEMAS[item]})


def map_of(item: Check) -> Check:
    """An object with any keys (ids), each value checked by `item`."""
    def run(value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise expected("an object", value, path)
        return {identifier(k, f"{path} key"): item(v, f"{path}.{k}") for k, v in value.items()}
    return described(run, {"type": "object", "propertyNames": JSON_SCHEMAS[identifier],
                            "additionalProperties": JSON_SCHEMAS[item]})


def any_object(value: object, path: str) -> dict[str, Any]:
    """An object the sync owns (history entry, last change): kept as is."""
    if not isinstance(value, dict):
        raise expected("an object", value, path)
    check_depth(value, path)
    return copy.deepcopy(value)


MAX_DEPTH = 32
"""How deeply a free-form value (history entry, last change, photo) may nest."""


def check_depth(value: object, path: str) -> None:
    """Refuse a free-form value nested deeper than `MAX_DEPTH` (copying or encoding it
    would recurse that deep). Iterative, so checking never recurses itself."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Invalid(path, f"nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))


def object_of(schema: Mapping[str, Field], *, open_ended: bool = False) -> Check:
    def run(value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise expected("an object", value, path)
        return check_fields(value, schema, path, open_ended=open_ended)
    return described(run, object_schema(schema, open_ended=open_ended))


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


def check_fields(value: Mapping[str, Any], schema: Mapping[str, Field], path: str,
                  *, open_ended: bool = False) -> dict[str, Any]:
    """The entity's fields checked and defaulted; every problem of it in one `Invalid`."""
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
                raise Invalid(prefix + name, "required field missing")
            else:
                out[name] = copy.deepcopy(spec.default)
        except Invalid as e:
            problems += e.problems
    if open_ended:
        for key, extra in value.items():
            if key not in schema:
                try:
                    check_depth(extra, prefix + str(key))
                except Invalid as e:
                    problems += e.problems
                    continue
                out[key] = copy.deepcopy(extra)
    if problems:
        raise Invalid.of(problems)
    return out


described(string, {"type": "string"})
described(identifier, {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"})
described(boolean, {"type": "boolean"})
described(date, {"type": "string", "format": "date"})
described(date_time, {"type": "string", "minLength": 10,
                       "description": "ISO 8601 date-time"})
described(zoned_date_time, {"type": "string", "format": "date-time",
                             "description": "ISO 8601 date-time with a zone"})
described(any_object, {"type": "object"})


def json_field(check: Check, default: Any, *, required: bool = False) -> Field:
    return Field(check, required, default, json=True)


STR = Field(optional(string))
BOOL_TRUE = Field(boolean, default=True)
BOOL_FALSE = Field(boolean, default=False)
