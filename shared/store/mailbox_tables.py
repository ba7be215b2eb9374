"""The Emply side's calendars and events, a range of users at a time (`MailboxSide`).

The mailbox pass (`shared.run.mailboxes`) reads and writes R13's calendars and R14's
events here, never through the run's whole load (`AzureEmplyTables.load_emply` leaves
them out: 400,000 events at 10,000 users). Calendars and events are bucketed by their
user (`codec.MAILBOX_KINDS`), so the calendars of the users in buckets `first..last`
are one range query, and the events of one calendar one partition with a RowKey range.

These writes do not move the Emply version marker: no copy the run keeps holds these
kinds, so nothing cached goes stale by them (the marker would otherwise make every run
after an event change read 100,000 users again). They go to the generation the marker
names; an import that switches generations meanwhile makes them land in the table it
drops, which the pass notices (`generation`) and reads again in full. Calendar updates
are conditional on the ETag read (a user's own enable/disable, `PUT
/api/users/{id}/calendars/{cid}`, is never overwritten): the calendars of a user whose
write found another ETag are left out and named.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from azure.core.exceptions import HttpResponseError

from shared.store import codec, wire
from shared.store.codec import CODECS, Operation
from shared.store.emply_tables import AzureEmplyTables
from shared.store.tally import Tally

Etag = str | None


class AzureMailboxSide:
    """`protocols.MailboxSide` in the Emply generation tables."""

    def __init__(self, tables: AzureEmplyTables, tally: Tally) -> None:
        self._tables = tables
        self._tally = tally
        self._limit = asyncio.Semaphore(codec.CONCURRENCY)

    async def generation(self) -> str:
        await self._tables.ensure()
        await self._tables.read_marker()  # read again: an import may have switched it
        return self._tables.generation or ""

    async def read_calendars(self, first: str, last: str) -> list[tuple[dict[str, Any], str]]:
        return [(CODECS["calendars"].from_row(row), str(row[wire.ETAG]))
                for row in await self._rows(codec.range_filter("calendars", first, last))]

    async def read_events(self, first: str, last: str) -> list[dict[str, Any]]:
        kc = CODECS["events"]
        return [kc.from_row(row)
                for row in await self._rows(codec.range_filter("events", first, last))]

    async def read_calendar_events(self, user_id: str, calendar_id: str
                                   ) -> list[dict[str, Any]]:
        kc = CODECS["events"]
        return [kc.from_row(row) for row in await self._rows(
            codec.calendar_events_filter(user_id, calendar_id))]

    async def _rows(self, query_filter: str) -> list[dict[str, Any]]:
        await self._tables.resolve()
        rows: list[dict[str, Any]] = []
        async with self._limit:
            async for page in wire.query(self._tables.emply, query_filter):
                rows.extend(page)
        return rows

    async def write_calendars(self, items: Sequence[tuple[Mapping[str, Any], Etag]]
                              ) -> set[str]:
        """Write calendars, each conditional on its ETag when it has one (else created or
        replaced); returns the users whose calendars were left out for another ETag."""
        kc = CODECS["calendars"]
        ops: list[Operation] = []
        for item, etag in items:
            row = kc.to_row(item)
            ops.append(("upsert", row, {}) if etag is None else ("update", row, {"etag": etag}))
        return await self._submit(ops, conditional=True)

    async def write_events(self, items: Iterable[Mapping[str, Any]]) -> None:
        kc = CODECS["events"]
        await self._submit([("upsert", kc.to_row(item), {}) for item in items])

    async def delete(self, kind: str, keys: Iterable[Mapping[str, Any]]) -> None:
        """Delete calendars or events, each given by its key fields (missing ones are
        fine)."""
        kc = CODECS[kind]
        ops: list[Operation] = []
        for item in keys:
            rk = kc.row_key(item)
            ops.append(("delete", {"PartitionKey": kc.pk(rk), "RowKey": rk}, {}))
        await self._submit(ops)

    async def _submit(self, ops: list[Operation], *, conditional: bool = False) -> set[str]:
        if not ops:
            return set()
        await self._tables.resolve()
        by_partition: dict[str, list[Operation]] = {}
        for op in ops:
            by_partition.setdefault(op[1]["PartitionKey"], []).append(op)
        chunks = [c for part in by_partition.values() for c in codec.chunks(part)]
        left_out = await asyncio.gather(*(self._send(c, conditional) for c in chunks))
        return set().union(*left_out)

    async def _send(self, chunk: list[Operation], conditional: bool) -> set[str]:
        """One transaction; a conditional one that finds another ETag is sent again
        without the users whose calendars it was about (named in the result)."""
        left_out: set[str] = set()
        async with self._limit:
            while chunk:
                try:
                    await wire.submit(self._tables.emply, chunk)
                except HttpResponseError as exc:
                    if chunk[0][0] == "delete" and exc.status_code == 404:
                        await self._delete_one_by_one(chunk)
                        return left_out
                    if not (conditional and exc.status_code in (404, 409, 412)):
                        raise
                    stale = await self._stale_users(chunk)
                    if not stale:
                        raise
                    left_out |= stale
                    chunk = [op for op in chunk if str(op[1].get("userId")) not in stale]
                    continue
                self._tally.count(batches=1, written=0 if chunk[0][0] == "delete"
                                  else len(chunk),
                                  deleted=len(chunk) if chunk[0][0] == "delete" else 0)
                break
        return left_out

    async def _stale_users(self, chunk: list[Operation]) -> set[str]:
        stale: set[str] = set()
        for verb, row, options in chunk:
            if verb != "update":
                continue
            current = await wire.get(self._tables.emply, row["PartitionKey"], row["RowKey"])
            if current is None or current[wire.ETAG] != options["etag"]:
                stale.add(str(row.get("userId")))
        return stale

    async def _delete_one_by_one(self, chunk: list[Operation]) -> None:
        """A batch of deletes where one entity was gone already: each on its own."""
        for _verb, row, _options in chunk:
            try:
                await wire.submit(self._tables.emply, [("delete", row, {})])
            except HttpResponseError as exc:
                if exc.status_code != 404:
                    raise
            self._tally.count(singles=1, deleted=1)
