"""The change feed read back a page at a time (`GET /api/changes?after=CURSOR`).

The feed is written by the runs (`shared.run.steps.change_feed`). A position is the
place after the last entry read: the chunk's key and the index in it; what callers get
is that position sealed (`shared.app.cursors`), so what comes back is a position this
service made or a 400. Caught up = an empty page and the same cursor. A position older
than the feed's retention is expired (`CursorExpired`: the caller answers 410).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from shared.app import cursors
from shared.run.steps.change_feed import KEY, RETENTION_DAYS, moment_of
from shared.store import protocols
from shared.store.protocols import FeedChunks

_START = ("", 0)


class BadCursor(ValueError):
    """An `after` cursor this service did not hand out."""


class CursorExpired(LookupError):
    """A cursor older than the feed's retention: the entries after it may be gone."""


def encode_cursor(key: str, index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([key, index]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, now: dt.datetime) -> tuple[str, int]:
    """The position a cursor names (the start of the feed for None)."""
    if cursor is None:
        return _START
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, index = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor("after is not a cursor this service handed out") from None
    if (key, index) == _START:
        return _START
    if not (isinstance(key, str) and KEY.fullmatch(key) and type(index) is int
            and 0 <= index <= 1_000_000):
        raise BadCursor("after is not a cursor this service handed out")
    try:
        moment = moment_of(key)
    except ValueError:  # digits that are no date
        raise BadCursor("after is not a cursor this service handed out") from None
    if moment < now - dt.timedelta(days=RETENTION_DAYS):
        raise CursorExpired(
            f"the cursor is older than the feed's retention ({RETENTION_DAYS} days); read "
            "the whole Emply side again (GET /api/emply), then follow the feed from its "
            "start (GET /api/changes without after)")
    return key, index


async def page(chunks: FeedChunks, after: str | None, page_size: int,
               now: dt.datetime) -> tuple[list[dict[str, Any]], str]:
    """Up to `page_size` entries after the cursor, and the cursor after them (the same
    cursor when there is nothing new)."""
    key, index = decode_cursor(after, now)
    found: list[dict[str, Any]] = []
    position = (key, index)
    async for chunk in chunks.from_key(key):
        skip = index if chunk.key == key else 0
        if skip >= chunk.count:
            continue
        wanted = page_size - len(found)
        taken = chunk.changes()[skip:skip + wanted]
        found += taken
        position = (chunk.key, skip + len(taken))
        if len(found) >= page_size:
            break
    if position == (key, index) and after is not None:
        return found, after
    return found, encode_cursor(*position)


async def read_page(store: protocols.SyncStore, after: str | None, page_size: int,
                    now: dt.datetime) -> tuple[list[dict[str, Any]], str]:
    """Up to `page_size` changes after the sealed cursor `after`, and the sealed cursor
    after them (the same cursor when there is nothing new). Raises `gate.GateError`
    (a cursor this service did not hand out), `CursorExpired` (past retention)."""
    position = await cursors.unseal(store, after, "after")
    items, following = await page(store.feed_chunks(), position, page_size, now)
    if following == position and after is not None:
        return items, after
    sealed = await cursors.seal(store, following)
    assert sealed is not None  # a position in, a position out
    return items, sealed
