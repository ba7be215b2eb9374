"""Bytes of an Emply state file (or an HTTP body) to a JSON value, or a clear error.

The file is JSON in UTF-8 (a UTF-8 byte order mark is tolerated, as editors on
Windows add one). Anything else is refused with `DocumentError` naming what is
wrong and where, never a traceback: a UTF-16 or UTF-32 file (Windows tools save
"Unicode" text so) is named as such, a byte that is not UTF-8 by its offset and
line, invalid JSON by line and column, and a value nested too deeply for the
parser (which recurses once per level) as too deep.
"""

from __future__ import annotations

import codecs
import json

from shared.emply.document import DocumentError

_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)


def parse_document_bytes(data: bytes, *, source: str = "the document") -> object:
    """The JSON value of `data`; `DocumentError` (path "") when it is not UTF-8 JSON."""
    text = _decode(data, source)
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError("", f"{source} is not valid JSON: {exc.msg} "
                                f"(line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise DocumentError("", f"{source} is nested too deeply to read "
                                "(an Emply state file is a few levels deep)") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise DocumentError("", f"{source} is not valid JSON: {exc}") from None
    return value


def _decode(data: bytes, source: str) -> str:
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            raise DocumentError("", f"{source} is {name} text (it starts with a {name} byte "
                                    "order mark); save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif len(data) >= 2 and (data[0] == 0 or data[1] == 0):
        # JSON starts with an ASCII character: a NUL byte beside it means 2- or 4-byte
        # units without a byte order mark.
        raise DocumentError("", f"{source} looks like UTF-16 or UTF-32 text (NUL bytes "
                                "between its characters); save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DocumentError("", f"{source} is not UTF-8: byte 0x{data[exc.start]:02X} at "
                                f"offset {exc.start} (line {line}) cannot be decoded; "
                                "save it as UTF-8") from None
