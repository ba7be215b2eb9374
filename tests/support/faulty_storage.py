"""Storage that fails on cue: a transport of our own around azure-core's real one.

    transport = FaultyTransport(fail_batch=40)
    store = faulty_store(azurite.connection_string, prefix, transport)

Every request goes to Azurite through the real aiohttp transport; the chosen Table
transaction (`$batch`, counted from 1) is not sent and raises the error a dropped
connection gives. With `then_down`, every request after it fails too (storage gone,
as for a process killed mid-write: nothing the store does afterwards reaches storage).
`pause_batch` holds that transaction until `resume` is set, so a test can act while
an import is half written. `lose_marker_answer`: the first write of the version
marker is done but its answer never arrives. Nothing in the HTTP library is patched.
"""

from __future__ import annotations

import asyncio
from typing import Any

from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpTransport
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient

from shared.store import EmplyStore


class FaultyTransport(AsyncHttpTransport):  # type: ignore[type-arg]
    def __init__(self, *, fail_batch: int | None = None, then_down: bool = False,
                 pause_batch: int | None = None, lose_marker_answer: bool = False) -> None:
        self._inner = AioHttpTransport()
        self.fail_batch = fail_batch
        self.then_down = then_down
        self.pause_batch = pause_batch
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()
        self.lose_marker_answer = lose_marker_answer
        self.batches = 0
        self.down = False

    async def send(self, request: Any, **kwargs: Any) -> Any:
        if self.down:
            raise ServiceResponseError("injected: storage unreachable")
        if request.url.endswith("/$batch"):
            self.batches += 1
            if self.batches == self.pause_batch:
                self.paused.set()
                await self.resume.wait()
            if self.batches == self.fail_batch:
                self.down = self.then_down
                raise ServiceResponseError("injected: connection reset during a transaction")
        if self.lose_marker_answer and request.method in ("PUT", "POST") \
                and "PartitionKey='meta'" in request.url:
            self.lose_marker_answer = False
            await self._inner.send(request, **kwargs)  # done, but the answer is lost
            raise ServiceResponseError("injected: connection reset before the answer")
        return await self._inner.send(request, **kwargs)

    async def open(self) -> None:
        await self._inner.open()

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> FaultyTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self._inner.__aexit__(*args)


def faulty_store(connection_string: str, prefix: str, transport: FaultyTransport) -> EmplyStore:
    """An `EmplyStore` whose Table requests go through `transport` (blobs as usual)."""
    return EmplyStore(
        TableServiceClient.from_connection_string(connection_string, transport=transport),
        BlobServiceClient.from_connection_string(connection_string), prefix=prefix)
