"""The change feed: every change a sync run applied, in order, read with a cursor
(`GET /api/changes`, docs/emply-api.md "Change feed").

A run records its applied changes once they are applied (`record_run`, called by the
service inside the run's lease, so runs' entries never interleave): the changes of the
final report, each with the run id and the time it was recorded. A dry run records
nothing; a failed run records nothing either (what it applied before failing is not
known change by change: the next run plans from the state it left, and its own
changes are recorded). Entries are kept `RETENTION_DAYS`; a cursor older than that is
expired (`CursorExpired`: the caller answers 410).

Entries are stored in chunks (`shared.store.change_feed`); a cursor is the position
after the last entry read: the chunk's key and the index in it, base64 JSON (opaque to
callers). Chunk keys are the recording time (UTC, milliseconds), the run id and the
chunk's number, so they sort in the order runs recorded them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared import telemetry
from shared.run import records
from shared.store import change_feed as store_feed
from shared.store import protocols
from shared.store.change_feed import Chunk, ChunkStore, ChunkTooLarge

RETENTION_DAYS = 90
CHUNK_CHANGES = 1000
"""Changes per stored chunk (fewer when they do not fit one entity)."""
ENTRY_FIELDS = ("kind", "userId", "entraId", "employeeId", "reason", "rule", "before",
                "after", "message")
"""The fields of a report's change an entry keeps (plus `runId` and `at`)."""
_KEY = re.compile(r"\d{8}T\d{9}Z_[0-9A-Za-z-]{1,64}_\d{6}", re.ASCII)
_START = ("", 0)


class BadCursor(ValueError):
    """An `after` cursor this service did not hand out."""


class CursorExpired(LookupError):
    """A cursor older than the feed's retention: the entries after it may be gone."""


def _stamp(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"


def _moment(key: str) -> dt.datetime:
    return dt.datetime.strptime(key[:15], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)


def _chunks(changes: Sequence[Mapping[str, Any]], run_id: str, at: str,
            prefix: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    pending = [(0, len(changes))]
    shared = {"runId": run_id, "at": at}
    while pending:
        start, end = pending.pop(0)
        try:
            # A report's changes hold only the entry's fields (`ENTRY_FIELDS`): stored
            # as they are, not copied; what they share is added when they are read.
            chunks.append(Chunk.of(f"{prefix}_{len(chunks):06d}", changes[start:end],
                                   shared))
        except ChunkTooLarge:
            if end - start == 1:
                raise
            middle = (start + end) // 2
            pending[:0] = [(start, middle), (middle, end)]
    return chunks


async def record_run(chunks: ChunkStore, run_id: str, changes: Sequence[Mapping[str, Any]],
                     now: dt.datetime, *, chunk_changes: int = CHUNK_CHANGES) -> int:
    """Record a run's applied changes (in the report's order) and drop the entries past
    retention. Returns the number of chunks written."""
    at = now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    prefix = f"{_stamp(now)}_{run_id}"
    written = 0
    for start in range(0, len(changes), chunk_changes):
        # One batch of changes encoded at a time: a 100,000-user run's feed is never
        # held encoded all at once.
        batch = _chunks(changes[start:start + chunk_changes], run_id, at, prefix)
        renumbered = [Chunk(f"{prefix}_{written + i:06d}", c.payload, c.count)
                      for i, c in enumerate(batch)]
        await chunks.put(renumbered)
        written += len(renumbered)
    await chunks.delete_before(_stamp(now - dt.timedelta(days=RETENTION_DAYS)))
    return written


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
    if not (isinstance(key, str) and _KEY.fullmatch(key) and type(index) is int
            and 0 <= index <= 1_000_000):
        raise BadCursor("after is not a cursor this service handed out")
    try:
        moment = _moment(key)
    except ValueError:  # digits that are no date
        raise BadCursor("after is not a cursor this service handed out") from None
    if moment < now - dt.timedelta(days=RETENTION_DAYS):
        raise CursorExpired(
            f"the cursor is older than the feed's retention ({RETENTION_DAYS} days); read "
            "the whole Emply side again (GET /api/emply), then follow the feed from its "
            "start (GET /api/changes without after)")
    return key, index


async def page(chunks: ChunkStore, after: str | None, page_size: int,
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


async def record_report(store: protocols.SyncStore, report: records.RunReport,
                        now: dt.datetime) -> records.RunReport:
    """Record a real run's applied changes (its report's) in the store's feed. The
    changes are applied whatever happens here: a feed that cannot be written is reported
    (`change_feed_not_written`) and logged, not a failed run."""
    try:
        count = await record_run(store_feed.chunks_of(store), report.run_id, report.changes,
                                 now)
    except Exception as exc:
        telemetry.log.warning("emply_sync.change_feed_not_written",
                              extra={"runId": report.run_id}, exc_info=True)
        return report.with_error({
            "reason": "change_feed_not_written", "temporary": True,
            "message": f"the run's changes are applied but the change feed could not "
            f"record them ({type(exc).__name__}); read the run's report or the Emply "
            "side (GET /api/emply) for them"})
    if count:
        telemetry.log.info("emply_sync.change_feed_recorded",
                           extra={"runId": report.run_id, "changes": len(report.changes),
                                  "chunks": count})
    return report


async def read_page(store: protocols.SyncStore, after: str | None, page_size: int,
                    now: dt.datetime) -> tuple[list[dict[str, Any]], str]:
    """`page` of the store's feed (what `GET /api/changes` answers)."""
    return await page(store_feed.chunks_of(store), after, page_size, now)
