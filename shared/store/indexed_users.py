"""The users' uniqueness index kept true by every write of users (`shared.store.unique_index`
says how): what a write claims, what it frees once written, what a write left undone
gives back. `AzureEmplyTables` calls these around its transactions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.store import codec, unique_index
from shared.store.codec import CODECS
from shared.store.ledger import AzureLedger

if TYPE_CHECKING:
    from shared.store.emply_tables import AzureEmplyTables

_log = logging.getLogger("emply_sync.store")


class IndexedUsers:
    """The index side of `AzureEmplyTables`' user writes."""

    def __init__(self, tables: AzureEmplyTables) -> None:
        self._t = tables

    async def claim(self, kind: str, items: Sequence[Mapping[str, Any]],
                    ledger: AzureLedger) -> unique_index.Claimed:
        """The unique values users gain, claimed (nothing for other kinds)."""
        if kind != "users":
            return unique_index.Claimed([], [], {})
        return await unique_index.claim_for(self._t.index, lambda: self._t.emply, items,
                                            await self.previous(items, ledger))

    async def previous(self, items: Sequence[Mapping[str, Any]], ledger: AzureLedger, *,
                       fields: Sequence[str] | None = None
                       ) -> dict[str, dict[str, Any] | None]:
        """id -> each user as stored before this write (with `fields`: those fields and
        its id only): from the load's compact copy (complete for what it loaded), else
        read."""
        kc = CODECS["users"]
        wanted = ("id", *fields) if fields else kc.cache_fields
        where = [kc.cache_fields.index(name) for name in wanted]
        found: dict[str, dict[str, Any] | None] = {}
        for item in items:
            rk = kc.row_key(item)
            if ledger.known is not None:
                entry = ledger.known["users"].get(rk)
                values = None if entry is None else codec.cache_values(entry, kc.cache_fields)
                found[str(item["id"])] = None if values is None else {
                    name: values[i] for name, i in zip(wanted, where, strict=True)}
            else:
                row = await codec.get_row(self._t.emply, kc.pk(rk), rk)
                found[str(item["id"])] = None if row is None else kc.from_row(row)
        return found

    async def claim_built(self, kind: str, by_partition: Mapping[str, list[str]],
                          build: Callable[[str], Mapping[str, Any]],
                          ledger: AzureLedger) -> dict[str, str]:
        """For users: claim what each gains (built one at a time, then dropped); the
        users refused (id -> field)."""
        if kind != "users":
            return {}
        await self._t.index.ensure()
        stream = unique_index.ClaimStream(self._t.index,
                                          unique_index.holder_check(lambda: self._t.emply))
        for entity_ids in by_partition.values():
            built = [build(i) for i in entity_ids]
            previous = await self.previous(built, ledger, fields=unique_index.FIELDS)
            for item in built:
                stream.add(unique_index.changed(item, previous.get(str(item["id"])))[0])
            del built, previous
        return await stream.close()

    async def release_built(self, by_partition: Mapping[str, list[str]],
                            build: Callable[[str], Mapping[str, Any]],
                            ledger: AzureLedger) -> None:
        """Nothing of a refused `write_built` is written: release what it claimed."""
        for entity_ids in by_partition.values():
            built = [build(i) for i in entity_ids]
            await self.settle("users", built, await self.previous(built, ledger),
                              {str(item["id"]) for item in built})

    async def settle(self, kind: str, built: Sequence[Mapping[str, Any]],
                     previous: Mapping[str, Mapping[str, Any] | None],
                     left_out: set[str] | None) -> None:
        """After a partition's users were written (all but `left_out`): release what the
        left-out ones claimed and what the written ones no longer hold (`left_out` None:
        not known which were written, so both, each checked by `release`)."""
        if kind != "users":
            return
        release: list[unique_index.Claim] = []
        for item in built:
            gained, freed = unique_index.changed(item, previous.get(str(item["id"])))
            if left_out is None:
                release += gained + freed
            else:
                release += gained if str(item["id"]) in left_out else freed
        await self.release(release)

    async def release(self, claims: Sequence[unique_index.Claim]) -> None:
        """Release claims; best effort, never failing a write that was made (what is left
        goes stale and is taken over later)."""
        if not claims:
            return
        try:
            await self._t.index.release(claims,
                                        unique_index.holder_check(lambda: self._t.emply))
        except Exception as exc:
            _log.warning("emply_sync.unique_claims_not_released",
                         extra={"claims": len(claims), "error": type(exc).__name__})
