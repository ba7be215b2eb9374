"""The change-feed step: every change a real run applied, recorded in order, for
`GET /api/changes` (`shared.app.changes` reads it with a cursor).

The last step of a real run, inside its lease, so runs' entries never interleave: the
changes the run applied (the plan's, less what a step dropped, plus what a step added),
each with the run id and the time it was recorded. A dry run records nothing; a failed
run records nothing either (what it applied before failing is not known change by
change: the next run plans from the state it left, and its own changes are recorded).
The changes of a run's mailbox shards worked on the queue (`shared.run.mailboxes.queued`)
are recorded by the next run, first (`flush_feed`). Entries are kept `RETENTION_DAYS`.
A feed that cannot be written is reported (`change_feed_not_written`) and logged, never
a failed run: the changes are applied.

Entries are stored in chunks (`shared.store.feed_chunks`). Chunk keys are the recording
time (UTC, milliseconds), the run id and the chunk's number, so they sort in the order
runs recorded them; `KEY` is their shape.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared import telemetry
from shared.run.context import Deps, Run
from shared.run.mailboxes import queued
from shared.run.steps import base
from shared.store import protocols
from shared.store.feed_chunks import Chunk, ChunkTooLarge
from shared.store.protocols import ChangeFeed, FeedChunks

RETENTION_DAYS = 90
CHUNK_CHANGES = 1000
"""Changes per stored chunk (fewer when they do not fit one entity)."""
ENTRY_FIELDS = ("kind", "userId", "entraId", "employeeId", "reason", "rule", "before",
                "after", "message")
"""The fields of a report's change an entry keeps (plus `runId` and `at`)."""
KEY = re.compile(r"\d{8}T\d{9}Z_[0-9A-Za-z-]{1,64}_\d{6}", re.ASCII)


def stamp(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"


def moment_of(key: str) -> dt.datetime:
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


async def record_run(chunks: FeedChunks, run_id: str, changes: Sequence[Mapping[str, Any]],
                     now: dt.datetime, *, chunk_changes: int = CHUNK_CHANGES) -> int:
    """Record a run's applied changes (in the report's order) and drop the entries past
    retention. Returns the number of chunks written."""
    at = now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    prefix = f"{stamp(now)}_{run_id}"
    written = 0
    for start in range(0, len(changes), chunk_changes):
        # One batch of changes encoded at a time: a 100,000-user run's feed is never
        # held encoded all at once.
        batch = _chunks(changes[start:start + chunk_changes], run_id, at, prefix)
        renumbered = [Chunk(f"{prefix}_{written + i:06d}", c.payload, c.count)
                      for i, c in enumerate(batch)]
        await chunks.put(renumbered)
        written += len(renumbered)
    await chunks.delete_before(stamp(now - dt.timedelta(days=RETENTION_DAYS)))
    return written


class ChangeFeedStep(base.Step):
    name = "change_feed"

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        return await record(run.deps, run.run_id, [c.to_json() for c in applied.changes()])


async def record(deps: Deps, run_id: str, changes: Sequence[Mapping[str, Any]]
                 ) -> base.StepOutcome:
    """The step's work for these changes (the report's form of each); a run that plans
    by parts (`shared.run.indexed`) calls it once for all of them."""
    # First what earlier runs' mailbox shards did since (under this run's lease).
    error = await flush_feed(deps.store, deps.clock()) or \
        await record_changes(deps.store, run_id, changes, deps.clock())
    return base.StepOutcome(ChangeFeedStep.name, errors=(error,) if error else (),
                            progress={} if error else {"feedChanges": len(changes)})


async def record_changes(store: ChangeFeed, run_id: str,
                         changes: Sequence[Mapping[str, Any]], now: dt.datetime
                         ) -> dict[str, Any] | None:
    """Record a run's applied changes; the report's error when the feed could not be
    written (never a failed run: the changes are applied)."""
    try:
        count = await record_run(store.feed_chunks(), run_id, changes, now)
    except Exception as exc:
        telemetry.log.warning("emply_sync.change_feed_not_written",
                              extra={"runId": run_id}, exc_info=True)
        return {"reason": "change_feed_not_written", "temporary": True,
                "message": f"the run's changes are applied but the change feed could not "
                f"record them ({type(exc).__name__}); read the run's report or the Emply "
                "side (GET /api/emply) for them"}
    if count:
        telemetry.log.info("emply_sync.change_feed_recorded",
                           extra={"runId": run_id, "changes": len(changes), "chunks": count})
    return None


async def flush_feed(store: protocols.SyncStore, now: dt.datetime
                     ) -> dict[str, Any] | None:
    """Record in the change feed the changes of the runs whose shards finished since
    (in the order they finished), then drop their records; the report's error when the
    feed could not be written (the next run tries again). Called under a run's lease,
    so the feed's entries never interleave."""
    states = store.mailbox_states()
    pending = await states.read_records(queued.FEED)
    for run_id, (_value, etag) in sorted(pending.items(),
                                         key=lambda p: str(p[1][0].get("at"))):
        partition = queued.run_partition(run_id)
        rows = await states.read_records(partition)
        changes = [c for key, (shard, _e) in sorted(rows.items())
                   if key not in (queued.DIRECTORY, queued.FINAL)
                   for c in shard.get("changes") or ()]
        error = await record_changes(store, run_id, changes, now)
        if error is not None:
            return error
        for key in rows:
            await states.delete_record(partition, key)
        await states.delete_record(queued.FEED, run_id, etag=etag)
    return None


STEP = ChangeFeedStep()
