"""Large JSON values as gzip-compressed lines, written and read in bounded memory.

A 100,000-user snapshot is about 100 MB of JSON text. Encoding it with one
`json.dumps` and compressing it in one piece held the text, the compressed bytes
and the value at once (measured: +260 MB at the peak of a 100,000-user run), and
`json.loads` of the whole text did the same on the way in. Here a value is cut
into lines instead:

- line 1: ``{"chunkedJson": 1, "skeleton": <the value with every container of more
  than `CHUNK` entries left empty>}``;
- then one line per piece: ``[path, piece]``, where ``path`` is the list of keys and
  indices from the top to a container left empty and ``piece`` is at most `CHUNK` of
  its entries (a dict updates it, a list extends it), in order.

So no line is larger than `CHUNK` entries of one container (each entry whole), and
the reader never holds more than one line of text. Every line is encoded and decoded
by the C `json` codec. A stream whose first line is not such a header is one whole
JSON value (the format written before this module), read as it is.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

CHUNK = 2000
"""Entries of one container per line."""

_HEADER_KEY = "chunkedJson"
_GZIP = 31  # zlib wbits for a gzip wrapper

Path = list[str | int]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _is_big(value: Any) -> bool:
    """A container written in pieces: one of more than `CHUNK` entries, or a sequence
    that is not a list (it gives its entries when sliced: a run's change log)."""
    if isinstance(value, dict | list):
        return len(value) > CHUNK
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | tuple)


def _skeleton(value: Any, path: Path, big: list[tuple[Path, Any]]) -> Any:
    """`value` with its big containers emptied; their paths and values go to `big`."""
    if _is_big(value):
        big.append((path, value))
        return {} if isinstance(value, dict) else []
    if isinstance(value, dict):
        return {k: _skeleton(v, [*path, k], big) for k, v in value.items()}
    if isinstance(value, list):
        return [_skeleton(v, [*path, i], big) for i, v in enumerate(value)]
    return value


def encode_lines(value: Any) -> Iterator[str]:
    """The lines (each ending in a newline) that `decode_lines` turns back into `value`.

    An entry of a big container is written whole with its piece unless it is a big
    container itself (then it gets its own lines); bigness is checked on that level
    only, so a piece costs one `json.dumps` and no walk of its entries' insides.
    """
    big: list[tuple[Path, Any]] = []
    yield _dumps({_HEADER_KEY: 1, "skeleton": _skeleton(value, [], big)}) + "\n"
    while big:
        path, container = big.pop(0)
        if isinstance(container, dict):
            items = iter(container.items())
            while chunk := list(islice(items, CHUNK)):
                piece = {}
                for key, entry in chunk:
                    if _is_big(entry):
                        big.append(([*path, key], entry))
                        entry = {} if isinstance(entry, dict) else []
                    piece[key] = entry
                yield _dumps([path, piece]) + "\n"
        else:
            for start in range(0, len(container), CHUNK):
                part = container[start:start + CHUNK]
                for offset, entry in enumerate(part):
                    if _is_big(entry):
                        big.append(([*path, start + offset], entry))
                        part[offset] = {} if isinstance(entry, dict) else []
                yield _dumps([path, part]) + "\n"


def decode_lines(lines: Iterable[bytes | str]) -> Any:
    """The value `encode_lines` wrote; raises ValueError on a malformed stream."""
    it = iter(lines)
    first = next(it, None)
    if first is None:
        raise ValueError("empty chunked JSON stream")
    head = json.loads(first)
    if not (isinstance(head, dict) and head.get(_HEADER_KEY) == 1 and "skeleton" in head):
        rest = b"".join(x if isinstance(x, bytes) else x.encode() for x in it)
        if rest.strip():
            raise ValueError("a JSON value followed by more lines and no chunkedJson header")
        return head  # one whole value, as written before the chunked format
    value = head["skeleton"]
    for number, line in enumerate(it, start=2):
        if not line.strip():
            continue
        entry = json.loads(line)
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)):
            raise ValueError(f"line {number}: expected [path, piece]")
        target = value
        try:
            for key in entry[0]:
                target = target[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"line {number}: path {entry[0]!r} is not in the value") from exc
        piece = entry[1]
        if isinstance(target, dict) and isinstance(piece, dict):
            target.update(piece)
        elif isinstance(target, list) and isinstance(piece, list):
            target.extend(piece)
        else:
            raise ValueError(f"line {number}: piece does not fit the container at {entry[0]!r}")
    return value


def plain_pieces(value: Any) -> Iterator[str]:
    """`value` as one ordinary JSON text, in pieces: big containers (and the containers
    holding them) are written `CHUNK` entries at a time, so no piece is large."""
    if isinstance(value, dict):
        if len(value) > CHUNK:
            items = iter(value.items())
            yield "{"
            first = True
            while piece := dict(islice(items, CHUNK)):
                yield ("" if first else ",") + _dumps(piece)[1:-1]
                first = False
            yield "}"
        elif any(_is_big(v) for v in value.values()):
            yield "{"
            for index, (key, entry) in enumerate(value.items()):
                yield ("," if index else "") + _dumps(key) + ":"
                yield from plain_pieces(entry)
            yield "}"
        else:
            yield _dumps(value)
    elif _is_big(value):
        yield "["
        for start in range(0, len(value), CHUNK):
            yield ("," if start else "") + _dumps(list(value[start:start + CHUNK]))[1:-1]
        yield "]"
    else:
        yield _dumps(value)


def text_blocks(pieces: Iterable[str], *, block_size: int) -> Iterator[bytes]:
    """UTF-8 `pieces` gathered into blocks of about `block_size` bytes (at least one)."""
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        data = piece.encode()
        pending.append(data)
        size += len(data)
        if size >= block_size:
            yield b"".join(pending)
            pending, size = [], 0
    if pending or size == 0:
        yield b"".join(pending)


def gzip_blocks(lines: Iterable[str], *, level: int, block_size: int) -> Iterator[bytes]:
    """Gzip `lines` into blocks of about `block_size` bytes (the last one smaller)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP)
    pending: list[bytes] = []
    size = 0
    for line in lines:
        out = compressor.compress(line.encode())
        if out:
            pending.append(out)
            size += len(out)
            if size >= block_size:
                yield b"".join(pending)
                pending, size = [], 0
    pending.append(compressor.flush())
    yield b"".join(pending)


def gunzip_lines(chunks: Iterable[bytes], *, window: int = 1 << 20) -> Iterator[bytes]:
    """Lines of gzip-compressed `chunks` (without their newlines), decompressed at most
    `window` bytes at a time so that only about one line is ever held as text."""
    decompressor = zlib.decompressobj(_GZIP)
    partial: list[bytes] = []

    def split(data: bytes) -> Iterator[bytes]:
        lines = data.split(b"\n")
        last = lines.pop()
        if lines:
            lines[0] = b"".join([*partial, lines[0]])
            partial.clear()
            yield from lines
        if last:
            partial.append(last)

    for chunk in chunks:
        data = decompressor.decompress(chunk, window)
        yield from split(data)
        while decompressor.unconsumed_tail:
            yield from split(decompressor.decompress(decompressor.unconsumed_tail, window))
    yield from split(decompressor.flush())
    if not decompressor.eof:
        raise ValueError("truncated gzip stream")
    if partial:
        yield b"".join(partial)
