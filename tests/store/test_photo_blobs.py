"""R16's blobs: the Blob Storage implementation on Azurite and the in-memory fake keep
the same contract (one blob per user, with its content type; replace; delete twice)."""

from __future__ import annotations

import pytest

from shared.store import EmplyStore, photo_blobs


async def contract(blobs: photo_blobs.PhotoBlobs) -> None:
    assert await blobs.get("u-megan") is None
    await blobs.put("u-megan", b"\xff\xd8 one", "image/jpeg")
    await blobs.put("u/odd#id?", b"\x89PNG", "image/png")  # any user id is a name
    assert await blobs.get("u-megan") == (b"\xff\xd8 one", "image/jpeg")
    await blobs.put("u-megan", b"\x89PNG two", "image/png")  # replaced
    assert await blobs.get("u-megan") == (b"\x89PNG two", "image/png")
    await blobs.delete("u-megan")
    await blobs.delete("u-megan")  # gone already: fine (a rerun deletes again)
    assert await blobs.get("u-megan") is None
    assert await blobs.get("u/odd#id?") == (b"\x89PNG", "image/png")
    with pytest.raises(ValueError, match="user id"):
        await blobs.put("", b"x", "image/jpeg")


async def test_blob_storage_keeps_the_contract(store: EmplyStore) -> None:
    await contract(store.photo_store())


async def test_the_fake_keeps_the_contract() -> None:
    await contract(photo_blobs.MemoryPhotoBlobs())
