"""The run lease (R1: one run at a time), kept alive while a run works, and the records
of runs that stopped without finishing.

A real run takes the lease (`hold`), which a heartbeat renews every third of its time
to live; a run that loses it (another run took the expired lease) learns it at its next
check (`Held.check`) and stops before applying. A dry run takes no lease but is refused
while a run holds one (`refuse_if_running`), as any request during a run is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared import telemetry
from shared.store import errors as store_errors
from shared.store import protocols

LEASE_TTL_SECONDS = protocols.LEASE_TTL_SECONDS
"""A crashed run's lease expires after this; a live run renews it every third of it."""

DRY_RUN_GIVEN_UP_AFTER = dt.timedelta(hours=1)
"""A dry run takes no lease, so nothing shows it was killed but its age: one still
`running` after this (twice host.json's functionTimeout) is dead."""


class Held:
    """A lease this run holds, with the heartbeat that keeps it."""

    def __init__(self, store: protocols.RunLease, run_id: str) -> None:
        self.run_id = run_id
        self._store = store
        self._beat = asyncio.create_task(_keep(store, run_id))

    def check(self) -> None:
        """Raise `LeaseLost` when another run took the lease: it may be applying."""
        if self._beat.done():
            self._beat.result()

    async def release(self) -> None:
        self._beat.cancel()
        with contextlib.suppress(BaseException):
            await self._beat
        try:
            await self._store.release_lease(self.run_id)
        except Exception:  # it expires by itself after LEASE_TTL_SECONDS
            telemetry.log.exception("emply_sync.lease_not_released",
                                    extra={"runId": self.run_id})


async def take(store: protocols.SyncStore, run_id: str, trigger: str) -> Held:
    """Take the lease (raises `RunInProgress`), and mark the runs it finds dead."""
    taken = await store.acquire_lease(run_id, trigger, ttl_seconds=LEASE_TTL_SECONDS)
    held = Held(store, run_id)
    try:
        if taken is not None:
            await _mark_abandoned(store, taken, run_id)
    except Exception:  # other runs' records: this run goes on without them
        telemetry.log.warning("emply_sync.run_abandoned_not_marked",
                              extra={"runId": run_id}, exc_info=True)
    return held


async def refuse_if_running(store: protocols.RunLease, now: dt.datetime) -> None:
    """R1: a request during a run gets 409 (`RunInProgress`), dry or not."""
    lease = await store.current_lease()
    if lease is None:
        return
    expires = lease.get("expiresAt")
    if isinstance(expires, str) and dt.datetime.fromisoformat(
        expires.replace("Z", "+00:00")
    ) > now:
        raise store_errors.RunInProgress(
            str(lease.get("runId")), str(lease.get("trigger")), str(lease.get("startedAt")))


async def _keep(store: protocols.RunLease, run_id: str) -> None:
    """Renew the lease while the run works. A failed renewal is retried at the next beat
    (the lease outlives two missed beats); only `LeaseLost` (another run took it) ends it."""
    while True:
        await asyncio.sleep(LEASE_TTL_SECONDS / 3)
        try:
            await store.renew_lease(run_id, ttl_seconds=LEASE_TTL_SECONDS)
        except store_errors.LeaseLost:
            raise
        except Exception:
            telemetry.log.warning("emply_sync.lease_renewal_failed", extra={"runId": run_id})


async def _waiting_for_shards(store: protocols.RunLog, run_id: str) -> bool:
    """A real run that released the lease with mailbox shards still to work (issue 26):
    its last shard finishes it (`shared.run.mailboxes.shard_runs`)."""
    report = await store.get_run(run_id)
    return bool(report and report.get("mailboxShards"))


async def mark_dead_runs(store: protocols.RunLog, run_id: str, now: dt.datetime) -> None:
    """Mark `abandoned` the recent runs still `running` that cannot be: every real run
    but this one (this run holds the lease, and a real run records `running` only once it
    holds it — a run killed between taking an expired lease and marking its holder leaves
    that holder `running`, with nobody else to mark it), and the dry runs long after any
    run could last. History and health then never show a dead run running."""
    try:
        for summary in await store.list_runs(50):
            started = summary.get("startedAt")
            if summary.get("status") != "running" or summary.get("runId") == run_id:
                continue
            if not summary.get("dryRun") and await _waiting_for_shards(
                    store, str(summary.get("runId"))):
                continue  # its mailbox shards are still on the queue: it is alive
            if not summary.get("dryRun") or (
                    isinstance(started, str)
                    and dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
                    < now - DRY_RUN_GIVEN_UP_AFTER):
                await _abandon(store, str(summary.get("runId")),
                               summary.get("lastSeenAt") or started, run_id)
    except Exception:  # other runs' records: this run goes on without them
        telemetry.log.warning("emply_sync.run_abandoned_not_marked",
                              extra={"runId": run_id}, exc_info=True)


async def _mark_abandoned(store: protocols.RunLog, taken: Mapping[str, Any],
                          run_id: str) -> None:
    """The run whose expired lease this run took was killed (a host restart, a timeout)
    and left its record `running`: mark it `abandoned` with the time it was last seen."""
    old_id = taken.get("runId")
    if not isinstance(old_id, str) or not old_id:
        return
    await _abandon(store, old_id, taken.get("renewedAt") or taken.get("startedAt"), run_id)


async def _abandon(store: protocols.RunLog, old_id: str, last_seen: Any,
                   run_id: str) -> None:
    old = await store.get_run(old_id)
    if old is None or old.get("status") != "running":
        return  # it finished and only its lease release was lost
    old.update({
        "status": "abandoned",
        "lastSeenAt": last_seen,
        "finishedAt": None,
        "abandonedBy": run_id,
    })
    old["errors"] = [*(old.get("errors") or ()), {
        "reason": "run_abandoned", "temporary": True,
        "message": f"the run stopped without finishing (last seen {last_seen}); run "
        f"{run_id} took its expired lease. Nothing it planned after that is known to "
        "be applied; the next run plans again from the current state",
    }]
    await store.save_run(old)
    telemetry.log.warning("emply_sync.run_abandoned",
                          extra={"runId": old_id, "lastSeenAt": last_seen,
                                 "abandonedBy": run_id})
