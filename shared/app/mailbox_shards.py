"""The mailbox queue's work (`sync_queue`): one shard of a run's mailbox pass per message.

`work` runs the shard (`shared.run.mailboxes.shard_runs.work`) with the same store and
Graph client a run has; a failure that is no one user's (storage or Graph unavailable,
a bug) raises, so the host delivers the message again, and after `maxDequeueCount`
(host.json) moves it to the poison queue, whose trigger reports the shard failed in its
run (`poisoned`): a shard is retried and then reported, never silently lost. A message
that is not a shard's is logged and dropped (nothing could ever work it).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared import telemetry
from shared.app import boundary
from shared.run.mailboxes import queued, shard_runs

INVALID = "mailbox_shard_message_invalid"


def _parse(raw: str | bytes) -> queued.ShardMessage | None:
    try:
        return queued.ShardMessage.parse(raw)
    except ValueError as exc:
        telemetry.log.error("emply_sync.error", extra={"reason": INVALID,
                                                       "detail": str(exc)[:200]})
        return None


async def work(raw: str | bytes, dequeue_count: int,
               environ: Mapping[str, str] | None = None) -> str | None:
    """Work one shard message; what became of it (None: not a shard's message)."""
    message = _parse(raw)
    if message is None:
        return None
    async with boundary.open_deps(environ=environ) as deps:
        outcome = await shard_runs.work(deps.store, deps.graph, deps.mailboxes, message,
                                        deps.clock())
    telemetry.log.info("emply_sync.mailbox_shard", extra={
        "runId": message.run_id, "shard": message.shard, "outcome": outcome,
        "attempt": dequeue_count})
    return outcome


async def poisoned(raw: str | bytes, dequeue_count: int,
                   environ: Mapping[str, str] | None = None) -> None:
    """The poison queue's trigger: the shard is reported failed in its run."""
    message = _parse(raw)
    if message is None:
        return
    async with boundary.open_deps(environ=environ) as deps:
        await shard_runs.poisoned(deps.store, message, dequeue_count, deps.clock())
