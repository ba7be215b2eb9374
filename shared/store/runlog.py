"""Run history: table `runs` (the index, newest first) and container `runreports`
(`<runId>.json`, the whole report)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient
from azure.storage.blob.aio import ContainerClient

from shared.store import blobs, chunked_json, codec, keys
from shared.store.tally import Ensure, Tally


class AzureRunLog:
    """`protocols.RunLog`: PartitionKey "run", RowKey = inverted start time + run id, so a
    plain query lists newest first."""

    def __init__(self, table: TableClient, container: ContainerClient, *, clock: codec.Clock,
                 ensure: Ensure, tally: Tally) -> None:
        self._table = table
        self._container = container
        self._clock = clock
        self._ensure = ensure
        self._tally = tally

    async def save_run(self, report: Mapping[str, Any]) -> None:
        """Store a run report (blob) and its summary (index row); upsert."""
        await self._ensure()
        run_id = report.get("runId")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError("run report needs a runId")
        # A queued run keeps the row of its request (queuedAt), so it is listed once.
        started = (codec.parse_time(report.get("queuedAt"))
                   or codec.parse_time(report.get("startedAt")) or self._clock())
        millis = int(started.timestamp() * 1000)
        fields = summary(report)
        row = {"PartitionKey": "run", "RowKey": f"{9_999_999_999_999 - millis:013d}_"
                                                f"{keys.encode_key(run_id)}"}
        row.update({k: (json.dumps(v) if k == "counts" else v)
                    for k, v in fields.items() if v is not None})
        # Plain JSON, encoded and uploaded a block at a time: a 100,000-user initial
        # sync's report is about 70 MB of text, never held whole.
        blocks = chunked_json.text_blocks(chunked_json.plain_pieces(report),
                                          block_size=blobs.BLOCK_BYTES)
        await blobs.upload_blocks(self._container.get_blob_client(self._run_blob(run_id)), blocks)
        await self._table.upsert_entity(row, mode=UpdateMode.REPLACE)
        self._tally.count(singles=1, written=1)

    @staticmethod
    def _run_blob(run_id: str) -> str:
        return keys.encode_key(run_id) + ".json"

    async def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Run summaries, newest first."""
        await self._ensure()
        out: list[dict[str, Any]] = []
        if limit <= 0:
            return out
        pager = self._table.query_entities("PartitionKey eq 'run'",
                                         results_per_page=min(limit, 1000))
        async for row in pager:
            summary = {k: row.get(k) for k in SUMMARY_FIELDS
                       if k in row or k not in OPTIONAL_SUMMARY_FIELDS}
            summary["counts"] = json.loads(row["counts"]) if row.get("counts") else {}
            out.append(summary)
            if len(out) >= limit:
                break
        return out

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The full report of a run, or None."""
        await self._ensure()
        try:
            downloader = await self._container.download_blob(self._run_blob(run_id))
        except ResourceNotFoundError:
            return None
        data: dict[str, Any] = json.loads(await downloader.readall())
        return data

    async def last_run(self) -> dict[str, Any] | None:
        """The newest run's summary (as in `list_runs`), or None."""
        runs = await self.list_runs(1)
        return runs[0] if runs else None

SUMMARY_FIELDS = ("runId", "trigger", "status", "dryRun", "startedAt", "finishedAt",
                   "counts", "heldCount", "errorCount", "lastSeenAt")
OPTIONAL_SUMMARY_FIELDS = frozenset({"lastSeenAt"})  # an abandoned run's only


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    held = report.get("held")
    errs = report.get("errors")
    return {
        "runId": report.get("runId"), "trigger": report.get("trigger"),
        "status": report.get("status"), "dryRun": bool(report.get("dryRun", False)),
        "startedAt": report.get("startedAt"), "finishedAt": report.get("finishedAt"),
        "counts": report.get("counts") or {},
        "heldCount": len(held) if isinstance(held, list) else 0,
        "errorCount": len(errs) if isinstance(errs, list) else 0,
        "lastSeenAt": report.get("lastSeenAt"),
    }

