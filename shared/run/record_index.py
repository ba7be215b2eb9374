"""One hash index of a record table (`shared.run.records`): sorted 64-bit entries
``hash << 24 | row`` in an `array`, found by binary search, plus the changes not yet
merged in (kept apart until there are many, then merged in one pass)."""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Iterable

ROW_BITS = 24
MAX_ROWS = 1 << ROW_BITS
_ROW_MASK = MAX_ROWS - 1
_MERGE_AT = 4096
"""Pending index changes merged into the sorted array once this many are waiting."""


class HashIndex:
    """Sorted entries ``hash << 24 | row`` plus the changes not yet merged in."""

    __slots__ = ("_added", "_pending", "_removed", "entries")

    def __init__(self, entries: array[int] | None = None) -> None:
        self.entries: array[int] = entries if entries is not None else array("Q")
        self._added: dict[int, list[int]] = {}
        """hash -> entries added since the last merge."""
        self._removed: set[int] = set()
        self._pending = 0

    def find(self, h: int) -> list[int]:
        """The rows of the entries with hash `h` (candidates: the caller compares)."""
        low = h << ROW_BITS
        entries = self.entries
        rows = []
        i = bisect.bisect_left(entries, low)
        while i < len(entries) and entries[i] >> ROW_BITS == h:
            if entries[i] not in self._removed:
                rows.append(entries[i] & _ROW_MASK)
            i += 1
        rows.extend(e & _ROW_MASK for e in self._added.get(h, ()))
        return rows

    def change(self, removed: Iterable[int], added: Iterable[int]) -> None:
        for entry in removed:
            bucket = self._added.get(entry >> ROW_BITS)
            if bucket is not None and entry in bucket:
                bucket.remove(entry)
            else:
                self._removed.add(entry)
            self._pending += 1
        for entry in added:
            self._added.setdefault(entry >> ROW_BITS, []).append(entry)
            self._pending += 1
        if self._pending >= _MERGE_AT and self._pending * 8 >= len(self.entries):
            self.merge()

    def merge(self) -> None:
        if not self._pending:
            return
        removed = self._removed
        kept: Iterable[int] = (e for e in self.entries if e not in removed) if removed \
            else self.entries
        added = sorted(e for bucket in self._added.values() for e in bucket)
        # Both sorted: merged into the new array as they come (a list of 100,000 ints
        # would be 4 MB more at the moment a run saves its index).
        self.entries = array("Q", heapq.merge(kept, added))
        self._added, self._removed, self._pending = {}, set(), 0
