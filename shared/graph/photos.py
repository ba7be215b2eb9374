"""R16's read: users' profile photos, without downloading the unchanged ones.

Photos are not in delta. For each user checked, the photo's metadata
(`GET /users/{id}/photo`: `@odata.mediaEtag`, `@odata.mediaContentType`) is read through
`$batch`, 20 users a batch, at most `CONCURRENT_BATCHES` batches in flight (a user is in
one item of one batch, so a mailbox never sees more than one of our requests at a time;
Outlook allows four). A user without a photo answers 404 `ImageNotFound`, or 200 with
an empty `@odata.mediaEtag` (api/profilephoto-get.md, example 3: a 1x1 placeholder):
both are "no photo" (`None`). Only the users whose mediaEtag differs from the one the
caller knows have their bytes read (`GET /users/{id}/photo/$value`, again 20 a batch;
`$batch` answers binary bodies in base64). A throttled item (429/503/504 inside a batch)
is retried after its `Retry-After`, in a later batch of only such items. A user whose
photo could not be read (still throttled after its retries, refused, an answer that is
not a photo) is in `PhotoRead.failures` and not in `photos`: the caller leaves that
user's photo as it is and reports it (`shared.graph.failures`, `photo_unavailable`).
Only a `$batch` refused as a whole fails the read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shared.graph import batch_get, failures, middleware
from shared.graph import client as graph_client

BATCH_SIZE = batch_get.BATCH_SIZE
CONCURRENT_BATCHES = batch_get.CONCURRENT_BATCHES
MAX_ITEM_RETRIES = batch_get.MAX_ITEM_RETRIES
RETRIED_STATUSES = batch_get.RETRIED_STATUSES
NO_PHOTO_CODES = frozenset({"ImageNotFound", "ErrorItemNotFound", "ResourceNotFound",
                            "Request_ResourceNotFound", "MailboxNotEnabledForRESTAPI"})
"""404 codes that mean "this user has no photo" (not a failed read)."""

Sleep = batch_get.Sleep


@dataclass(frozen=True)
class Photo:
    etag: str
    """The metadata's `@odata.mediaEtag`: what the next read compares with."""
    content_type: str
    data: bytes | None = None
    """The bytes, when they were read (a new or changed ETag)."""

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else None


@dataclass(frozen=True)
class PhotoRead:
    photos: dict[str, Photo | None]
    """Entra user id → its photo (None: it has none), for every user asked about whose
    photo was read."""
    requests: int
    """HTTP exchanges with Graph (a `$batch` of 20 users is one)."""
    throttled: int
    downloads: int
    """Photos whose bytes were read."""
    failures: dict[str, failures.UserReadFailure] = field(default_factory=dict)
    """Entra user id → why its photo could not be read this run (reason
    `photo_unavailable`); such a user is not in `photos`."""


async def read_photos(client: graph_client.GraphClient, known: Mapping[str, str | None],
                      *, concurrency: int = CONCURRENT_BATCHES,
                      sleep: Sleep = asyncio.sleep) -> PhotoRead:
    """The photos of the users in `known` (Entra id → the mediaEtag of the copy made
    last, None when none was): metadata for all, bytes only where the mediaEtag differs."""
    ids = sorted(known)
    gate = asyncio.Semaphore(concurrency)
    throttled = [0]
    metas: dict[str, Any] = {}
    values: dict[str, Any] = {}
    failed: dict[str, failures.UserReadFailure] = {}

    async def run(chunks: list[list[str]], url: Callable[[str], str],
                  out: dict[str, Any]) -> None:
        async def one(chunk: list[str]) -> None:
            async with gate:
                await _batch(client, chunk, url, out, failed, throttled, sleep)
        await asyncio.gather(*(one(c) for c in chunks))

    with middleware.track() as stats:
        await run(_chunks(ids), _meta_url, metas)
        photos: dict[str, Photo | None] = {}
        for entra_id in (i for i in ids if i in metas):
            _settle(photos, failed, entra_id, _meta(client, entra_id, metas[entra_id]))
        # Change is judged on the metadata's mediaEtag alone: Graph documents no relation
        # between it and the ETag header of the `$value` answer, so comparing the two
        # would download every photo on every run (or miss a change).
        changed = [i for i in ids if (p := photos.get(i)) is not None and p.etag != known[i]]
        await run(_chunks(changed), _value_url, values)
        for entra_id in (i for i in changed if i in values):
            _settle(photos, failed, entra_id,
                    _with_bytes(client, entra_id, photos[entra_id], values[entra_id]))
        for entra_id in failed:
            photos.pop(entra_id, None)
    return PhotoRead(photos, stats.total_requests, stats.throttled + throttled[0],
                     sum(1 for i in changed if photos.get(i) is not None),
                     {i: failed[i] for i in ids if i in failed})


def _settle(photos: dict[str, Photo | None], failed: dict[str, failures.UserReadFailure],
            entra_id: str, found: Photo | failures.UserReadFailure | None) -> None:
    if isinstance(found, failures.UserReadFailure):
        failed[entra_id] = found
    else:
        photos[entra_id] = found


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)]


def _meta_url(entra_id: str) -> str:
    return f"/users/{quote(entra_id, safe='')}/photo"


def _value_url(entra_id: str) -> str:
    return f"/users/{quote(entra_id, safe='')}/photo/$value"


def _invalid(client: graph_client.GraphClient, entra_id: str, url: str, message: str
             ) -> failures.UserReadFailure:
    return failures.failure(entra_id, failures.PHOTO_UNAVAILABLE, 200, failures.INVALID_JSON,
                            message, client.endpoint(url))


def _meta(client: graph_client.GraphClient, entra_id: str, answer: Any
          ) -> Photo | failures.UserReadFailure | None:
    """The photo the metadata describes; None for no photo (404 `ImageNotFound`, or 200
    with an empty `@odata.mediaEtag`, Graph's placeholder for a photo never uploaded)."""
    if answer is None:
        return None
    body = answer.get("body")
    etag = body.get("@odata.mediaEtag") if isinstance(body, dict) else None
    content_type = body.get("@odata.mediaContentType") if isinstance(body, dict) else None
    if etag == "":
        return None
    if not isinstance(etag, str):
        return _invalid(client, entra_id, _meta_url(entra_id),
                        "the photo's metadata has no @odata.mediaEtag")
    return Photo(etag, content_type if isinstance(content_type, str) else "image/jpeg")


def _with_bytes(client: graph_client.GraphClient, entra_id: str, meta: Photo | None,
                answer: Any) -> Photo | failures.UserReadFailure | None:
    """The photo with its bytes, under the metadata's mediaEtag; None when it went away
    between the two reads."""
    if answer is None or meta is None:
        return None
    body = answer.get("body")
    try:
        data = base64.b64decode(body, validate=True) if isinstance(body, str) else None
    except (binascii.Error, ValueError):
        data = None
    if not data:
        return _invalid(client, entra_id, _value_url(entra_id),
                        "the photo's bytes are not base64 in the $batch answer")
    headers = {str(k).lower(): v for k, v in (answer.get("headers") or {}).items()}
    content_type = headers.get("content-type")
    return Photo(meta.etag, content_type if isinstance(content_type, str)
                 and content_type.startswith("image/") else meta.content_type, data)


async def _batch(client: graph_client.GraphClient, chunk: list[str],
                 url: Callable[[str], str], out: dict[str, Any],
                 failed: dict[str, failures.UserReadFailure], throttled: list[int],
                 sleep: Sleep) -> None:
    """One batch of items; `out[id]` is the item's answer (None: 404, no photo)."""
    def fail(entra_id: str, status: int | None, code: str | None, message: str) -> None:
        failed[entra_id] = failures.failure(entra_id, failures.PHOTO_UNAVAILABLE, status,
                                            code, message, client.endpoint(url(entra_id)))

    async def settle(entra_id: str, response: dict[str, Any]) -> list[str] | None:
        status = response.get("status")
        if status == 200:
            out[entra_id] = response
        elif status == 404 and batch_get.error_of(response.get("body"))[0] in NO_PHOTO_CODES:
            out[entra_id] = None
        else:
            return None
        return []

    items_throttled = await batch_get.get_each(client, chunk, url=url, settle=settle,
                                               sleep=sleep, fail=fail)
    throttled[0] += items_throttled
