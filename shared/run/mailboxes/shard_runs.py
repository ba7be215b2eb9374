"""A queued shard worked (`work`) or given up (`poisoned`), and its run finished when its
last shard is (`finalize`); see `shared.run.mailboxes.queued` for the records."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from shared import telemetry
from shared.graph import client as graph_client
from shared.graph.mailbox_gate import MailboxGate
from shared.reconcile import convert, events
from shared.run.mailboxes import job as shard_job
from shared.run.mailboxes import notified, passes, queued
from shared.run.mailboxes import shard as one_shard
from shared.run.mailboxes.queued import DIRECTORY, DONE, FAILED, FINAL, ShardMessage
from shared.run.mailboxes.settings import PassSettings
from shared.store import protocols

Json = dict[str, Any]
SHARD_FAILED = "mailbox_shard_failed"
SHARD_SUPERSEDED = "mailbox_shard_superseded"
STARTED, GIVEN_UP = "started", "given_up"
"""`emply_sync.mailbox_shard` outcomes besides what `work` returns."""


async def work(store: protocols.SyncStore, graph: graph_client.GraphClient,
               config: PassSettings, message: ShardMessage,
               now: dt.datetime) -> str:
    """Work one queued shard; what became of it (`done`, or why nothing was done). A
    failure that is no one user's raises: the host delivers the message again."""
    states = store.mailbox_states()
    rows = await states.read_records(queued.run_partition(message.run_id))
    row = rows.get(message.shard)
    if row is None or row[0].get("status") in (DONE, FAILED):
        return "already settled"  # a message delivered twice
    if not await _still_ours(states, message):
        await record(store, message, _result(message, DONE, errors=[{
            "reason": SHARD_SUPERSEDED, "temporary": True,
            "message": f"buckets {message.first}..{message.last} were taken over by a "
                       "later run's shard after this one's claim lapsed; that run reads "
                       "their mailboxes"}]), now)
        return "superseded"
    raw_settings = await passes.load_settings(states)
    if raw_settings is None:
        raise ValueError("the mailbox pass has no settings recorded for this run")
    index = await passes.read_index(states)
    users = {u: s for b in message.buckets() for u, s in index.get(b, {}).items()}
    started = queued.parse_time(message.started) or now
    settings = convert.settings(raw_settings)
    start, end = events.window(started, settings)
    notify = (notified.Notify(config.notification_url, await notified.secret(states))
              if config.notification_url else None)
    job = shard_job.ShardJob(message.run_id, message.first, message.last, users, settings,
                             (events.iso(start), events.iso(end)), started,
                             swept=None if message.swept is None else frozenset(message.swept),
                             dirty=await notified.dirty(states), notify=notify)
    async with _renewing(states, message):
        found = await one_shard.run_shard(
            shard_job.ShardDeps(store, graph, MailboxGate(batches=config.batches)), job)
    await record(store, message, _result(
        message, DONE, changes=[c.to_json() for c in found.changes], errors=found.errors,
        mailboxes=found.mailboxes), now)
    return DONE


async def poisoned(store: protocols.SyncStore, message: ShardMessage, attempts: int,
                   now: dt.datetime) -> None:
    """The host gave the shard up (its function kept raising): reported in its run,
    never dropped silently; its buckets are free for the next run, which reads their
    mailboxes again."""
    await record(store, message, _result(message, FAILED, errors=[{
        "reason": SHARD_FAILED, "temporary": True,
        "message": f"the mailboxes of buckets {message.first}..{message.last} were not "
                   "synced by this run: their shard kept failing and the host gave it up "
                   "(see the logs); the next run reads them again"}]), now)
    telemetry.log.error("emply_sync.mailbox_shard", extra={
        "runId": message.run_id, "shard": message.shard, "outcome": GIVEN_UP,
        "attempt": attempts})


def _result(message: ShardMessage, status: str, *, changes: list[Json] | None = None,
            errors: list[Json] | None = None, mailboxes: int = 0) -> Json:
    counts: dict[str, int] = {}
    for change in changes or ():
        counts[change["kind"]] = counts.get(change["kind"], 0) + 1
    return {"status": status, "first": message.first, "last": message.last,
            "changes": changes or [], "errors": errors or [], "counts": counts,
            "mailboxesRead": mailboxes}


async def record(store: protocols.SyncStore, message: ShardMessage, result: Json,
                 now: dt.datetime) -> None:
    """A shard's outcome: into the run's record as progress first, then its own record
    (so the run's final report, made after the last record, is written last), its
    claims given back; then the run finished if this was its last shard."""
    states = store.mailbox_states()
    await _progress(store, message.run_id, message.shard, result)
    await states.put_record(queued.run_partition(message.run_id), message.shard, result)
    await _release(states, message)
    await finalize(store, message.run_id, now)


async def directory_done(store: protocols.SyncStore, run_id: str, now: dt.datetime) -> None:
    """The run saved its own report: its shards may finish it now (or it did, last)."""
    await store.mailbox_states().put_record(queued.run_partition(run_id), DIRECTORY,
                                            {"at": queued.iso(now)})
    await finalize(store, run_id, now)


async def finalize(store: protocols.SyncStore, run_id: str, now: dt.datetime) -> bool:
    """Finish the run when its own part and every shard are done: one writer (the
    `final` record is created once) merges the shards into its report."""
    states = store.mailbox_states()
    partition = queued.run_partition(run_id)
    rows = await states.read_records(partition)
    shards = {k: v for k, (v, _e) in rows.items() if k not in (DIRECTORY, FINAL)}
    if DIRECTORY not in rows or FINAL in rows or any(
            v.get("status") not in (DONE, FAILED) for v in shards.values()):
        return False
    if await states.put_record(partition, FINAL, {"at": queued.iso(now)}, create=True) \
            is None:
        return False
    report = await store.get_run(run_id)
    if report is None:
        return False
    final = merged(report, shards, now)
    await store.save_run(final)
    await states.put_record(queued.FEED, run_id, {"at": queued.iso(now)})
    telemetry.log_run(final, errors=[e for s in shards.values() for e in s.get("errors") or ()])
    return True


def merged(report: Mapping[str, Any], shards: Mapping[str, Json], now: dt.datetime) -> Json:
    """The run's report with its shards' outcomes: their changes, counts and errors, the
    status the run's own part ended with, the time the last shard ended."""
    out = dict(report)
    info = dict(out.get("mailboxShards") or {})
    counts = dict(out.get("counts") or {})
    changes, errors = list(out.get("changes") or ()), list(out.get("errors") or ())
    for _key, shard in sorted(shards.items()):
        changes += shard.get("changes") or []
        errors += shard.get("errors") or []
        for kind, n in (shard.get("counts") or {}).items():
            counts[kind] = counts.get(kind, 0) + int(n)
    info.update(done=sum(s.get("status") == DONE for s in shards.values()),
                failed=sum(s.get("status") == FAILED for s in shards.values()))
    out.update(status=info.pop("statusWhenDone", out.get("status")), changes=changes,
               errors=errors, counts=counts, mailboxShards=info,
               finishedAt=queued.iso(now))
    started = queued.parse_time(out.get("startedAt"))
    if started is not None:
        out["durationMs"] = int((now - started).total_seconds() * 1000)
    out.pop("progress", None)
    return out


async def _progress(store: protocols.SyncStore, run_id: str, shard: str, result: Json
                    ) -> None:
    """The shards' progress and errors so far in the running report (informative: a
    concurrent writer may show one shard fewer; the final report is exact)."""
    report = await store.get_run(run_id)
    if report is None or report.get("status") != "running":
        return
    rows = await store.mailbox_states().read_records(queued.run_partition(run_id))
    shards = {k: v for k, (v, _e) in rows.items() if k not in (DIRECTORY, FINAL)}
    shards[shard] = result
    settled = [v for v in shards.values() if v.get("status") in (DONE, FAILED)]
    await store.save_run({**report, "progress": {
        "phase": "mailboxes", "shards": len(shards), "shardsDone": len(settled),
        "mailboxErrors": [e for v in settled for e in v.get("errors") or ()][:1000]}})


async def _still_ours(states: protocols.MailboxStates, message: ShardMessage) -> bool:
    claims = await states.read_records(queued.CLAIMS)
    held = [claims[b][0] if b in claims else {} for b in message.buckets()]
    return all(h.get("runId") == message.run_id and h.get("shard") == message.shard
               for h in held)


async def _release(states: protocols.MailboxStates, message: ShardMessage) -> None:
    claims = await states.read_records(queued.CLAIMS)
    for bucket in message.buckets():
        held = claims.get(bucket)
        if held and held[0].get("runId") == message.run_id \
                and held[0].get("shard") == message.shard:
            await states.delete_record(queued.CLAIMS, bucket, etag=held[1])


@contextlib.asynccontextmanager
async def _renewing(states: protocols.MailboxStates, message: ShardMessage
                    ) -> AsyncIterator[None]:
    """The shard's claims renewed while it works (a third of their time apart)."""
    async def renew() -> None:
        while True:
            await asyncio.sleep(queued.CLAIM_TTL.total_seconds() / 3)
            claims = await states.read_records(queued.CLAIMS)
            until = queued.iso(dt.datetime.now(dt.UTC) + queued.CLAIM_TTL)
            for bucket in message.buckets():
                held = claims.get(bucket)
                if held and held[0].get("shard") == message.shard:
                    await states.put_record(queued.CLAIMS, bucket,
                                            {**held[0], "until": until}, etag=held[1])

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

