"""Importing the Emply side: the one function the CLI (and the Emply API) call.

`import_emply` reads the document (bytes are parsed by `emply_file`), takes the sync
lease so no run plans or applies while the Emply side is replaced under it (R1: one
run at a time; an import counts as one), removes what a crashed import left, and
lets the store write and switch (`EmplyGenerations.import_document`: all or nothing). A
running sync makes it raise `RunInProgress` (the CLI's exit 3, HTTP 409); a bad
document `DocumentError` listing every problem (exit 2, HTTP 400); a storage failure
`ImportFailed` with nothing imported. An outbound event sent again keeps what the sync
knows of its M365 copy (`shared.app.outbound_events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from typing import Any

from shared.app import outbound_events
from shared.emply import file as emply_file
from shared.store import errors, protocols

LEASE_TTL_SECONDS = 300
"""The import's hold on the sync lease, renewed every third of it while it writes."""
_log = logging.getLogger("emply_sync.import")


def new_import_id(now: dt.datetime) -> str:
    return f"import-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


async def import_emply(store: protocols.SyncStore, data: bytes | object, *, replace: bool = False,
                       trigger: str = "cli", source: str = "the document") -> dict[str, int]:
    """Import an Emply state document (bytes of a file or body, or the parsed value).

    Returns the entities written per section. Raises `DocumentError` (nothing
    written), `RunInProgress` (a sync or another import holds the lease: nothing
    written), `ImportFailed` / `EmplyReplaced` (nothing imported), `LeaseLost`.
    """
    doc = emply_file.parse_document_bytes(data, source=source) \
        if isinstance(data, bytes) else data
    import_id = new_import_id(dt.datetime.now(dt.UTC))
    started = time.monotonic()
    await store.acquire_lease(import_id, "import", ttl_seconds=LEASE_TTL_SECONDS)
    heartbeat = asyncio.create_task(_keep_lease(store, import_id))

    async def still_ours() -> None:
        if heartbeat.done():
            heartbeat.result()  # LeaseLost: another run took over
        await store.renew_lease(import_id, ttl_seconds=LEASE_TTL_SECONDS)

    extra: dict[str, Any] = {"importId": import_id, "trigger": trigger, "replace": replace}
    try:
        stale = await store.remove_stale_generations()
        # Under the lease: no run writes the outbound events' sync fields meanwhile.
        doc = await outbound_events.keep_in_document(store, doc)
        counts = await store.import_document(doc, replace=replace, before_switch=still_ours)
    except Exception as exc:
        _log.warning("emply_sync.import_refused", extra={
            **extra, "error": type(exc).__name__,
            "durationMs": int((time.monotonic() - started) * 1000)})
        raise
    finally:
        heartbeat.cancel()
        with contextlib.suppress(BaseException):
            await heartbeat
        with contextlib.suppress(Exception):  # it expires by itself otherwise
            await store.release_lease(import_id)
    _log.info("emply_sync.import", extra={
        **extra, "counts": counts, "staleGenerationsRemoved": stale,
        "durationMs": int((time.monotonic() - started) * 1000)})
    return counts


async def _keep_lease(store: protocols.RunLease, import_id: str) -> None:
    """Renew the lease while the import writes; only `LeaseLost` ends this early."""
    while True:
        await asyncio.sleep(LEASE_TTL_SECONDS / 3)
        try:
            await store.renew_lease(import_id, ttl_seconds=LEASE_TTL_SECONDS)
        except errors.LeaseLost:
            raise
        except Exception:
            _log.warning("emply_sync.import_lease_renewal_failed",
                         extra={"importId": import_id})
