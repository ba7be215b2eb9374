"""Mailbox shards on a storage queue: one run, its shards worked by many instances.

With `EMPLY_SYNC_MAILBOX_SHARDS=queue` the run (under its lease, as always) does the
directory and then, instead of the mailbox pass itself, puts one message per shard on
the queue `config.MAILBOX_QUEUE_NAME`; a queue-triggered function (`sync_queue`) works
each (`work`), and Azure Functions scales such triggers out over instances. No
scheduler of our own: the host delivers, retries a shard whose function raised, and
moves one that keeps failing to the poison queue, whose trigger reports it (`poisoned`).

The run's records, in the pass's table (partition `run-<runId>`): one per shard (its
buckets, then its outcome: changes, errors, counts), `directory` once the run's own
part is saved, and `final` once the run is finished. A run is finished when its shards
are: whoever writes the last of those records (a shard's worker, the poison trigger, or
the run itself) merges the shards' outcomes into the run's report (`finalize`). Until
then the report says `running`, with the shards' progress.

Claims (partition `claims`, a record per bucket: which run's shard holds it, until when)
keep a next run from starting a shard for a mailbox whose previous shard is still at
work: a run skips the claimed buckets (their mailboxes wait for a later run), a worker
renews its claims while it works, and a claim whose worker died lapses after
`CLAIM_TTL`. A shard's changes reach the change feed through the next run
(`feed_pending`, under that run's lease: the feed's entries never interleave).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shared import telemetry
from shared.run.mailboxes import notified, passes
from shared.run.mailboxes.settings import PassSettings
from shared.run.mailboxes.state import BucketIndex
from shared.store import keys, protocols

CLAIMS = "claims"
FEED = "feed"
CLAIM_TTL = dt.timedelta(minutes=15)
"""How long a claim holds without its worker renewing it (a killed host's shard)."""
DIRECTORY, FINAL = "directory", "final"
QUEUED, WORKING, DONE, FAILED = "queued", "working", "done", "failed"

Send = Callable[[Mapping[str, Any]], Awaitable[None]]
"""Puts one shard message on the mailbox queue (`Deps.shard_queue`)."""


def run_partition(run_id: str) -> str:
    return f"run-{keys.encode_key(run_id)}"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class ShardMessage:
    """One queued shard: which run, which buckets, and the run's start (its window)."""

    run_id: str
    shard: str
    first: str
    last: str
    started: str
    swept: tuple[str, ...] | None = None
    """Its buckets whose synced mailboxes are all read (None: every one)."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": "shard", "runId": self.run_id, "shard": self.shard,
                "first": self.first, "last": self.last, "started": self.started,
                "swept": list(self.swept) if self.swept is not None else None}

    @classmethod
    def parse(cls, raw: str | bytes) -> ShardMessage:
        """The message, or ValueError naming what is wrong with it."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("the shard message is not JSON") from exc
        if not isinstance(data, dict) or data.get("kind") != "shard":
            raise ValueError("the shard message has no kind 'shard'")
        fields: dict[str, str] = {}
        for name in ("runId", "shard", "first", "last", "started"):
            value = data.get(name)
            if not isinstance(value, str) or not value or len(value) > 100:
                raise ValueError(f"the shard message's {name} is missing")
            fields[name] = value
        if not (fields["first"] in keys.ALL_BUCKETS and fields["last"] in keys.ALL_BUCKETS
                and fields["first"] <= fields["last"]):
            raise ValueError("the shard message's buckets are not a range")
        if parse_time(fields["started"]) is None:
            raise ValueError("the shard message's started is not a time")
        swept = data.get("swept")
        if swept is not None and not (isinstance(swept, list) and all(
                b in keys.ALL_BUCKETS for b in swept)):
            raise ValueError("the shard message's swept is not a list of buckets")
        return cls(fields["runId"], fields["shard"], fields["first"], fields["last"],
                   fields["started"], None if swept is None else tuple(swept))

    def buckets(self) -> list[str]:
        return [b for b in keys.ALL_BUCKETS if self.first <= b <= self.last]


async def busy_buckets(states: protocols.MailboxStates, now: dt.datetime) -> set[str]:
    """The buckets a shard still holds (its claim has not lapsed)."""
    busy = set()
    for bucket, (value, _etag) in (await states.read_records(CLAIMS)).items():
        until = parse_time(value.get("until"))
        if until is not None and until > now:
            busy.add(bucket)
    return busy


async def enqueue(store: protocols.SyncStore, send: Send, *, run_id: str,
                  started: dt.datetime, index: Mapping[str, BucketIndex],
                  config: PassSettings, work: passes.PassWork) -> tuple[int, int]:
    """Queue the shards of the buckets the pass touches and no earlier shard holds;
    (shards queued, buckets skipped because a shard still holds them)."""
    states = store.mailbox_states()
    busy = await busy_buckets(states, started)
    queued = 0
    skip = busy | (set(keys.ALL_BUCKETS) - work.touched)
    if work.stale:  # marks of mailboxes not synced: nothing to read
        await notified.clear(states, work.dirty, work.stale)
    if work.generation is not None:
        await passes.record_generation(states, work.generation)
    for n, part in enumerate(passes.plan_shards(index, config.shard_size, skip=skip)):
        message = ShardMessage(run_id, f"{n:04d}", part.first, part.last, iso(started),
                               tuple(b for b in keys.ALL_BUCKETS
                                     if part.first <= b <= part.last and b in work.swept))
        if not await _claim(states, message, started):
            continue  # another run's shard took a bucket meanwhile: a later run reads it
        await states.put_record(run_partition(run_id), message.shard, {
            "status": QUEUED, "first": part.first, "last": part.last,
            "mailboxes": len(part.users)})
        await send(message.to_json())
        queued += 1
    if busy:  # an earlier run's shards are behind the schedule: these mailboxes wait
        telemetry.log.warning("emply_sync.mailbox_buckets_held", extra={
            "runId": run_id, "buckets": len(busy), "shardsQueued": queued})
    return queued, len(busy)


async def _claim(states: protocols.MailboxStates, message: ShardMessage,
                 now: dt.datetime) -> bool:
    """Claim every bucket of the shard (a lapsed claim is taken over); False, with the
    ones taken given back, when one is held."""
    current = await states.read_records(CLAIMS)
    value = {"runId": message.run_id, "shard": message.shard,
             "until": iso(now + CLAIM_TTL)}
    taken: list[tuple[str, str]] = []
    for bucket in message.buckets():
        held = current.get(bucket)
        until = parse_time(held[0].get("until")) if held else None
        etag = None if until is not None and until > now else await states.put_record(
            CLAIMS, bucket, value, etag=held[1] if held else None, create=held is None)
        if etag is None:
            for done, tag in taken:
                await states.delete_record(CLAIMS, done, etag=tag)
            return False
        taken.append((bucket, etag))
    return True
