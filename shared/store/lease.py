"""The one-run-at-a-time lease (R1) and the queued manual run's marker: two entities
of table `synclease`, each replaced only conditionally on its ETag."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.store import codec, errors, wire
from shared.store.protocols import LEASE_TTL_SECONDS
from shared.store.tally import Ensure, Tally

_LEASE_PK, _LEASE_RK = "lease", "sync"
_MARKER_PK, _MARKER_RK = "manualrun", "current"
_LEASE_FIELDS = ("runId", "trigger", "startedAt", "expiresAt", "renewedAt")


class AzureRunLease:
    """`protocols.RunLease` and `protocols.RunMarker` over table `synclease`."""

    def __init__(self, table: TableClient, *, clock: codec.Clock, ensure: Ensure,
                 tally: Tally) -> None:
        self._table = table
        self._clock = clock
        self._ensure = ensure
        self._tally = tally

    async def acquire_lease(self, run_id: str, trigger: str, *,
                            ttl_seconds: int = LEASE_TTL_SECONDS) -> dict[str, Any] | None:
        """Take the one-run-at-a-time lease or raise `RunInProgress`.

        Returns the expired lease of another run that this one took over (`runId`,
        `trigger`, `startedAt`, `expiresAt`, `renewedAt`: when it was last seen alive),
        or None: that run was killed without releasing it."""
        await self._ensure()
        for _attempt in range(10):
            now = self._clock()
            current = await codec.get_row(self._table, _LEASE_PK, _LEASE_RK)
            entity = {"PartitionKey": _LEASE_PK, "RowKey": _LEASE_RK, "runId": run_id,
                      "trigger": trigger, "startedAt": codec.iso(now), "renewedAt": codec.iso(now),
                      "expiresAt": codec.iso(now + dt.timedelta(seconds=ttl_seconds))}
            taken: dict[str, Any] | None = None
            try:
                if current is None:
                    await self._table.create_entity(entity)
                else:
                    expires = codec.parse_time(current.get("expiresAt"))
                    if current.get("runId") != run_id and expires is not None and expires > now:
                        raise errors.RunInProgress(str(current.get("runId")),
                                                   str(current.get("trigger")),
                                                   str(current.get("startedAt")))
                    if current.get("runId") == run_id:
                        entity["startedAt"] = current.get("startedAt", entity["startedAt"])
                    else:
                        taken = {k: current.get(k) for k in _LEASE_FIELDS}
                    await self._table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=current[wire.ETAG],
                        match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError):
                self._tally.count(singles=1)
                continue  # someone else moved first: look again
            except HttpResponseError as exc:
                if exc.status_code not in (409, 412):
                    raise
                self._tally.count(singles=1)
                continue
            self._tally.count(singles=1, written=1)
            return taken
        raise errors.StoreError("could not settle the sync lease after 10 attempts")

    async def renew_lease(self, run_id: str, *, ttl_seconds: int = LEASE_TTL_SECONDS) -> None:
        """Push our lease's expiry out; `LeaseLost` if it is no longer ours."""
        await self._ensure()
        current = await codec.get_row(self._table, _LEASE_PK, _LEASE_RK)
        if current is None or current.get("runId") != run_id:
            raise errors.LeaseLost(run_id)
        entity = {k: v for k, v in current.items() if k != wire.ETAG}
        now = self._clock()
        entity["renewedAt"] = codec.iso(now)
        entity["expiresAt"] = codec.iso(now + dt.timedelta(seconds=ttl_seconds))
        try:
            await self._table.update_entity(entity, mode=UpdateMode.REPLACE,
                                           etag=current[wire.ETAG],
                                           match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise errors.LeaseLost(run_id) from exc
        finally:
            self._tally.count(singles=1, written=1)

    async def release_lease(self, run_id: str) -> None:
        """Give the lease up, only if it is still ours."""
        await self._ensure()
        current = await codec.get_row(self._table, _LEASE_PK, _LEASE_RK)
        if current is None or current.get("runId") != run_id:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            await self._table.delete_entity(_LEASE_PK, _LEASE_RK, etag=current[wire.ETAG],
                                           match_condition=MatchConditions.IfNotModified)
        self._tally.count(singles=1, deleted=1)

    async def current_lease(self) -> dict[str, Any] | None:
        """The lease entity (runId, trigger, startedAt, expiresAt) or None."""
        await self._ensure()
        current = await codec.get_row(self._table, _LEASE_PK, _LEASE_RK)
        if current is None:
            return None
        return {k: current.get(k) for k in _LEASE_FIELDS}

    async def create_marker(self, run_id: str, queued_at: str) -> bool:
        await self._ensure()
        try:
            await self._table.create_entity({"PartitionKey": _MARKER_PK, "RowKey": _MARKER_RK,
                                             "runId": run_id, "queuedAt": queued_at})
        except ResourceExistsError:
            return False
        return True

    async def read_marker(self) -> dict[str, Any] | None:
        await self._ensure()
        row = await codec.get_row(self._table, _MARKER_PK, _MARKER_RK)
        if row is None:
            return None
        return {"runId": row.get("runId"), "queuedAt": row.get("queuedAt"),
                "etag": row[wire.ETAG]}

    async def delete_marker(self, etag: str) -> None:
        await self._ensure()
        # Someone else may have moved it first: then it is not ours to delete.
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            await self._table.delete_entity(_MARKER_PK, _MARKER_RK, etag=etag,
                                            match_condition=MatchConditions.IfNotModified)
