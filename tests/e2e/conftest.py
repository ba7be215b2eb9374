"""End-to-end fixtures: real Azurite, the real Graph simulator over HTTP, real CLI/triggers.

One Azurite per test process (tests/conftest.py); every test starts from empty storage
(tables, containers and queues are dropped) and its own simulator. The app finds both through the
same settings it reads in Azure: EMPLY_SYNC_STORAGE and EMPLY_SYNC_GRAPH_URL.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared import cli, config
from tests.support.azurite import AzuriteProcess
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

    def sync(self, *extra: str) -> dict[str, Any]:
        code, out, err = self.cli("sync", "--json", *extra)
        report: dict[str, Any] = json.loads(out)
        assert code == (1 if report["status"] == "failed" else 0), err
        return report

    def users(self) -> dict[str, dict[str, Any]]:
        return {u["username"]: u for u in self.export()["users"]}


@pytest.fixture
def make_world(
    azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Any]:
    wipe(azurite.connection_string)
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, azurite.connection_string)
    stack = contextlib.ExitStack()

    def make(tenant: dict[str, Any], latency_ms: float = 0) -> World:
        sim = stack.enter_context(running_simulator(tenant, latency_ms=latency_ms))
        monkeypatch.setenv(config.GRAPH_URL, sim.url)
        return World(azurite, sim, tmp_path)

    with stack:
        yield make
