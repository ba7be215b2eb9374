"""A run's applied changes, as its report lists them, held compressed until written.

An initial sync of 100,000 users makes 133,000 changes; as report dicts they take about
150 MB, more than the rest of such a run holds at any time. So a run that plans in parts
appends each part's changes here, a thousand at a time encoded and compressed (about
150 bytes a change), and the report, the change feed and the run's caller read them
back (`Sequence`: by index or slice, a thousand decoded at a time). The report keeps it
as it is (`RunReport.to_json`): it is written a block at a time, and compares equal to
the list of the same changes; `json.dumps` takes it with `default=list`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

BLOCK = 1000
"""Changes per compressed block."""


class ChangeLog(Sequence[dict[str, Any]]):
    def __init__(self, changes: Iterable[Mapping[str, Any]] = ()) -> None:
        self._blocks: list[bytes] = []
        self._pending: list[Mapping[str, Any]] = []
        self._count = 0
        self.extend(changes)

    def append(self, change: Mapping[str, Any]) -> None:
        self._pending.append(change)
        self._count += 1
        if len(self._pending) >= BLOCK:
            self._seal()

    def extend(self, changes: Iterable[Mapping[str, Any]]) -> None:
        for change in changes:
            self.append(change)

    def _seal(self) -> None:
        text = json.dumps(self._pending, ensure_ascii=False, separators=(",", ":"))
        self._blocks.append(zlib.compress(text.encode(), 1))
        self._pending = []

    def _block(self, number: int) -> list[dict[str, Any]]:
        if number < len(self._blocks):
            decoded: list[dict[str, Any]] = json.loads(zlib.decompress(self._blocks[number]))
            return decoded
        return [dict(c) for c in self._pending]

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            out: list[dict[str, Any]] = []
            for number in range(start // BLOCK, (stop - 1) // BLOCK + 1 if stop > start else 0):
                block = self._block(number)
                first = number * BLOCK
                out.extend(block[max(start - first, 0):max(stop - first, 0)])
            return out
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        return self._block(index // BLOCK)[index % BLOCK]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for number in range(len(self._blocks) + 1):
            yield from self._block(number)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChangeLog | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence that compares by value
