"""Work done once per test run, however pytest-xdist spreads the tests that need it.

A module fixture runs once per worker process; when its tests land on two workers, an
expensive one (checkov) runs twice. `once_per_run` makes the text once: the first worker
to ask makes it under a file lock in the folder all workers of this run share, the others
read it. Without xdist (`worker_id` "master") it just makes it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable

import pytest


def once_per_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str, name: str,
                 make: Callable[[], str]) -> str:
    if worker_id == "master":
        return make()
    shared = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
    done = shared / f"{name}.out"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if done.exists():
            return done.read_text()
        text = make()
        done.write_text(text)
        return text
