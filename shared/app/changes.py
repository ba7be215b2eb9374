"""`GET /api/changes` a page at a time: the run's change feed (`shared.run.change_feed`)
behind sealed cursors (`shared.app.cursors`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.app import cursors
from shared.run import change_feed
from shared.store import protocols

BadCursor = change_feed.BadCursor
CursorExpired = change_feed.CursorExpired


async def read_page(store: protocols.SyncStore, after: str | None, page_size: int,
                    now: dt.datetime) -> tuple[list[dict[str, Any]], str]:
    """Up to `page_size` changes after the sealed cursor `after`, and the sealed cursor
    after them (the same cursor when there is nothing new). Raises `gate.GateError`
    (a cursor this service did not hand out), `CursorExpired` (past retention)."""
    position = await cursors.unseal(store, after, "after")
    items, following = await change_feed.read_page(store, position, page_size, now)
    sealed = await cursors.seal(store, following)
    assert sealed is not None  # a position in, a position out
    return items, sealed
