"""One sync in a fresh process (clean peak RSS): ``python -m bench.child STORAGE GRAPH_URL``
(``... GRAPH_URL KEY [dry]``: one user now, `shared.run.on_demand`, for KEY).

Prints one JSON line: wall and CPU seconds of `run_sync`, the process's peak
RSS, the store's write counters and the report's summary. With BENCH_PROFILE=DIR
each run also leaves a cProfile file in DIR (its times then include the profiler's).
The profile's clock is the process's CPU time, not the wall: a run waiting on Graph
would otherwise show its waits (epoll) as its heaviest function. With BENCH_PEAK=FILE
each run adds to FILE where its memory rose most (`bench.peak`).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import resource
import sys
import time
from typing import Any

from shared.app import boundary
from shared.run import on_demand, pipeline


async def _run(storage: str, graph_url: str, key: str | None = None,
               dry_run: bool = False) -> dict[str, Any]:
    async with boundary.open_deps(storage=storage, graph_url=graph_url, environ={}) as deps:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        if key is None:
            report = await pipeline.run_sync(deps, trigger="bench")
        else:
            report = await on_demand.sync_user(deps, key, dry_run=dry_run)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stats = dict(deps.store.stats)
        by_partition = {pk: {"batches": b, "entities": n}
                        for pk, (b, n) in deps.store.batches_by_partition.items()}
    return {
        "wallSeconds": round(wall, 3),
        "cpuSeconds": round(cpu, 3),
        "store": stats,
        "batchesByPartition": by_partition,
        "status": report["status"],
        "counts": report["counts"],
        "skips": report.get("skips", {}),
        "errors": len(report.get("errors", [])),
        "errorSample": report.get("errors", [])[:3],
        "held": len(report.get("held", [])),
        "entraRead": report.get("entraRead"),
        "durationMs": report.get("durationMs"),
        **({"outcome": report["user"]["outcome"]} if "user" in report else {}),
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries it over
    from the parent through fork and exec, so a child of a 300 MB bench process never
    reported less than 300 MB. VmHWM belongs to the process's own address space."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    # Not Linux: ru_maxrss (KiB on Linux, bytes on macOS), possibly the parent's.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    storage, graph_url = sys.argv[1], sys.argv[2]
    key = sys.argv[3] if len(sys.argv) > 3 else None
    run = _run(storage, graph_url, key, dry_run=sys.argv[4:5] == ["dry"])
    sampler = None
    if os.environ.get("BENCH_PEAK"):
        from bench.peak import PeakSampler
        sampler = PeakSampler(os.environ["BENCH_PEAK"])
        sampler.start()
    profile_dir = os.environ.get("BENCH_PROFILE")
    if profile_dir:  # where a run's CPU goes: one cProfile file per child, by start time
        profiler = cProfile.Profile(time.process_time)
        result = profiler.runcall(asyncio.run, run)
        os.makedirs(profile_dir, exist_ok=True)
        profiler.dump_stats(os.path.join(profile_dir, f"run-{time.time():.0f}.prof"))
    else:
        result = asyncio.run(run)
    if sampler is not None:
        sampler.stop()
    result["peakRssMb"] = peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
