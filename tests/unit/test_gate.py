"""The input gate (`shared.emply.gate`): what it lets through parses back to the same
value; what it refuses is a `GateError` naming the field, never anything else."""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.emply import gate

# JSON values the gate must take unchanged: I-JSON (exact integers, finite numbers,
# text without surrogates), at most a few levels deep.
_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
_SCALARS = st.one_of(st.none(), st.booleans(),
                     st.integers(-gate.MAX_SAFE_INTEGER, gate.MAX_SAFE_INTEGER),
                     st.floats(allow_nan=False, allow_infinity=False), _TEXT)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=30)


def _refused(raw: bytes | str) -> gate.GateError:
    with pytest.raises(gate.GateError) as info:
        gate.parse_json(raw)
    return info.value


@given(_VALUES)
def test_what_passes_parses_back_to_the_same_value(value: Any) -> None:
    for ascii_only in (True, False):
        raw = json.dumps(value, ensure_ascii=ascii_only).encode()
        assert gate.parse_json(raw) == value


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_input_parses_or_is_a_gate_error(raw: bytes | str) -> None:
    try:
        value = gate.parse_json(raw)
    except gate.GateError:
        return
    # What passes is standard JSON that encodes to UTF-8 again.
    json.dumps(value, allow_nan=False).encode("utf-8")


@given(_VALUES, st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 17,
                                 "-" + "9" * 5000, "1." + "0" * 80]))
def test_numbers_beyond_i_json_are_refused_naming_the_field(value: Any, number: str) -> None:
    raw = json.dumps({"users": [{"id": "u-1", "n": "HERE"}], "other": value})
    error = _refused(raw.replace('"HERE"', number).encode())
    assert error.field == "users[0].n"


@given(_VALUES)
def test_a_name_given_twice_is_refused_naming_it(value: Any) -> None:
    raw = json.dumps({"settings": {"groups": value}}).replace(
        '{"groups"', '{"groups": 1, "groups"', 1)
    assert _refused(raw.encode()).field == "settings.groups"


@pytest.mark.parametrize("escape", ["\\udfff", "\\ud800", "\\ud83d", "\\ude00x"])
def test_a_lone_surrogate_is_refused_as_value_or_name(escape: str) -> None:
    assert _refused(f'{{"users": [{{"id": "a{escape}"}}]}}'.encode()).field == "users[0].id"
    assert _refused(f'{{"a{escape}": 1}}'.encode()).field == "body"
    assert gate.parse_json(b'["\\ud83d\\ude00"]') == ["\U0001F600"]  # a pair is a character


@given(st.integers(gate.MAX_DEPTH + 1, 5000))
def test_nesting_beyond_the_limit_is_refused_before_parsing(levels: int) -> None:
    error = _refused(b"[" * levels + b"]" * levels)
    assert error.field == "" and "deeper than" in error.detail
    assert gate.parse_json(b"[" * gate.MAX_DEPTH + b"]" * gate.MAX_DEPTH) is not None


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    assert gate.depth(b'["[[[[\\"[[[", "\\\\", {"k": "}}}}"}]') == 2


_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202a",
              "\u202e", "\u2066", "\u2069", "\u061c", "\u180e", "\u3164", "\u115f",
              "\u2800", "\ufe0f", "\U000e0001", "\u00a0", "\u3000", "\u2028", "\x00", "\x1b",
              "\x7f", "\u0085", "\ue000"]


@given(st.text(st.characters(whitelist_categories=["Lu", "Ll", "Nd"]), min_size=1,
               max_size=20), st.sampled_from(_INVISIBLE), st.integers(0, 20))
def test_an_invisible_character_anywhere_in_an_identifier_is_refused(
        visible: str, char: str, at: int) -> None:
    value = visible[:at] + char + visible[at:]
    with pytest.raises(gate.GateError) as info:
        gate.identifier(value, "username")
    assert info.value.field == "username" and f"U+{ord(char):04X}" in info.value.detail


@given(st.text(max_size=30))
def test_an_identifier_passes_as_nfc_or_is_refused(value: str) -> None:
    try:
        out = gate.identifier(value, "id")
    except gate.GateError:
        return
    assert out == unicodedata.normalize("NFC", value)
    out.encode("utf-8")


@given(st.text(max_size=200), st.binary(min_size=16, max_size=32))
def test_a_sealed_cursor_opens_under_its_key_only(position: str, key: bytes) -> None:
    position = position.encode("utf-8", "replace").decode()
    sealed = gate.seal(key, position)
    assert gate.unseal(key, sealed, "next") == position
    with pytest.raises(gate.GateError):
        gate.unseal(key + b"x", sealed, "next")


@given(st.text(max_size=300), st.binary(min_size=16, max_size=32))
def test_anything_else_as_a_cursor_is_refused_naming_the_parameter(
        cursor: str, key: bytes) -> None:
    with pytest.raises(gate.GateError) as info:
        gate.unseal(key, cursor, "after")
    assert info.value.field == "after"


@given(st.binary(min_size=1, max_size=60), st.integers(0, 59), st.integers(1, 255))
def test_a_changed_cursor_is_refused(position: bytes, at: int, flip: int) -> None:
    key = b"k" * 32
    sealed = gate.seal(key, position.hex())
    index = at % len(sealed)
    changed = sealed[:index] + chr(ord(sealed[index]) ^ (flip & 0x1F or 1)) + sealed[index + 1:]
    if changed != sealed:
        with pytest.raises(gate.GateError):
            gate.unseal(key, changed, "next")


@pytest.mark.parametrize("value", ["a\udfff", "a\x00b", "line\nbreak", "x" * 1001])
def test_query_and_route_text_refuses_controls_surrogates_and_length(value: str) -> None:
    with pytest.raises(gate.GateError) as info:
        gate.text(value, "source", max_chars=1000)
    assert info.value.field == "source"


def test_what_passes_serialises_as_standard_json() -> None:
    value = gate.parse_json(b'{"a": [1.5, -0.0, 9007199254740991, "\\u00e9"]}')
    assert json.loads(json.dumps(value, allow_nan=False)) == value
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in value["a"])


@pytest.mark.parametrize("position", ["", "x", "[\"user-00\", \"u-1\"]", "é" * 7])
def test_no_other_spelling_of_a_cursor_opens(position: str) -> None:
    """Every one-character change of a sealed cursor is refused, the spare bits of
    base64's last character included (they decode to the same bytes)."""
    key = b"k" * 32
    sealed = gate.seal(key, position)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    for index, char in enumerate(sealed):
        for other in alphabet.replace(char, ""):
            changed = sealed[:index] + other + sealed[index + 1:]
            with pytest.raises(gate.GateError):
                gate.unseal(key, changed, "next")
