"""R16 in a run: check this run's users' photos, plan, and copy the bytes.

After the plan is made (`shared.reconcile.planner`), and only with `photoSync` on and
the integration enabled: the users whose photos follow Entra and are due this run
(`shared.reconcile.photos.targets`: their slot, or touched by the plan) have their
photo metadata read (`shared.graph.photos`, bytes only for a new or changed ETag); the
R16 changes are added to the plan (`photos.with_photos`). Applying writes each copied
photo's blob before the users' `photo` fields are written, and deletes a removed
photo's blob before its field is cleared (`apply_blobs`, called before the user
writes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from shared.graph import client as graph_client
from shared.graph import photos as graph_photos
from shared.reconcile import model, photo_slices, photos
from shared.store import photo_blobs


@dataclasses.dataclass(frozen=True)
class PhotoCheck:
    """What a run read of the photos: the plan's input for R16, and the bytes to write."""

    read: graph_photos.PhotoRead
    checked: tuple[photos.Target, ...]
    controlled: int
    """Linked active users an employee profile controls (skipped)."""
    slot: int
    slots: int

    def seen(self) -> dict[str, photos.Seen | None]:
        return {entra_id: None if p is None else photos.Seen(p.etag, p.content_type, p.sha256)
                for entra_id, p in self.read.photos.items()}

    def summary(self) -> dict[str, int]:
        return {"checked": len(self.checked), "downloaded": self.read.downloads,
                "requests": self.read.requests, "slot": self.slot, "slots": self.slots,
                "employeeProfileControls": self.controlled}


async def check(graph: graph_client.GraphClient, users: Iterable[Mapping[str, Any]],
                entra_ids: Iterable[str], plan: model.Plan, now: dt.datetime, *,
                schedule: str, only: str | None = None) -> PhotoCheck:
    """Read the photos of the users due this run (`only`: of that one Emply user, for
    explain)."""
    found, controlled = photos.candidates(users, frozenset(entra_ids), plan)
    slots = photo_slices.slots_for(schedule)
    slot = photo_slices.current_slot(schedule, now)
    if only is not None:
        due = [t for t in found if t.user_id == only]
    else:
        due = photos.targets(found, plan, slots=slots, slot=slot)
    read = await graph_photos.read_photos(
        graph, {t.entra_id: photos.recorded_etag(t.recorded) for t in due})
    return PhotoCheck(read, tuple(due), controlled, slot, slots)


def plan_with_photos(plan: model.Plan, found: PhotoCheck, now: dt.datetime) -> model.Plan:
    stamp = now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return photos.with_photos(plan, photos.photo_changes(found.checked, found.seen(), stamp),
                              found.controlled)


BLOB_WRITES_IN_FLIGHT = 8


async def apply_blobs(blobs: photo_blobs.PhotoBlobs | None, plan: model.Plan,
                      found: PhotoCheck | None) -> None:
    """The blobs of the plan's R16 changes (8 at a time), before the users' `photo`
    fields are written: a field never names a blob that was not written."""
    if found is None or not any(c.kind in photos.PHOTO_KINDS for c in plan.changes):
        return
    if blobs is None:
        raise ValueError("photo changes to apply but no photo blob store was given")
    gate = asyncio.Semaphore(BLOB_WRITES_IN_FLIGHT)

    async def one(change: model.Change) -> None:
        user_id, entra_id = change.user_id, change.entra_id
        if user_id is None or entra_id is None:
            return
        async with gate:
            if change.kind == photos.PHOTO_SET:
                photo = found.read.photos.get(entra_id)
                if photo is None or photo.data is None:
                    raise ValueError(f"photo_set for user {user_id} without its bytes")
                await blobs.put(user_id, photo.data, photo.content_type)
            elif change.kind == photos.PHOTO_CLEAR:
                await blobs.delete(user_id)

    await asyncio.gather(*(one(c) for c in plan.changes if c.kind in photos.PHOTO_KINDS))


def explained(result: dict[str, Any], user: Mapping[str, Any], settings: model.Settings,
              seen: Mapping[str, photos.Seen | None] | None) -> dict[str, Any]:
    """`explain`'s answer for `user` with why its photo is or is not copied (R16): said
    when photo sync is on or the user has a copied photo (otherwise nothing is to say)."""
    if not settings.photo_sync and not user.get("photo"):
        return result
    return photos.add_to_explanation(result, user, settings.photo_sync, settings.enabled,
                                     seen)
