"""The input gate: what every body, file, query value, route value and cursor passes
before anything reads it (pure, no I/O).

One set of rules for the HTTP routes, `emply-sync emply import` and the importer, so a
value refused in one is refused in all, with a `GateError` naming the field:

- JSON is I-JSON (RFC 7493) and shallow: UTF-8 only (a UTF-8 byte order mark is
  tolerated; UTF-16/32 are named as such), no name given twice in one object, no
  `NaN`/`Infinity` (nor a number so large it is infinite), no integer beyond
  ±(2**53 - 1) and no number written with more than `MAX_NUMBER_CHARS` characters
  (Python's 4,300-digit conversion limit is never reached), no string with a lone
  surrogate (`"\\udfff"`), nested at most `MAX_DEPTH` levels (checked before parsing,
  so the parser never recurses deeper).
- Identifiers (ids, usernames, e-mail addresses, Entra ids) are NFC-normalised and
  hold no invisible or control character: no C* category (controls, format characters
  such as zero-width spaces and bidi controls, surrogates, private use, unassigned),
  no line or paragraph separator, no space but U+0020, none of the letters and marks
  that render as nothing (Hangul fillers, the braille blank, variation selectors, the
  combining grapheme joiner). `zz@x` and `zz\\u200b@x` cannot both be users.
- Query and route values are text without control characters or lone surrogates.
- Cursors are sealed: the position a page ended at, with an HMAC-SHA256 tag under a
  key the caller keeps (`seal` / `unseal`); anything else is refused, never decoded.

Invariants: nothing here raises anything but `GateError` for any input, and a value
that passes parses, encodes to UTF-8 and serialises back to standard JSON.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import hmac
import itertools
import json
import math
import re
import unicodedata
from typing import Any

MAX_DEPTH = 64
"""Nesting levels a JSON text may have (an Emply state file has about 6; a free-form
history entry inside a user may add up to `document.MAX_DEPTH`)."""
MAX_SAFE_INTEGER = 2**53 - 1
"""I-JSON's interoperable integer range: every JSON parser reads these exactly."""
MAX_NUMBER_CHARS = 64
MAX_PROBLEMS = 10
"""Problems a `GateError` keeps (the first in document order is its head)."""
TAG_BYTES = 16
"""The cursor tag: the first 128 bits of HMAC-SHA256."""
MAX_CURSOR_CHARS = 2000


class GateError(ValueError):
    """Input refused at the gate: `field` names where (``body``, ``users[0].username``,
    ``next``), `detail` what is wrong; `problems` lists up to `MAX_PROBLEMS`
    ``(field, detail)`` pairs, the first being `field`'s."""

    def __init__(self, field: str, detail: str,
                 problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{field}: {detail}" if field else detail)
        self.field = field
        self.detail = detail
        self.problems = problems or [(field, detail)]


# --- JSON -----------------------------------------------------------------------------

_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _Refused:
    """What a parse hook returns in place of a value it refuses, so the walk after the
    parse can name the field it stood in."""

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


class _Duplicated(dict[str, Any]):
    """An object in which a name was given twice (the name is kept to be named)."""

    duplicate: str = ""


def decode(data: bytes, source: str = "body") -> str:
    """`data` as UTF-8 text (a UTF-8 byte order mark dropped); `GateError` naming the
    encoding it is in instead, or the first byte that is not UTF-8."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            raise GateError("", f"{source} is {name} text (it starts with a {name} byte "
                                "order mark); save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif len(data) >= 2 and (data[0] == 0 or data[1] == 0):
        # JSON starts with an ASCII character: a NUL byte beside it means 2- or 4-byte
        # units without a byte order mark.
        raise GateError("", f"{source} looks like UTF-16 or UTF-32 text (NUL bytes "
                            "between its characters); save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GateError("", f"{source} is not UTF-8: byte 0x{data[exc.start]:02X} at "
                            f"offset {exc.start} (line {line}) cannot be decoded; "
                            "save it as UTF-8") from None


def depth(data: bytes) -> int:
    """How deeply the JSON text `data` (UTF-8) nests; brackets inside strings do not
    count. Byte operations only (about 0.3 s for 50 MB): escapes dropped, then all but
    brackets and quotes, then what lies between quotes."""
    structure = _ESCAPE.sub(b"", data).translate(None, _NOT_STRUCTURE)
    brackets = b"".join(structure.split(b'"')[::2])
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def parse_json(data: bytes | str, source: str = "body") -> Any:
    """The JSON value of `data` under the rules of the module docstring; `GateError`
    naming the field of each problem (``""`` when the text as a whole is refused)."""
    text = decode(data, source) if isinstance(data, bytes) else data
    if depth(data if isinstance(data, bytes) else text.encode("utf-8", "surrogatepass")) \
            > MAX_DEPTH:
        raise GateError("", f"{source} is nested deeper than {MAX_DEPTH} levels")
    refused: list[bool] = []

    def refuse(detail: str) -> _Refused:
        refused.append(True)
        return _Refused(detail)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) == len(items):
            return out
        marked = _Duplicated(out)
        seen: set[str] = set()
        for key, _value in items:
            if key in seen:
                marked.duplicate = key
                break
            seen.add(key)
        refused.append(True)
        return marked

    try:
        value = json.loads(text, object_pairs_hook=pairs,
                           parse_int=lambda raw: _integer(raw, refuse),
                           parse_float=lambda raw: _float(raw, refuse),
                           parse_constant=lambda raw: refuse(f"{raw} is not a JSON number"))
    except json.JSONDecodeError as exc:
        raise GateError("", f"{source} is not valid JSON: {exc.msg} "
                            f"(line {exc.lineno} column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:  # not reached by the rules above
        raise GateError("", f"{source} is not valid JSON ({type(exc).__name__})") from None
    # A lone surrogate comes from an escape (UTF-8 bytes cannot hold one), or from a
    # caller's own text: the walk looks only then.
    if refused or _SURROGATE_ESCAPE.search(text) or (
            not isinstance(data, bytes) and _lone_surrogate(text)):
        _walk(value)
    return value


def _integer(raw: str, refuse: Any) -> Any:
    if len(raw) > MAX_NUMBER_CHARS:
        return refuse(f"a number of {len(raw)} characters; at most {MAX_NUMBER_CHARS}")
    value = int(raw)
    if abs(value) > MAX_SAFE_INTEGER:
        return refuse(f"an integer beyond ±{MAX_SAFE_INTEGER} (I-JSON's exact range)")
    return value


def _float(raw: str, refuse: Any) -> Any:
    if len(raw) > MAX_NUMBER_CHARS:
        return refuse(f"a number of {len(raw)} characters; at most {MAX_NUMBER_CHARS}")
    value = float(raw)
    if not math.isfinite(value):
        return refuse("a number too large to be finite")
    return value


def _name(key: str) -> str:
    """A member name as a path step: `.name` when plain, else `["…"]` (escaped, cut)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", key):
        return f".{key}"
    shown = json.dumps(key[:40] + ("…" if len(key) > 40 else ""))
    return f"[{shown}]"


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _walk(value: Any) -> None:
    """Raise `GateError` naming the field of each refused value, duplicated name and
    string with a lone surrogate (iterative: depth is bounded, recursion is not used)."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack and len(problems) < MAX_PROBLEMS:
        item, path = stack.pop()
        if isinstance(item, _Refused):
            problems.append((path or "body", item.detail))
        elif isinstance(item, str):
            if _lone_surrogate(item):
                problems.append((path or "body", "a string with a lone surrogate (an "
                                 "escape like \\udfff that is no character)"))
        elif isinstance(item, dict):
            if isinstance(item, _Duplicated):
                problems.append((f"{path}{_name(item.duplicate)}" if path
                                 else _name(item.duplicate).lstrip("."),
                                 "a name given twice in one object"))
            for key, child in reversed(list(item.items())):
                if _lone_surrogate(key):
                    problems.append((path or "body", "a member name with a lone surrogate"))
                    continue
                stack.append((child, f"{path}{_name(key)}" if path else _name(key).lstrip(".")))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(item))))
    if problems:
        raise GateError(problems[0][0], problems[0][1], problems)


# --- identifiers and text ---------------------------------------------------------------

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0))))
"""Letters and marks that are not C* but render as nothing."""
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _invisible(char: str) -> str | None:
    """Why `char` may not stand in an identifier, or None."""
    if char in _INVISIBLE:
        return "renders as nothing"
    category = unicodedata.category(char)
    if category in _INVISIBLE_CATEGORIES:
        return "is a control or invisible character"
    if category == "Zs" and char != " ":
        return "is a space other than U+0020"
    return None


def identifier(value: str, field: str) -> str:
    """`value` NFC-normalised; `GateError` naming `field` and the first character an
    identifier may not hold (by its code point: it may be invisible)."""
    if value.isascii():
        found = _ASCII_CONTROL.search(value)
        if found is None:
            return value
        raise GateError(field, f"holds U+{ord(found.group()):04X}, a control character; "
                               "identifiers hold visible characters only")
    if _lone_surrogate(value):
        raise GateError(field, "holds a lone surrogate (no character)")
    normal = unicodedata.normalize("NFC", value)
    for char in normal:
        why = _invisible(char)
        if why is not None:
            raise GateError(field, f"holds U+{ord(char):04X}, which {why}; identifiers "
                                   "hold visible characters only")
    return normal


def text(value: str, field: str, *, max_chars: int) -> str:
    """A query or route value: at most `max_chars` characters, no control character,
    no lone surrogate. Returned as given."""
    if len(value) > max_chars:
        raise GateError(field, f"{field} is longer than {max_chars} characters")
    if _lone_surrogate(value):
        raise GateError(field, f"{field} holds a lone surrogate (no character)")
    found = _CONTROL.search(value)
    if found is not None:
        raise GateError(field, f"{field} holds U+{ord(found.group()):04X}, a control "
                               "character")
    return value


# --- cursors ------------------------------------------------------------------------------

_SEALED = re.compile(r"([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]{22})", re.ASCII)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:TAG_BYTES]


def seal(key: bytes, position: str) -> str:
    """An opaque cursor for `position` (text this service made), tagged under `key`."""
    payload = position.encode("utf-8")
    return f"{_b64(payload)}.{_b64(_tag(key, payload))}"


def unseal(key: bytes, cursor: str, field: str) -> str:
    """The position a cursor of `seal` holds; `GateError` naming `field` for anything
    this service did not hand out under `key` (nothing of it is decoded before the tag
    is checked)."""
    refused = GateError(field, f"{field} is not a cursor this service handed out")
    match = _SEALED.fullmatch(cursor) if len(cursor) <= MAX_CURSOR_CHARS else None
    if match is None:
        raise refused
    try:
        payload = base64.urlsafe_b64decode(match.group(1) + "=" * (-len(match.group(1)) % 4))
        tag = base64.urlsafe_b64decode(match.group(2) + "==")
    except (binascii.Error, ValueError):
        raise refused from None
    # One spelling per cursor: base64's spare bits in the last character must be zero,
    # so no other text opens (a changed character is a changed cursor).
    if f"{_b64(payload)}.{_b64(tag)}" != cursor or not hmac.compare_digest(
            tag, _tag(key, payload)):
        raise refused
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:  # a tag of ours over bytes we never made: a leaked key
        raise refused from None
