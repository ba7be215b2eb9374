"""Blob helpers shared by the run log and the sync state: JSON encoded, compressed and
uploaded a block at a time on one codec thread, committed in one call."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobClient

T = TypeVar("T")
BLOCK_BYTES = 4 << 20  # compressed bytes per staged block of a syncstate blob


# One thread encodes and decodes the big blobs, always the same one: glibc gives each
# thread that allocates its own malloc arena, and memory freed in an arena stays with
# the process, so a pool's changing threads added about 70 MB to a 100,000-user run.
_CODEC_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                      thread_name_prefix="emply-json")


async def in_codec_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_CODEC_THREAD, fn, *args)


async def upload_blocks(blob: BlobClient, blocks: Iterator[bytes],
                        metadata: dict[str, str] | None = None) -> None:
    """Upload `blocks` (made in a worker thread, the next while one uploads) as the
    blob's new content, with `metadata`: one put for a single block, else staged blocks
    committed in one call, so readers see the old or the new blob, never a half."""

    async def produce() -> bytes | None:
        return await in_codec_thread(next, blocks, None)

    data, following = await produce(), await produce()
    if following is None:
        await blob.upload_blob(data or b"", overwrite=True, metadata=metadata)
        return
    prefix = uuid.uuid4().hex[:16]  # same-length ids, unlike any earlier write's
    ids: list[str] = []
    while data is not None:
        upcoming = asyncio.ensure_future(produce()) if following is not None else None
        block_id = base64.b64encode(f"{prefix}{len(ids):08d}".encode()).decode()
        try:
            await blob.stage_block(block_id, data)
        except BaseException:
            if upcoming is not None:
                upcoming.cancel()
            raise
        ids.append(block_id)
        data, following = following, (await upcoming if upcoming is not None else None)
    await blob.commit_block_list([BlobBlock(block_id=i) for i in ids], metadata=metadata)

