"""Bytes of an Emply state file to JSON, or an error that says what is wrong (pure)."""

from __future__ import annotations

import codecs
import json

import pytest

from shared.emply.document import DocumentError
from shared.emply.file import parse_document_bytes

DOC = {"users": [{"id": "u-søren", "username": "søren@contoso.com"}]}
TEXT = json.dumps(DOC, ensure_ascii=False, indent=2)


def refused(data: bytes) -> str:
    with pytest.raises(DocumentError) as info:
        parse_document_bytes(data, source="emply.json")
    assert info.value.path == ""
    return str(info.value)


def test_utf8_with_or_without_a_byte_order_mark() -> None:
    assert parse_document_bytes(TEXT.encode()) == DOC
    assert parse_document_bytes(codecs.BOM_UTF8 + TEXT.encode()) == DOC


@pytest.mark.parametrize(("encoding", "name"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_are_named(encoding: str, name: str) -> None:
    message = refused(TEXT.encode(encoding))  # Python writes a byte order mark
    assert message == (f"emply.json is {name} text (it starts with a {name} byte order "
                       "mark); save it as UTF-8")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark(encoding: str) -> None:
    assert "looks like UTF-16 or UTF-32 text" in refused(TEXT.encode(encoding))


def test_a_byte_that_is_not_utf8_is_located() -> None:
    message = refused(TEXT.encode("latin-1"))
    offset = TEXT.encode("latin-1").index("ø".encode("latin-1"))
    assert message == (f"emply.json is not UTF-8: byte 0xF8 at offset {offset} (line 4) "
                       "cannot be decoded; save it as UTF-8")


def test_invalid_json_is_located() -> None:
    assert refused(b'{"users": [\n  {"id": "u1",}\n]}') == (
        "emply.json is not valid JSON: Expecting property name enclosed in double quotes "
        "(line 2 column 15)")


def test_nesting_too_deep_for_the_parser_is_refused() -> None:
    assert refused(b"[" * 200_000 + b"]" * 200_000) == (
        "emply.json is nested deeper than 64 levels")


def test_an_absurd_number_is_refused_naming_its_field() -> None:
    with pytest.raises(DocumentError) as info:
        parse_document_bytes(b'{"users": [{"n": ' + b"9" * 5000 + b"}]}")
    assert str(info.value) == "users[0].n: a number of 5000 characters; at most 64"


@pytest.mark.parametrize(("raw", "path"), [
    (b'{"users": [], "users": []}', "users"),
    (b'{"settings": {"deactivationGuard": {"maxPercent": NaN}}}',
     "settings.deactivationGuard.maxPercent"),
    (b'{"users": [{"id": "\\udfff"}]}', "users[0].id"),
])
def test_what_the_gate_refuses_is_named_by_its_field(raw: bytes, path: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_document_bytes(raw)
    assert info.value.path == path
