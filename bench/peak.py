"""Where a process's memory peaks: ``BENCH_PEAK=FILE`` on a bench child.

A thread reads the process's resident size every few milliseconds; each time it is
higher than any seen before, the main thread's stack (the project's frames) is kept.
At the end FILE gets the peak and the stack it was reached in, and the largest rises
with theirs: the place to look before changing anything for memory (issue 25, item 6).
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")
_OURS = ("shared", "bench", "graph_simulator")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE / 2**20


def _our_stack(main: int) -> list[str]:
    frame = sys._current_frames().get(main)
    if frame is None:
        return []
    out = []
    for summary in traceback.extract_stack(frame):
        path = summary.filename.replace(os.sep, "/")
        if any(f"/{part}/" in path for part in _OURS) and "/site-packages/" not in path:
            out.append(f"{path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]}:"
                       f"{summary.lineno} {summary.name}")
    return out


class PeakSampler:
    """Samples the resident size; `stop` writes the peak and its stacks to `path`."""

    def __init__(self, path: str, every_s: float = 0.003) -> None:
        self.path, self.every_s = path, every_s
        self.main = threading.main_thread().ident or 0
        self.peak = 0.0
        self.rises: list[tuple[float, float, list[str]]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _sample(self) -> None:
        last = _rss_mb()
        while not self._done.wait(self.every_s):
            rss = _rss_mb()
            if rss > self.peak:
                if rss - last > 2:  # a rise worth naming: where it happened
                    self.rises.append((rss - last, rss, _our_stack(self.main)))
                self.peak = rss
            last = rss

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        rises = sorted(self.rises, key=lambda r: -r[0])[:12]
        lines: list[Any] = [f"peak {self.peak:.1f} MB (sampled)"]
        for rise, at, stack in rises:
            lines.append(f"\n+{rise:.1f} MB to {at:.1f} MB in:")
            lines.extend(f"    {frame}" for frame in stack[-12:])
        with open(self.path, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n\n")
