"""End-to-end fixtures: real Azurite, the real Graph simulator over HTTP, real CLI/triggers.

One Azurite per test process (tests/conftest.py); every test starts from empty storage
(tables, containers and queues are dropped) and its own simulator. The app finds both through the
same settings it reads in Azure: EMPLY_SYNC_STORAGE and EMPLY_SYNC_GRAPH_URL.

`mailbox_mode` (parametrize it indirectly) runs a test's syncs with the mailbox pass in
the run (`inline`, the default) or its shards on the queue (`queue`): `World.sync` then
works the queued shards as the host's queue trigger would (the real function, one
message at a time) and returns the run's report once they are done. `notified` turns
Graph change notifications on (a local server hands the simulator's notifications to
the real function): `World.sync()` is then the run a notification makes (it reads only
the mailboxes Graph said changed, new ones, and those whose Emply side changed), and
`World.sync(sweep=True)` a scheduled run whose sweep reads every mailbox.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared import cli, config
from tests.support import run_queue as rq
from tests.support.azurite import AzuriteProcess
from tests.support.notify_server import notify_server
from tests.support.simulator import RunningSimulator, running_simulator


def wipe(connection_string: str) -> None:
    tables = TableServiceClient.from_connection_string(connection_string)
    for table in list(tables.list_tables()):
        tables.delete_table(table.name)
    blobs = BlobServiceClient.from_connection_string(connection_string)
    for container in list(blobs.list_containers()):
        blobs.delete_container(container.name)
    queues = QueueServiceClient.from_connection_string(connection_string)
    for queue in list(queues.list_queues()):
        queues.delete_queue(queue.name)


@dataclasses.dataclass
class World:
    azurite: AzuriteProcess
    sim: RunningSimulator
    tmp: Path
    mode: str = "inline"

    def cli(self, *args: str) -> tuple[int, str, str]:
        """`emply-sync ARGS` in-process; on a worker thread, so async tests may call it too."""
        out, err = io.StringIO(), io.StringIO()

        def call() -> int:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return cli.main(list(args))

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            code = pool.submit(call).result()
        return code, out.getvalue(), err.getvalue()

    def ok(self, *args: str) -> str:
        code, out, err = self.cli(*args)
        assert code == 0, f"emply-sync {' '.join(args)} exited {code}: {err}{out}"
        return out

    def import_state(self, doc: dict[str, Any], *extra: str) -> None:
        path = self.tmp / "emply.json"
        path.write_text(json.dumps(doc))
        self.ok("emply", "import", str(path), *extra)

    def export(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ok("emply", "export"))
        return result

    def sync(self, *extra: str, sweep: bool = False) -> dict[str, Any]:
        if self.mode == "notified" and not extra:
            return self.notified_run(sweep=sweep)
        code, out, err = self.cli("sync", "--json", *extra)
        report: dict[str, Any] = json.loads(out)
        assert code == (1 if report["status"] == "failed" else 0), err
        if report["status"] == "running" and report.get("mailboxShards"):
            assert self.mode == "queue", report
            self.work_shards()
            report = json.loads(self.ok("runs", report["runId"], "--json"))
        return report

    def notified_run(self, *, sweep: bool) -> dict[str, Any]:
        """The run notifications make (their queued work drained: the marks are what it
        reads), or with `sweep` the scheduled run whose sweep reads every mailbox."""
        from shared.app import boundary

        while (delivery := rq.receive(self.azurite.connection_string,
                                      config.NOTIFY_QUEUE_NAME)) is not None:
            rq.complete(self.azurite.connection_string, delivery, config.NOTIFY_QUEUE_NAME)
        env = {**os.environ, **({config.MAILBOX_SWEEP_HOURS: "0"} if sweep else {})}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            report: dict[str, Any] = pool.submit(asyncio.run, boundary.sync(
                trigger="timer" if sweep else "notification", environ=env)).result()
        return report

    def work_shards(self) -> int:
        """The host's queue trigger: every queued mailbox shard, worked by the real
        function; how many."""
        from tests.e2e.test_http import function

        worked = 0
        while (delivery := rq.receive(self.azurite.connection_string,
                                      config.MAILBOX_QUEUE_NAME)) is not None:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run,
                            function("run_mailbox_shard")(delivery.message)).result()
            rq.complete(self.azurite.connection_string, delivery, config.MAILBOX_QUEUE_NAME)
            worked += 1
        return worked

    def users(self) -> dict[str, dict[str, Any]]:
        return {u["username"]: u for u in self.export()["users"]}


MAILBOX_MODES = ("inline", "queue", "notified")
"""Where the mailbox pass's shards run (in the run's process, or on the queue), and
whether Graph's notifications say which mailboxes changed."""


@pytest.fixture
def mailbox_mode(request: pytest.FixtureRequest) -> str:
    mode: str = getattr(request, "param", "inline")
    return mode


@pytest.fixture
def make_world(
    azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    mailbox_mode: str,
) -> Iterator[Any]:
    wipe(azurite.connection_string)
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, azurite.connection_string)
    if mailbox_mode == "queue":
        monkeypatch.setenv(config.MAILBOX_SHARDS, "queue")
    stack = contextlib.ExitStack()
    if mailbox_mode == "notified":
        server = stack.enter_context(notify_server())
        monkeypatch.setenv(config.NOTIFICATIONS, "true")
        monkeypatch.setenv(config.PUBLIC_URL, server.base)
        monkeypatch.setenv(config.NOTIFICATION_KEY, "mailbox-notify-key-for-tests")

    def make(tenant: dict[str, Any], latency_ms: float = 0) -> World:
        sim = stack.enter_context(running_simulator(tenant, latency_ms=latency_ms))
        monkeypatch.setenv(config.GRAPH_URL, sim.url)
        return World(azurite, sim, tmp_path, mailbox_mode)

    with stack:
        yield make
