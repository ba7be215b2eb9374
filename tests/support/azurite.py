"""Azurite (Table, Blob and Queue Storage emulator) as a test subprocess.

    with start_azurite() as azurite:
        store = open_store(connection_string=azurite.connection_string,
                           prefix=unique_prefix())

One in-memory Azurite on free loopback ports per test process; tests share it and
isolate themselves with a unique table/container name prefix, or wipe it (tests/e2e).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from shared.store.keys import azurite_connection_string

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Terminate a child we started; kill it if it has not gone within 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def unique_prefix() -> str:
    """A fresh table/container name prefix (lowercase letters and digits)."""
    return "t" + uuid.uuid4().hex[:12]


class AzuriteProcess:
    """A running Azurite; `stop()` (or leaving the `with`) terminates it."""

    def __init__(self, *, timeout: float = 30.0) -> None:
        if not AZURITE.exists():
            raise RuntimeError(f"{AZURITE} is missing: run `make setup` (npm ci) first")
        self.blob_port, self.queue_port, self.table_port = (_free_port() for _ in range(3))
        self._workdir = tempfile.mkdtemp(prefix="azurite-")
        self._log = open(os.path.join(self._workdir, "azurite.log"), "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(AZURITE), "--inMemoryPersistence", "--skipApiVersionCheck",
             "--disableTelemetry", "--silent",
             "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
             "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
             "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self._workdir, start_new_session=True)
        self.connection_string = azurite_connection_string(
            blob_port=self.blob_port, queue_port=self.queue_port, table_port=self.table_port)
        deadline = time.monotonic() + timeout
        # Until all three answer and the answers are Azurite's (it exits when a port is taken).
        while not all(_answers(p) for p in (self.blob_port, self.queue_port, self.table_port)) \
                or self.process.poll() is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._log.seek(0)
                output = self._log.read().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"Azurite did not start:\n{output}")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> AzuriteProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_azurite(*, timeout: float = 30.0, attempts: int = 3) -> AzuriteProcess:
    """Start Azurite (Table, Blob and Queue, in memory) on free loopback ports.

    A port found free may be taken by another process (another test worker's Azurite)
    before Azurite binds it; Azurite then exits, and it is started again on other ports."""
    for attempt in range(1, attempts + 1):
        try:
            return AzuriteProcess(timeout=timeout)
        except RuntimeError:
            if attempt == attempts or not AZURITE.exists():
                raise
    raise AssertionError("unreachable")
