"""The change feed's unit of storage: a chunk of applied changes (pure, no I/O).

A run's applied changes are stored in chunks, a few hundred to a thousand changes each,
not one entity per change: a 100,000-user initial run (about 133,000 changes) is a few
hundred chunks. A chunk's changes are JSON, zlib-compressed; where chunks live is a
`shared.store.protocols.FeedChunks` (`shared.store.change_feed.TableChunks` in Table
Storage, an in-memory fake in the tests).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

PART_BYTES = 60_000
"""Bytes per binary property (Table Storage takes at most 64 KiB)."""
MAX_PARTS = 15
"""Properties per chunk: 900 KB of compressed changes, under the 1 MiB entity limit."""


class ChunkTooLarge(ValueError):
    """A chunk's compressed changes do not fit one entity (the caller splits it)."""


class Chunk:
    """One stored chunk: its key, and its changes (decoded when asked), with what they
    share (the run id and the time: `{"shared": {...}, "changes": [...]}`), so the
    changes are stored as the report has them, not copied one by one."""

    __slots__ = ("_payload", "count", "key")

    def __init__(self, key: str, payload: bytes, count: int) -> None:
        self.key = key
        self.count = count
        self._payload = payload

    @classmethod
    def of(cls, key: str, changes: Sequence[Mapping[str, Any]],
           shared: Mapping[str, Any] | None = None) -> Chunk:
        raw = json.dumps({"shared": dict(shared or {}), "changes": list(changes)},
                         ensure_ascii=False, separators=(",", ":")).encode()
        payload = zlib.compress(raw, 1)  # level 1: a fifth of level 6's time, 15% larger
        if len(payload) > PART_BYTES * MAX_PARTS:
            raise ChunkTooLarge(f"{len(changes)} changes compress to {len(payload)} bytes")
        return cls(key, payload, len(changes))

    @property
    def payload(self) -> bytes:
        return self._payload

    def changes(self) -> list[dict[str, Any]]:
        """The changes, each with the fields they share."""
        decoded = json.loads(zlib.decompress(self._payload))
        shared = decoded["shared"]
        return [{**change, **shared} for change in decoded["changes"]]
