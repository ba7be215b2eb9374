"""The change feed's cost: ``python -m bench.change_feed [--changes N]``.

Records N changes shaped like an initial sync's (`create_user` with the new user's
fields; 133,000 is a 100,000-user initial run's count) as one run's feed in Azurite
(`shared.run.steps.change_feed.record_run` over `TableChunks`), then reads the whole feed back a
page of 1,000 at a time, as Emply would. Prints the time of each, the entities written,
their compressed size and how much the process's peak RSS grew while recording (what
the feed adds on top of the report's changes, which the run holds anyway).
Writes ``bench/out/change_feed.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import resource
import time
from pathlib import Path
from typing import Any

from bench.run import OUT, machine
from shared.app import changes as change_feed_api
from shared.run.steps import change_feed
from shared.store import open_store
from tests.support.azurite import start_azurite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.change_feed", description=__doc__)
    parser.add_argument("--changes", type=int, default=133_000)
    parser.add_argument("--out", default=str(OUT / "change_feed.json"))
    return parser.parse_args(argv)


def changes(n: int) -> list[dict[str, Any]]:
    return [{"kind": "create_user", "userId": None, "entraId": f"{i:08d}-0000-4000-8000-"
             f"{i:012d}", "reason": "new_in_entra", "rule": "R2", "before": {},
             "after": {"username": f"user{i}@bench.example", "email": f"user{i}@bench.example",
                       "displayName": f"Bench User {i}", "roles": ["employee"],
                       "source": "entra", "tenantId": "bench-tenant"},
             "message": "in a synced group with no Emply user: created"} for i in range(n)]


async def measure(connection_string: str, n: int) -> dict[str, Any]:
    feed = changes(n)
    now = dt.datetime.now(dt.UTC)
    async with open_store(connection_string=connection_string, prefix="bench") as store:
        chunks = store.feed_chunks()
        await chunks.delete_before("9")  # a feed of this run only
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        written = await change_feed.record_run(chunks, "20261202T040000Z-bench000", feed, now)
        record_s = time.perf_counter() - started
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        stored = 0
        async for chunk in chunks.from_key(""):
            stored += len(chunk.payload)
        started = time.perf_counter()
        read, cursor = 0, None
        while True:
            items, cursor = await change_feed_api.page(chunks, cursor, 1000, now)
            if not items:
                break
            read += len(items)
        read_s = time.perf_counter() - started
    return {"changes": n, "entities": written, "compressedBytes": stored,
            "recordSeconds": round(record_s, 2), "recordPeakRssGrowthMiB": round(grew / 1024, 1),
            "readSeconds": round(read_s, 2), "readChanges": read}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with start_azurite() as azurite:
        result = asyncio.run(measure(azurite.connection_string, args.changes))
    result["machine"] = machine()
    for key, value in result.items():
        if key != "machine":
            print(f"{key:>24}: {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
