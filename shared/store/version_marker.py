"""The Emply version marker (entity `meta`/`version` of table `emply`): a new random
value before and after every Emply write, so a copy of the Emply side tagged with the
value it was read under is current exactly while the marker keeps that value; it also
names the current generation (`table`), which only an import's switch changes.

Contention never fails a write. A bump replaces the marker conditionally on its ETag,
so an import's switch is never overwritten; when that condition fails, someone else
moved the marker after this writer read it, which is all a bump must achieve (every
copy tagged earlier is stale): the bump is done, once the generation is checked to be
the one the writer loaded (else `EmplyReplaced`: the write went to a replaced side).
A bump after a write that storage cannot take is logged
(`emply_sync.version_marker_not_moved`), not raised: the write itself was made, and
an answer saying otherwise would not be the truth.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from shared.store import codec, errors, wire
from shared.store.codec import META_PK, VERSION_RK
from shared.store.ledger import AzureLedger

if TYPE_CHECKING:
    from shared.store.emply_tables import AzureEmplyTables

_log = logging.getLogger("emply_sync.store")
AFTER_WRITE_ATTEMPTS = 3
_MOVED = (ResourceExistsError, ResourceModifiedError)


class VersionMarker:
    """Bumps of the marker in `tables.meta` (see the module docstring)."""

    def __init__(self, tables: AzureEmplyTables) -> None:
        self._t = tables

    def entity(self, value: str) -> dict[str, Any]:
        entity = {"PartitionKey": META_PK, "RowKey": VERSION_RK, "value": value}
        if self._t.generation is not None:
            entity["table"] = self._t.generation
        return entity

    async def bump(self, ledger: AzureLedger, *, after_write: bool = False) -> None:
        """Give the marker a new value. Raises `EmplyReplaced` when an import switched
        the generation since `ledger`'s load; with `after_write`, a storage failure is
        logged instead of raised (see the module docstring)."""
        if not after_write:
            await self._bump(ledger)
            return
        for attempt in range(AFTER_WRITE_ATTEMPTS):
            try:
                await self._bump(ledger)
                return
            except errors.EmplyReplaced:
                raise
            except (AzureError, errors.StoreError) as exc:
                if attempt + 1 == AFTER_WRITE_ATTEMPTS:
                    ledger.marker_ours = False
                    _log.warning("emply_sync.version_marker_not_moved",
                                 extra={"error": type(exc).__name__})
                    return
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _bump(self, ledger: AzureLedger) -> None:
        value = uuid.uuid4().hex
        if ledger.marker is not None and ledger.marker_ours:
            try:
                result = await self._t.meta.update_entity(
                    self.entity(value), mode=UpdateMode.REPLACE, etag=ledger.marker[1],
                    match_condition=MatchConditions.IfNotModified)
                self._moved(ledger, value, result)
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                pass
        ledger.marker_ours = False
        await self._bump_other(value, ledger)

    async def _bump_other(self, value: str, ledger: AzureLedger) -> None:
        """The marker moved by someone else: read it (which generation is current), then
        replace it conditionally; moved again meanwhile is as good (module docstring)."""
        for _attempt in range(3):
            marker = await self._current(ledger)
            try:
                if marker is None:
                    result = await self._t.meta.create_entity(self.entity(value))
                else:
                    result = await self._t.meta.update_entity(
                        self.entity(value), mode=UpdateMode.REPLACE, etag=marker[wire.ETAG],
                        match_condition=MatchConditions.IfNotModified)
            except _MOVED:
                await self._current(ledger)  # the generation must still be ours
                ledger.marker = None
                return
            except ResourceNotFoundError:
                continue  # removed meanwhile (never in practice): create it again
            self._moved(ledger, value, result)
            return
        raise errors.StoreError("the Emply version marker kept disappearing")

    async def _current(self, ledger: AzureLedger) -> Mapping[str, Any] | None:
        marker = await codec.get_row(self._t.meta, META_PK, VERSION_RK)
        generation = marker.get("table") if marker else None
        if ledger.pinned and generation != ledger.generation:
            raise errors.EmplyReplaced(
                "the Emply side was replaced by an import since it was loaded; load it again")
        self._t.follow(marker)
        ledger.generation, ledger.pinned = self._t.generation, True
        return marker

    def _moved(self, ledger: AzureLedger, value: str, result: Mapping[str, Any]) -> None:
        self._t.tally.count(singles=1)  # a transaction, counted apart from the entities
        self._t.tally.stats["marker_writes"] += 1
        ledger.marker = (value, str(result["etag"]))
