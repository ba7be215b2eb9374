"""A table of records found by key without decoding them all: the sync's own copy of
each side (`shared.run.entra_index`, `shared.run.emply_index`).

A `RecordTable` holds rows, each one JSON value (a record) or nothing (a free row), and
hash indexes over them: for each index name, the rows whose record has a key, found by
the key's text. What a run needs of 100,000 users is usually a few hundred of them, so
the table is loaded as bytes in one read and a record is decoded only when asked for:

- the rows are one `bytes` (the records' JSON texts, one after the other) with their
  offsets in an `array`; rows changed since the load are kept apart until `to_bytes`;
- an index (`shared.run.record_index`) is one sorted `array` of 64-bit entries,
  ``hash(key) << 24 | row``: a look-up is a binary search, and loading it copies
  memory, not objects. The hash is
  40 bits of BLAKE2b (stable across processes), so two keys can share one; `find`
  gives candidate rows, and a caller compares the record's own key (`matching` does).

Invariants:

- The indexes always describe the rows: `put` and `free` take the old record's keys out
  and the new one's in (through the table's `keys` function), at once in `_added` and
  `_removed`, merged into the sorted arrays by `to_bytes` (or when there are many).
- A record is a JSON value; `keys(record)` gives, per index, the key texts of that
  record (normalised by the caller: this module compares texts exactly).
- At most 2**24 rows (16,777,216).
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.run.record_index import MAX_ROWS as MAX_ROWS
from shared.run.record_index import ROW_BITS as ROW_BITS
from shared.run.record_index import HashIndex

Keys = Callable[[Any], Mapping[str, Iterable[str]]]
Piece = bytes | bytearray | memoryview
"""Bytes as a table holds and saves them (no copy made to make them `bytes`)."""
"""A record -> {index name: its key texts in that index}."""

_FORMAT = 1


def key_hash(key: str) -> int:
    """40 stable bits of a key text."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=5).digest(), "big")


def _dumps(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


class RecordTable:
    """Rows of JSON records with hash indexes; see the module docstring."""

    def __init__(self, keys: Keys, index_names: Sequence[str]) -> None:
        self._keys = keys
        self.index_names = tuple(index_names)
        self._data: Piece = b""
        self._offsets: array[int] = array("Q", [0])
        self._changed: dict[int, bytes | None] = {}
        """Rows changed since the table was last saved whole (what a delta holds)."""
        self._rebased = True
        """No whole save holds the rows as they were before `_changed` (a new table)."""
        self._saved: set[int] = set()
        """Rows of `_changed` as the last whole save holds them (in no delta): a save
        streams the rows out of the loaded bytes and the changed ones, copying neither."""
        self._size = 0
        self._held: int | None = 0
        """Rows that hold a record (None: not counted since the load; `held` counts)."""
        self._decoded: dict[int, Any] = {}
        """Records decoded so far (a run looks at the same few again and again); read-only."""
        self._indexes = {name: HashIndex() for name in self.index_names}
        self.meta: dict[str, Any] = {}
        """Small JSON values kept with the table (saved and loaded with it)."""

    # --- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def held(self) -> int:
        """Rows that hold a record: saved with the table (else counted from the offsets
        once), then kept up to date by `put` and `free`."""
        if self._held is None:
            offsets = self._offsets
            self._held = sum(1 for row in range(len(offsets) - 1)
                             if row not in self._changed and offsets[row + 1] > offsets[row])
            self._held += sum(1 for text in self._changed.values() if text is not None)
        return self._held

    def raw(self, row: int) -> bytes | None:
        """The record's JSON text; None for a free row."""
        if row in self._changed:
            return self._changed[row]
        if not 0 <= row < len(self._offsets) - 1:
            return None
        start, end = self._offsets[row], self._offsets[row + 1]
        return bytes(self._data[start:end]) if end > start else None

    def get(self, row: int) -> Any | None:
        """The record at `row` (shared: do not change it), None for a free row."""
        found = self._decoded.get(row)
        if found is None:
            text = self.raw(row)
            if text is None:
                return None
            found = self._decoded[row] = json.loads(text)
        return found

    def settle(self) -> None:
        """Fold the rows changed since the load into the table's one byte string once
        they are many (each changed row is an object of its own until then). The table
        then has no delta to save: its next save is whole (`changed_share` is 1)."""
        if len(self._changed) > max(1000, self._size // 8):
            self._data, self._offsets = self._packed()
            self._changed, self._decoded, self._saved = {}, {}, set()
            self._rebased = True

    def changed_share(self) -> float:
        """How much of the table changed since it was saved whole (1: save it whole)."""
        if self._rebased or not self._size:
            return 1.0
        return (len(self._changed) - len(self._saved)) / self._size

    def forget(self) -> None:
        """Drop the records decoded so far (a run that moves on to other users)."""
        self._decoded = {}

    def find(self, index: str, key: str) -> list[int]:
        """Candidate rows whose record has `key` in `index` (and perhaps another key with
        the same hash: compare)."""
        return self._indexes[index].find(key_hash(key))

    def rows(self) -> Iterator[int]:
        """Every row that holds a record."""
        for row in range(len(self)):
            if self.raw(row) is not None:
                yield row

    def records(self) -> Iterator[tuple[int, Any]]:
        for row in self.rows():
            yield row, self.get(row)

    # --- writing ----------------------------------------------------------------------

    def put(self, row: int | None, record: Any) -> int:
        """Store `record` at `row` (None: in a new row); returns the row."""
        if row is None:
            row = len(self)
            if row >= MAX_ROWS:
                raise OverflowError(f"a record table holds at most {MAX_ROWS} rows")
        old = self.get(row)
        text = _dumps(record)
        if old is None and self._held is not None:
            self._held += 1
        self._changed[row] = text
        self._saved.discard(row)
        self._decoded.pop(row, None)
        self._size = max(self._size, row + 1)
        self._reindex(row, old, record)
        return row

    def free(self, row: int) -> None:
        old = self.get(row)
        if old is None:
            return
        if self._held is not None:
            self._held -= 1
        self._changed[row] = None
        self._saved.discard(row)
        self._decoded.pop(row, None)
        self._reindex(row, old, None)

    def _reindex(self, row: int, old: Any | None, new: Any | None) -> None:
        before = self._keys(old) if old is not None else {}
        after = self._keys(new) if new is not None else {}
        for name, index in self._indexes.items():
            gone = {key_hash(k) << ROW_BITS | row for k in before.get(name, ())}
            came = {key_hash(k) << ROW_BITS | row for k in after.get(name, ())}
            if gone != came:
                index.change(gone - came, came - gone)

    # --- bytes ---------------------------------------------------------------------

    def delta_bytes(self) -> bytes:
        """The rows changed since the table was saved whole, and its meta: what
        `apply_delta` folds into that save (a run's changes, not the whole table)."""
        rows = sorted(r for r in self._changed if r not in self._saved)
        header = {"format": _FORMAT, "meta": self.meta, "rows": rows,
                  "sizes": [len(self._changed[r] or b"") for r in rows]}
        return b"".join([_dumps(header), b"\n", *(self._changed[r] or b"" for r in rows)])

    def apply_delta(self, data: bytes) -> None:
        """Fold in what `delta_bytes` of this table's later state gave."""
        line_end = data.find(b"\n")
        header = json.loads(data[:line_end])
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ValueError("not a record table delta of this format")
        position = line_end + 1
        for row, size in zip(header["rows"], header["sizes"], strict=True):
            text = data[position:position + size]
            position += size
            if text:
                self.put(row, json.loads(text))
            else:
                self.free(row)
        self.meta = header.get("meta") or {}

    def to_bytes(self) -> bytes:
        """The table as one byte string (`from_bytes` reads it back)."""
        return b"".join(self.pieces())

    def pieces(self) -> list[Piece]:
        """`to_bytes` in pieces, not joined (a 100,000-user table is tens of MB: its
        writer compresses the pieces one after the other). The rows are slices of the
        loaded bytes and the changed rows' own, so a save never holds the table twice;
        the table keeps reading from them, and the changed rows count as saved."""
        rows, offsets = self._packed_parts()
        self._saved = set(self._changed)
        self._decoded = {}
        self._rebased = False
        sections: list[tuple[str, list[Piece]]] = [
            ("rows", rows), ("offsets", [_le(offsets)])]
        for name, index in self._indexes.items():
            index.merge()
            sections.append((f"index:{name}", [_le(index.entries)]))
        header = {"format": _FORMAT, "meta": self.meta, "held": self.held(),
                  "sections": [[name, sum(len(p) for p in body)] for name, body in sections]}
        return [_dumps(header) + b"\n", *(p for _name, body in sections for p in body)]

    def _packed(self) -> tuple[Piece, array[int]]:
        """The rows in one byte string (`_packed_parts` joined)."""
        if not self._changed:
            return self._data, self._offsets
        parts, offsets = self._packed_parts()
        return b"".join(parts), offsets

    def _packed_parts(self) -> tuple[list[Piece], array[int]]:
        """The rows in order as byte strings: unchanged runs of rows as one slice each
        (a view, not a copy), their offsets shifted by what the changed rows before them
        added or took."""
        if not self._changed:
            return [self._data], self._offsets
        parts: list[Piece] = []
        offsets = array("Q", [0])
        old, data = self._offsets, memoryview(self._data)
        stored = len(old) - 1
        row = 0
        for changed in sorted(self._changed):
            if changed > row and row < stored:  # rows row..changed-1, as they were
                end = min(changed, stored)
                shift = offsets[-1] - old[row]
                parts.append(data[old[row]:old[end]])
                offsets.extend(o + shift for o in old[row + 1:end + 1])
                row = end
            while row < changed:  # rows past the stored ones, never written: free
                offsets.append(offsets[-1])
                row += 1
            text = self._changed[changed] or b""
            parts.append(text)
            offsets.append(offsets[-1] + len(text))
            row = changed + 1
        if row < stored:
            shift = offsets[-1] - old[row]
            parts.append(data[old[row]:old[stored]])
            offsets.extend(o + shift for o in old[row + 1:])
        return parts, offsets

    @classmethod
    def from_bytes(cls, data: Piece, keys: Keys, index_names: Sequence[str]
                   ) -> RecordTable:
        """A table `to_bytes` made; ValueError when `data` is not one (or has other
        indexes). The rows stay in `data` (not copied): keep it read-only."""
        view = memoryview(data)
        line_end = first_line_end(view)
        try:
            header = json.loads(bytes(view[:line_end])) if line_end > 0 else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ValueError("not a record table of this format")
        table = cls(keys, index_names)
        table.meta = header.get("meta") or {}
        position = line_end + 1
        found: dict[str, memoryview] = {}
        for name, size in header["sections"]:
            found[name] = view[position:position + size]
            position += size
        if position != len(view) or set(found) != {
                "rows", "offsets", *(f"index:{n}" for n in index_names)}:
            raise ValueError("a record table's sections do not match its header")
        table._data = found["rows"]
        table._offsets = _from_le(found["offsets"])
        table._size = len(table._offsets) - 1
        held = header.get("held")  # saved with it since it was counted; else count once
        table._held = held if isinstance(held, int) and 0 <= held <= table._size else None
        table._rebased = False
        for name in index_names:
            table._indexes[name] = HashIndex(_from_le(found[f"index:{name}"]))
        return table

    @classmethod
    def build(cls, records: Iterable[Any], keys: Keys, index_names: Sequence[str]
              ) -> RecordTable:
        """A table of `records` (rows in their order), its indexes built in one sort each."""
        builder = Builder(keys, index_names)
        for record in records:
            builder.add(record)
        return builder.table()


class Builder:
    """A new `RecordTable`, a record at a time (a full read adds them page by page).

    The records go straight into one growing byte string and the index entries into
    arrays: 100,000 records are a few objects, not 500,000."""

    def __init__(self, keys: Keys, index_names: Sequence[str]) -> None:
        self._keys = keys
        self._names = tuple(index_names)
        self._data = bytearray()
        self._offsets = array("Q", [0])
        self._pending: dict[str, array[int]] = {name: array("Q") for name in self._names}

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def add(self, record: Any) -> int:
        row = len(self._offsets) - 1
        if row >= MAX_ROWS:
            raise OverflowError(f"a record table holds at most {MAX_ROWS} rows")
        self._data += _dumps(record)
        self._offsets.append(len(self._data))
        for name, found in self._keys(record).items():
            self._pending[name].extend({key_hash(k) << ROW_BITS | row for k in found})
        return row

    def table(self) -> RecordTable:
        table = RecordTable(self._keys, self._names)
        table._data, table._offsets = self._data, self._offsets
        table._size = len(self._offsets) - 1
        table._held = None
        self._data = bytearray()
        for name, entries in self._pending.items():
            table._indexes[name] = HashIndex(array("Q", sorted(entries)))
        self._pending = {}
        return table


def _le(values: array[int]) -> bytes:
    """Little-endian bytes of an array (the stored byte order on any machine)."""
    if sys.byteorder == "little":
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


def first_line_end(view: memoryview) -> int:
    """Where the first line of `view` ends (-1: none), without copying all of it."""
    window = 4096
    while True:
        found = bytes(view[:window]).find(b"\n")
        if found >= 0 or window >= len(view):
            return found
        window *= 16


def _from_le(data: bytes | memoryview) -> array[int]:
    values = array("Q")
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values
