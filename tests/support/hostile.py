"""Hostile input for the HTTP routes: Hypothesis strategies that take what schemathesis
generates from the OpenAPI document (valid bodies, ids, query values) and break it the
ways issue 24 found: a number of 4,301 digits, NaN/Infinity, a lone surrogate, an
invisible character in an identifier, a name given twice, nesting thousands deep, a
forged cursor. Shared by tests/e2e/test_openapi.py and the reliability harness.

`request_of(case, mutation)` gives the `azure.functions.HttpRequest` to call the
route's function with, as the host would (raw bytes: the body may not be JSON at all).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import azure.functions as func
from hypothesis import strategies as st

RAW_TOKENS = ["9" * 4301, "-" + "9" * 5000, "NaN", "Infinity", "-Infinity", "1e999",
              '"\\udfff"', '"x\\ud800"', '"zz\\u200b@contoso.com"', '"a\\u202eb"',
              '"\\u0000"']
"""JSON text standing where a value was (raw: not all of it is JSON Python writes)."""
HOSTILE_TEXT = ["u-\udfff", "zz\u200b@contoso.com", "a\u202eb", "x\x00y", "\ufeff",
                "e\u0301\u034f", "' or '1'='1", "../../emply", "%2e%2e%2f", "x" * 3000]
"""Ids, query values and cursors."""
_HOLE = "\x00HOLE\x00"


def _forged_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED_CURSORS = [_forged_cursor(b"[" * 5000 + b"]" * 5000),
                  _forged_cursor(b'["\\udfff", 0]'), _forged_cursor(b'["user-00", ""]'),
                  _forged_cursor(b"[" + b"9" * 4301 + b"]"), "", "a.b", "A" * 40 + ".",
                  "AAAA.AAAAAAAAAAAAAAAAAAAAAA"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (the value itself included)."""
    out = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*path, index))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def hostile_body(draw: st.DrawFn, body: Any) -> bytes:
    """`body` (a JSON value schemathesis made) with one hostile change, as bytes."""
    kind = draw(st.sampled_from(["token", "duplicate", "deep", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        levels = draw(st.integers(65, 3000))
        text = json.dumps(_replace(body, draw(st.sampled_from(_paths(body))), _HOLE))
        return text.replace(json.dumps(_HOLE), "[" * levels + "]" * levels).encode()
    if kind == "duplicate":
        objects = [p for p in _paths(body) if isinstance(_at(body, p), dict) and _at(body, p)]
        if not objects:
            return b'{"a": 1, "a": 2}'
        where = draw(st.sampled_from(objects))
        key = draw(st.sampled_from(sorted(_at(body, where))))
        text = json.dumps(_replace(body, where, {_HOLE: None, **_at(body, where)}))
        return text.replace(f'{json.dumps(_HOLE)}: null', f"{json.dumps(key)}: 0", 1).encode()
    token = draw(st.sampled_from(RAW_TOKENS))
    text = json.dumps(_replace(body, draw(st.sampled_from(_paths(body))), _HOLE))
    return text.replace(json.dumps(_HOLE), token, 1).encode()


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def request_of(case: Any, route: str, *, body: bytes | None = None,
               params: dict[str, str] | None = None,
               path_parameters: dict[str, str] | None = None) -> func.HttpRequest:
    """The request the host would give the function of `route` for schemathesis's `case`,
    with the hostile parts given instead of its own."""
    raw = body if body is not None else (
        json.dumps(case.body).encode() if case.body is not None and not _is_unset(case.body)
        else b"")
    names = re.findall(r"\{(\w+)\}", route)
    given = path_parameters if path_parameters is not None else dict(
        case.path_parameters or {})
    return func.HttpRequest(
        method=case.method.upper(), url=f"/api/{route}", body=raw,
        headers={"content-type": "application/json"},
        params={k: str(v) for k, v in (params if params is not None
                                       else dict(case.query or {})).items()},
        route_params={n: str(given.get(n, "x")) for n in names})


def _is_unset(value: Any) -> bool:
    return type(value).__name__ in ("NotSet", "Unset")
