"""Import timings: ``python -m bench.imports [--users N] [--groups G]``.

Imports the bench's Emply state (`bench.generate.emply`) into a fresh Azurite, in one
process, through `EmplyStore.import_document`, four times in this order: into the
empty store, `--replace` with the same document, a plain import of the same
document, and a plain import of 10 new users. Prints one JSON line per step (wall
seconds, entities written, the process's peak RSS so far). docs/import.md has the
figures and what they mean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import generate  # noqa: E402
from shared import store as store_mod  # noqa: E402
from tests.support.azurite import start_azurite  # noqa: E402


def peak_rss_mb() -> int:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) // 1024
    return 0


async def step(storage: str, name: str, doc: dict[str, Any], *, replace: bool) -> None:
    async with store_mod.open_store(connection_string=storage) as store:
        started = time.perf_counter()
        counts = await store.import_document(doc, replace=replace)
        seconds = time.perf_counter() - started
    print(json.dumps({"step": name, "seconds": round(seconds, 2),
                      "entities": sum(counts.values()), "peakRssMb": peak_rss_mb()}),
          flush=True)


async def measure(storage: str, users: int, groups: int) -> None:
    doc = generate.emply(users, groups)
    few = {"users": [{"id": f"extra-{i}", "username": f"extra{i}@{generate.DOMAIN}"}
                     for i in range(10)]}
    await step(storage, "import into an empty store", doc, replace=False)
    await step(storage, "import --replace over the same state", doc, replace=True)
    await step(storage, "plain import of the same document over it", doc, replace=False)
    await step(storage, "plain import of 10 new users", few, replace=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=20)
    args = parser.parse_args(argv)
    with start_azurite(timeout=60) as azurite:
        asyncio.run(measure(azurite.connection_string, args.users, args.groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
