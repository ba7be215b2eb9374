"""The sync's own state: container `syncstate`. `state.json.gz`: delta links, the
Entra mirror's head and the previous group->role mapping, written in one put;
`index-<part>-<generation>.bin.z`: the bulk of a run's inputs (the directory; a compact
copy of the Emply side: `shared.run.entra_index`, `shared.run.emply_index`), one blob
per part and generation, so the current one is never overwritten by a run that then
fails."""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from shared.store import blobs, chunked_json, codec
from shared.store.tally import Ensure

_STATE_BLOB = "state.json.gz"
INDEX_PARTS = ("entra", "emply", "entradelta", "emplydelta")
"""The indexes saved whole, and what changed since (a run writes only that)."""


class AzureSyncState:
    """`protocols.SyncStateStore` over container `syncstate`."""

    def __init__(self, container: ContainerClient, *, ensure: Ensure) -> None:
        self._container = container
        self._ensure = ensure

    async def _read_json_blob(self, name: str) -> Any:
        """A `chunked_json` blob of `syncstate`, decoded off the event loop; None if absent.

        The compressed bytes are held whole (about a fifth of the text); the text is
        decompressed and parsed a line at a time.
        """
        await self._ensure()
        try:
            downloader = await self._container.download_blob(name)
        except ResourceNotFoundError:
            return None
        raw = await downloader.readall()

        def decode() -> Any:
            try:
                return chunked_json.decode_lines(chunked_json.gunzip_lines([raw]))
            except zlib.error as exc:
                raise ValueError(f"{name}: not gzip data ({exc})") from exc

        return await blobs.in_codec_thread(decode)

    async def _write_json_blob(self, name: str, value: Any, *, level: int) -> None:
        """Replace a `syncstate` blob; readers see the old or the new one, never half.

        The value is encoded and compressed a block at a time in a worker thread while
        the previous block uploads; blocks are committed in one call at the end (a
        small value goes up in one put). Memory: about two blocks, whatever the size.
        """
        await self._ensure()
        blocks = chunked_json.gzip_blocks(chunked_json.encode_lines(value), level=level,
                                          block_size=blobs.BLOCK_BYTES)
        await blobs.upload_blocks(self._container.get_blob_client(name), blocks)

    async def load_sync_state(self) -> dict[str, Any] | None:
        state: dict[str, Any] | None = await self._read_json_blob(_STATE_BLOB)
        return state

    async def save_sync_state(self, state: Mapping[str, Any]) -> None:
        await self._write_json_blob(_STATE_BLOB, state, level=5)

    async def load_state_part(self, name: str) -> Any:
        """A named part of the sync's own state kept beside the state blob (e.g.
        "events": R14's delta links), None when absent."""
        return await self._read_json_blob(state_part_blob(name))

    async def save_state_part(self, name: str, value: Any) -> None:
        await self._write_json_blob(state_part_blob(name), value, level=5)

    async def load_index(self, generation: str, part: str) -> bytes | bytearray | None:
        """An index part (`shared.run.entra_index`, `shared.run.emply_index`): bytes,
        stored compressed; None when missing."""
        await self._ensure()
        try:
            downloader = await self._container.download_blob(index_blob(part, generation))
        except ResourceNotFoundError:
            return None
        size = (downloader.properties.metadata or {}).get(RAW_BYTES)
        if size is None or not size.isdigit():  # saved before the size was kept with it
            raw = await downloader.readall()
            return await blobs.in_codec_thread(_decompressed, part, raw)
        return await _decompressed_into(part, downloader.chunks(), int(size))

    async def save_index(self, generation: str, part: str,
                         data: Sequence[bytes | bytearray | memoryview]) -> None:
        """Write an index part: its pieces compressed one after the other (the fastest
        level) into blocks uploaded as they fill, so the whole is never held twice."""
        await self._ensure()
        name = index_blob(part, generation)  # refuses a bad part or generation first
        await blobs.upload_blocks(self._container.get_blob_client(name),
                                  _compressed_blocks(data),
                                  {RAW_BYTES: str(sum(len(piece) for piece in data))})

    async def delete_index(self, generation: str) -> None:
        await self._ensure()
        for part in INDEX_PARTS:
            with contextlib.suppress(ResourceNotFoundError):
                await self._container.delete_blob(index_blob(part, generation))


def state_part_blob(name: str) -> str:
    if not re.fullmatch(r"[a-z]{1,20}", name):
        raise ValueError(f"no state part {name!r}")
    return f"state-{name}.json.gz"


def index_blob(part: str, generation: str) -> str:
    if part not in INDEX_PARTS or not codec.GENERATION.fullmatch(generation):
        raise ValueError(f"no index part {part!r} of generation {generation!r}")
    return f"index-{part}-{generation}.bin.z"


RAW_BYTES = "rawbytes"
"""Blob metadata of an index part: its size uncompressed (the reader fills one buffer)."""
_OUT_BYTES = 1 << 20


def _decompressed(part: str, raw: bytes) -> bytes:
    try:
        return zlib.decompress(raw)
    except zlib.error as exc:
        raise ValueError(f"index {part}: not zlib data ({exc})") from exc


class _Filling:
    """Decompresses chunks of an index part into one buffer of the part's size."""

    def __init__(self, part: str, size: int) -> None:
        self.part, self.size = part, size
        self.out = bytearray(size)
        self.at = 0
        self._z = zlib.decompressobj()

    def take(self, chunk: bytes) -> None:
        data = chunk
        while data:
            piece = self._z.decompress(data, _OUT_BYTES)
            if self.at + len(piece) > self.size:
                raise ValueError(f"index {self.part}: longer than its recorded "
                                 f"{self.size} bytes")
            self.out[self.at:self.at + len(piece)] = piece
            self.at += len(piece)
            data = self._z.unconsumed_tail

    def done(self) -> bytearray:
        if not self._z.eof or self.at != self.size:
            raise ValueError(f"index {self.part}: {self.at} bytes, {self.size} recorded")
        return self.out


async def _decompressed_into(part: str, chunks: AsyncIterator[bytes], size: int) -> bytearray:
    """The part's bytes, decompressed as its chunks arrive into one buffer of its size:
    neither the compressed blob nor a second copy of the index is ever held (a 100,000-
    user index part is tens of MB)."""
    filling = _Filling(part, size)
    try:
        async for chunk in chunks:
            await blobs.in_codec_thread(filling.take, chunk)
    except zlib.error as exc:
        raise ValueError(f"index {part}: not zlib data ({exc})") from exc
    return filling.done()


def _compressed_blocks(pieces: Sequence[bytes | bytearray | memoryview]) -> Iterator[bytes]:
    """zlib of the pieces, in blocks of about `blobs.BLOCK_BYTES`."""
    compressor = zlib.compressobj(1)
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        for start in range(0, len(piece), blobs.BLOCK_BYTES):
            out = compressor.compress(piece[start:start + blobs.BLOCK_BYTES])
            pending.append(out)
            size += len(out)
            if size >= blobs.BLOCK_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
    pending.append(compressor.flush())
    yield b"".join(pending)
