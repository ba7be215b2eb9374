"""Queue triggers: the worker that runs manual sync requests, Graph notifications' work,
the mailbox pass's shards, and their poison queues.

`POST /api/sync` queues a run request (`shared.app.manual_runs`); this runs it with the same
service code as the timer. A run with `EMPLY_SYNC_MAILBOX_SHARDS=queue` puts its mailbox
shards on `emply-sync-mailboxes` (`shared.app.mailbox_shards`), worked here on as many
instances as the host scales to. The connection is `EMPLY_SYNC_QUEUE` (a connection
string locally; `EMPLY_SYNC_QUEUE__queueServiceUri` and the managed identity in Azure).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import config, telemetry
from shared.app import mailbox_shards, manual_runs
from shared.notify import inbox

log = logging.getLogger("emply_sync.queue")
# azure-functions does not annotate Blueprint.__init__ (its decorators are typed).
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name=config.RUN_QUEUE_NAME,
                  connection=config.RUN_QUEUE_CONNECTION)
async def run_requested_sync(msg: func.QueueMessage) -> None:
    telemetry.configure()
    try:
        # A failed run is recorded by the service; raising here (a failure before the
        # run could start, a bug) makes the host deliver the request again.
        await manual_runs.work(msg.get_body(), msg.dequeue_count or 1)
    finally:
        telemetry.flush()


@bp.queue_trigger(arg_name="msg", queue_name=f"{config.RUN_QUEUE_NAME}-poison",
                  connection=config.RUN_QUEUE_CONNECTION)
async def run_request_poisoned(msg: func.QueueMessage) -> None:
    telemetry.configure()
    try:
        await manual_runs.poisoned(msg.get_body(), msg.dequeue_count or 1)
    finally:
        telemetry.flush()


@bp.queue_trigger(arg_name="msg", queue_name=config.NOTIFY_QUEUE_NAME,
                  connection=config.RUN_QUEUE_CONNECTION)
async def run_notified_sync(msg: func.QueueMessage) -> None:
    """Graph change notifications' work: a targeted (delta) run, or a lifecycle action."""
    telemetry.configure()
    try:
        await inbox.work(msg.get_body())
    finally:
        telemetry.flush()


@bp.queue_trigger(arg_name="msg", queue_name=f"{config.NOTIFY_QUEUE_NAME}-poison",
                  connection=config.RUN_QUEUE_CONNECTION)
async def notified_work_poisoned(msg: func.QueueMessage) -> None:
    telemetry.configure()
    try:
        inbox.poisoned(msg.get_body(), msg.dequeue_count or 1)
    finally:
        telemetry.flush()


@bp.queue_trigger(arg_name="msg", queue_name=config.MAILBOX_QUEUE_NAME,
                  connection=config.RUN_QUEUE_CONNECTION)
async def run_mailbox_shard(msg: func.QueueMessage) -> None:
    """One shard of a run's mailbox pass; raising makes the host deliver it again."""
    telemetry.configure()
    try:
        await mailbox_shards.work(msg.get_body(), msg.dequeue_count or 1)
    finally:
        telemetry.flush()


@bp.queue_trigger(arg_name="msg", queue_name=f"{config.MAILBOX_QUEUE_NAME}-poison",
                  connection=config.RUN_QUEUE_CONNECTION)
async def mailbox_shard_poisoned(msg: func.QueueMessage) -> None:
    telemetry.configure()
    try:
        await mailbox_shards.poisoned(msg.get_body(), msg.dequeue_count or 1)
    finally:
        telemetry.flush()
