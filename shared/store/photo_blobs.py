"""R16's bytes: one blob per Emply user in the `photos` container.

The blob's name is the user id (encoded like a Table key, so any id is a valid name),
its content type the photo's. `PhotoBlobs` is the protocol the service uses;
`AzurePhotoBlobs` is the Blob Storage one, `MemoryPhotoBlobs` the in-memory fake for
service-level tests. Writing a blob that is there replaces it; deleting one that is not
is fine (a run that stopped half-way is planned again).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient

from shared.store import keys

CONTAINER = "photos"


def blob_name(user_id: str) -> str:
    if not user_id:
        raise ValueError("photo blob: user id must not be empty")
    return keys.encode_key(user_id)


class PhotoBlobs(Protocol):
    async def put(self, user_id: str, data: bytes, content_type: str) -> None: ...

    async def delete(self, user_id: str) -> None: ...

    async def get(self, user_id: str) -> tuple[bytes, str] | None:
        """(bytes, content type) of the user's photo; None when there is none."""
        ...


class AzurePhotoBlobs:
    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self._ready = False
        self._lock = asyncio.Lock()

    async def _ensure(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    await self._container.create_container()
                self._ready = True

    async def put(self, user_id: str, data: bytes, content_type: str) -> None:
        await self._ensure()
        await self._container.get_blob_client(blob_name(user_id)).upload_blob(
            data, overwrite=True, content_settings=ContentSettings(content_type=content_type))

    async def delete(self, user_id: str) -> None:
        await self._ensure()
        with contextlib.suppress(ResourceNotFoundError):
            await self._container.get_blob_client(blob_name(user_id)).delete_blob()

    async def get(self, user_id: str) -> tuple[bytes, str] | None:
        await self._ensure()
        blob = self._container.get_blob_client(blob_name(user_id))
        try:
            stream = await blob.download_blob()
        except ResourceNotFoundError:
            return None
        data = await stream.readall()
        content_type = stream.properties.content_settings.content_type or ""
        return bytes(data), content_type


class MemoryPhotoBlobs:
    """The in-memory fake: `blobs` maps user ids to (bytes, content type)."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str]] = {}

    async def put(self, user_id: str, data: bytes, content_type: str) -> None:
        blob_name(user_id)  # the same check as the real one
        self.blobs[user_id] = (data, content_type)

    async def delete(self, user_id: str) -> None:
        self.blobs.pop(user_id, None)

    async def get(self, user_id: str) -> tuple[bytes, str] | None:
        return self.blobs.get(user_id)
