"""Bytes of an Emply state file (or an HTTP body) to a JSON value, or a clear error.

The input gate's rules (`shared.emply.gate`), the same for a file, an HTTP body and the
importer: UTF-8 JSON (a UTF-8 byte order mark is tolerated, as editors on Windows add
one; UTF-16 and UTF-32 are named as such), no name given twice in one object, no
NaN/Infinity, no integer beyond I-JSON's exact range, no lone surrogate, at most
`gate.MAX_DEPTH` levels deep. Anything else is refused with `DocumentError` naming what
is wrong and where (the field, or the byte offset and line, or the line and column),
never a traceback.
"""

from __future__ import annotations

from shared.emply import gate
from shared.emply.document import DocumentError


def parse_document_bytes(data: bytes, *, source: str = "the document") -> object:
    """The JSON value of `data`; `DocumentError` naming each problem's field (path ""
    when the text as a whole is refused)."""
    try:
        return gate.parse_json(data, source)
    except gate.GateError as exc:
        raise DocumentError.of(exc.problems) from None
