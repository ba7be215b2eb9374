"""The photos step (R16): read the photos due this run, then copy their bytes.

Read, with `photoSync` on and the integration enabled: the Entra ids
`shared.reconcile.photos.due` names (this run's slot of the users whose photos follow
Entra, and the users this run may create, link or reactivate) have their photo metadata
read (`shared.graph.photos`; the bytes only for a new or changed ETag). The planner
turns what was seen into `photo_set` / `photo_clear` changes. A user whose photo could not
be read keeps its copy as it is, is an error on that user, and is left alone until its
next try (`shared.run.steps.user_faults`). Applied first of all the
steps: each copied photo's blob is written, or a removed photo's blob deleted, before
the directory step writes the users' `photo` fields, so a field never names a blob that
was not written.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from shared.graph import photos as graph_photos
from shared.reconcile import convert, model, photo_slices, photos
from shared.run.context import Run
from shared.run.steps import base, user_faults

BLOB_WRITES_IN_FLIGHT = 8


@dataclasses.dataclass(frozen=True)
class PhotoCheck:
    """What a run read of the photos: the plan's input for R16, and the bytes to write."""

    read: graph_photos.PhotoRead
    slot: int
    slots: int

    @property
    def requests(self) -> int:
        return self.read.requests

    @property
    def throttled(self) -> int:
        return self.read.throttled

    def seen(self) -> dict[str, model.EntraPhoto | None]:
        return {entra_id: None if p is None else model.EntraPhoto(p.etag, p.content_type,
                                                                   p.sha256)
                for entra_id, p in self.read.photos.items()}

    def summary(self) -> dict[str, int]:
        return {"checked": len(self.read.photos), "downloaded": self.read.downloads,
                "requests": self.read.requests, "slot": self.slot, "slots": self.slots}


def check_of(run: Run) -> PhotoCheck | None:
    found = run.reads.get(STEP.name)
    return found if isinstance(found, PhotoCheck) else None


class PhotosStep(base.Step):
    name = "photos"

    def __init__(self, *, every_slot: bool = False) -> None:
        self.every_slot = every_slot
        """An on-demand run: the photos of the users it reads, whatever their slot."""

    async def read(self, run: Run) -> None:
        if not (run.settings.enabled and run.settings.photo_sync):
            return
        emply = convert.emply_snapshot({"users": run.doc.get("users", ())})
        entra = convert.entra_snapshot(run.directory.mirror)
        schedule = run.deps.schedule
        slots = 1 if self.every_slot else photo_slices.slots_for(schedule)
        slot = 0 if self.every_slot else photo_slices.current_slot(schedule, run.started)
        due = await user_faults.skip_waiting(run, user_faults.PHOTO, photos.due(
            emply, entra, run.settings, slots=slots, slot=slot, only=run.only_user))
        recorded = {u.entra_id: photos.recorded_etag(u.photo) for u in emply.users
                    if u.entra_id}
        read = await graph_photos.read_photos(run.deps.graph,
                                              {e: recorded.get(e) for e in due})
        run.reads[self.name] = PhotoCheck(read, slot, slots)
        # R7: a photo Graph would not give is an error on that user, its copy kept as is.
        await user_faults.note(run, user_faults.PHOTO, "photos", due, list(read.failures.values()))

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        found = check_of(run)
        return entra if found is None else dataclasses.replace(entra, photos=found.seen())

    async def apply(self, run: Run, applied: base.Applied) -> base.StepOutcome:
        found = check_of(run)
        changes = applied.pending(photos.PHOTO_KINDS)
        if found is None:
            return base.StepOutcome(self.name)
        if changes:
            await _write_blobs(run, found, changes)
        # Photos are not in Graph's delta: such a run's outcome is never reused.
        return base.StepOutcome(self.name, progress=found.summary(), reusable=False)


async def _write_blobs(run: Run, found: PhotoCheck, changes: list[model.Change]) -> None:
    """The blobs of the plan's R16 changes (8 at a time)."""
    blobs = run.deps.photos
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

    await asyncio.gather(*(one(c) for c in changes))


def explained(result: dict[str, Any], user: Mapping[str, Any], settings: model.Settings,
              run: Run) -> dict[str, Any]:
    """`explain`'s answer for `user` with why its photo is or is not copied (R16): said
    when photo sync is on or the user has a copied photo (otherwise nothing is to say)."""
    if not settings.photo_sync and not user.get("photo"):
        return result
    found = check_of(run)
    return photos.add_to_explanation(result, user, settings.photo_sync, settings.enabled,
                                     None if found is None else found.seen())


STEP = PhotosStep()
EVERY_SLOT = PhotosStep(every_slot=True)
"""An on-demand run's: its one user's photo is checked now (R16), not in its slot."""
