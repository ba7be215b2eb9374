"""R16: which profile photos are copied from Entra to Emply.

FAQ ("How does the synchronization of profile pictures from Microsoft Entra ID to Emply
work?"): "The profile picture can only synchronize from Microsoft Entra ID to Emply on
users that are not connected to an employee, as it is the employee who controls the
user, once they are connected." And: "Is it possible to have the profile pictures
synchronize between Emply and Microsoft Entra ID? No, it is not possible."

So, with `photoSync` on and the integration enabled, for a linked active user without an
employee profile whose photo was checked this run (see `photo_slices`): an Entra photo
that is new or whose ETag differs from the one recorded on the user is copied
(`photo_set`); a photo Entra no longer has is removed (`photo_clear`). A linked active
user with an employee profile is skipped (`employee_profile_controls_photo`, counted
once per user and run). Nothing is ever written to Entra. With `photoSync` off, or the
integration disabled (R17), nothing more is copied and the copies made stay: a photo is
removed only when Entra removes it.

The user's `photo` field records what was copied: `{"sha256", "etag", "contentType",
"updatedAt"}`; the bytes are in Blob Storage (`shared.store.photo_blobs`), written
before the field and deleted before it is cleared, so a field never names a blob that
was not written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from shared.reconcile import faq, matching, model, photo_slices, scope

PHOTO_SET = "photo_set"
PHOTO_CLEAR = "photo_clear"
PHOTO_KINDS = frozenset({PHOTO_SET, PHOTO_CLEAR})
# Reasons.
ENTRA_PHOTO_NEW = "entra_photo_new"
ENTRA_PHOTO_CHANGED = "entra_photo_changed"
ENTRA_PHOTO_REMOVED = "entra_photo_removed"
EMPLOYEE_PROFILE_CONTROLS_PHOTO = "employee_profile_controls_photo"
PHOTO_SYNC_OFF = "photo_sync_off"
USER_NOT_SYNCED = model.USER_NOT_SYNCED
NO_ENTRA_PHOTO = "no_entra_photo"

FAQ_WORDS = ("The profile picture can only synchronize from Microsoft Entra ID to Emply on "
             "users that are not connected to an employee, as it is the employee who "
             "controls the user, once they are connected.")


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A user whose photo follows Entra (linked, active, no employee profile)."""

    user_id: str
    entra_id: str
    recorded: Mapping[str, Any] | None
    """The user's `photo` field: what was copied last (None: nothing)."""


Seen = model.EntraPhoto


def recorded_etag(recorded: Mapping[str, Any] | None) -> str | None:
    etag = recorded.get("etag") if recorded else None
    return etag if isinstance(etag, str) else None


def why_not(user: Mapping[str, Any] | None, photo_sync: bool, enabled: bool = True
            ) -> tuple[str, str] | None:
    """Why this Emply user's photo is not copied from Entra (reason, words); None when it
    is (its Entra photo then decides)."""
    if not enabled:
        return model.INTEGRATION_DISABLED, "the integration is disabled: nothing is copied"
    if not photo_sync:
        return PHOTO_SYNC_OFF, ("photo sync is off in the integration settings "
                                "(photoSync): no photo is copied")
    if user is None or not user.get("entraId"):
        return USER_NOT_SYNCED, "the user is not linked to an Entra user"
    if user.get("status", "active") != "active":
        return USER_NOT_SYNCED, "the user is deactivated"
    if user.get("employeeId"):
        return EMPLOYEE_PROFILE_CONTROLS_PHOTO, (
            f"the user is connected to employee {user['employeeId']}: {FAQ_WORDS}")
    return None


def candidates(users: Iterable[model.EmplyUser], entra_ids: Collection[str],
               plan: model.Plan | None = None) -> tuple[list[Target], int]:
    """The users whose photos follow Entra once `plan` is applied (linked, active, no
    employee profile), and how many linked active users an employee profile controls
    instead (in Entra, so their photo would otherwise be copied). Users the plan creates
    are not among them (see `checked`)."""
    links: dict[str, str] = {}
    status: dict[str, str] = {}
    for change in plan.changes if plan is not None else ():
        if change.user_id is None or change.employee_id is not None:
            continue
        if change.kind == model.LINK_USER and change.entra_id:
            links[change.user_id] = change.entra_id
        elif change.kind == model.REACTIVATE_USER:
            status[change.user_id] = "active"
        elif change.kind == model.DEACTIVATE_USER:
            status[change.user_id] = "deactivated"
    targets: list[Target] = []
    controlled = 0
    for user in users:
        entra_id = links.get(user.id) or user.entra_id
        if not entra_id or entra_id not in entra_ids \
                or status.get(user.id, user.status) != "active":
            continue
        if user.employee_id:
            controlled += 1
            continue
        targets.append(Target(user.id, entra_id, user.photo))
    return targets, controlled


def due(emply: model.EmplySnapshot, entra: model.EntraSnapshot, settings: model.Settings,
        *, slots: int, slot: int, only: str | None = None) -> list[str]:
    """The Entra ids whose photos a run checks, decided before it plans: the users whose
    photos follow Entra in this run's slot (`photo_slices`), and every Entra user in a
    configured group whose Emply user this run will create, link or reactivate (R3's
    matching, as the planner does it) without an employee profile: such a user gets its
    photo at once, whatever its slot. A user an employee profile controls is never looked
    at. `only`: the photo of that one Emply user (`explain`)."""
    found, _ = candidates(emply.users, entra.users)
    if only is not None:
        return [t.entra_id for t in found if t.user_id == only]
    wanted = {t.entra_id for t in found if photo_slices.slot_of(t.user_id, slots) == slot}
    linked = {u.entra_id for u in emply.users if u.entra_id and u.status == "active"}
    index = matching.UserIndex(emply.users, settings.tenant_id, emply.employees, entra.users)
    employee_emails = {model.norm(e.email) for e in emply.employees}
    for entra_id, groups in scope.configured_groups_by_user(entra, settings).items():
        user = entra.users.get(entra_id)
        if entra_id in linked or user is None or not scope.in_scope(user, groups, settings):
            continue
        match = index.find(user)
        if match.user is None:  # created, unless an employee without account has the mail
            if match.step == 0 and model.norm(user.mail_or_upn) not in employee_emails:
                wanted.add(entra_id)
        elif not match.user.employee_id:  # linked or reactivated
            wanted.add(entra_id)
    return sorted(wanted)


def checked(plan: model.Plan, emply: model.EmplySnapshot, entra: model.EntraSnapshot
            ) -> tuple[list[Target], int]:
    """The users whose photo this run checked, as `plan` leaves them (those `candidates`
    gives whose photo was read, and the users the plan creates), and how many linked
    active users an employee profile controls."""
    seen = entra.photos or {}
    found, controlled = candidates(emply.users, entra.users, plan)
    out = {t.user_id: t for t in found if t.entra_id in seen}
    for change in plan.changes:
        if change.kind == model.CREATE_USER and change.user_id and change.entra_id \
                and change.entra_id in seen:
            out.setdefault(change.user_id, Target(change.user_id, change.entra_id, None))
    return [out[k] for k in sorted(out)], controlled


def photo_changes(checked: Iterable[Target], seen: Mapping[str, Seen | None], stamp: str
                  ) -> list[model.Change]:
    """The R16 changes for the users checked: `seen` maps their Entra ids to the photo
    Entra has (None: none). A user whose Entra id is not in `seen` is left as it is."""
    changes: list[model.Change] = []
    for target in checked:
        if target.entra_id not in seen:
            continue
        photo = seen[target.entra_id]
        recorded = target.recorded
        if photo is None:
            if recorded is not None:
                changes.append(model.Change(
                    PHOTO_CLEAR, "R16", ENTRA_PHOTO_REMOVED, target.user_id, target.entra_id,
                    before={"photo": dict(recorded)}, after={"photo": None},
                    message="the Entra user has no profile photo any more: removed in Emply"))
            continue
        if photo.etag == recorded_etag(recorded) or photo.sha256 is None:
            continue
        after = {"sha256": photo.sha256, "etag": photo.etag,
                 "contentType": photo.content_type, "updatedAt": stamp}
        new = recorded is None
        changes.append(model.Change(
            PHOTO_SET, "R16", ENTRA_PHOTO_NEW if new else ENTRA_PHOTO_CHANGED,
            target.user_id, target.entra_id,
            before={"photo": None if new else dict(recorded or {})}, after={"photo": after},
            message=("the Entra profile photo is copied to Emply" if new else
                     "the Entra profile photo changed: the new one is copied to Emply")))
    return changes


def with_photos(plan: model.Plan, entra: model.EntraSnapshot, emply: model.EmplySnapshot,
                stamp: str) -> model.Plan:
    """`plan` with the R16 changes after its own, for the photos checked this run
    (`entra.photos`), and the users an employee profile controls counted once each in its
    skips; `plan` itself when no photo was checked (photo sync off)."""
    if entra.photos is None:
        return plan
    targets, controlled = checked(plan, emply, entra)
    skips = dict(plan.skips)
    if controlled:
        skips[EMPLOYEE_PROFILE_CONTROLS_PHOTO] = controlled
    return dataclasses.replace(
        plan, changes=(*plan.changes, *photo_changes(targets, entra.photos, stamp)),
        skips=skips)


def explain_words(user: Mapping[str, Any], photo_sync: bool, enabled: bool,
                  seen: Mapping[str, Seen | None] | None) -> tuple[str, str]:
    """Why this user's photo is or is not copied from Entra (words, FAQ key); `seen`: the
    photos checked for explain (None: not read)."""
    why = why_not(user, photo_sync, enabled)
    if why is not None:
        reason, words = why
        return f"photo not copied ({reason}): {words}", "photos"
    entra_id = user.get("entraId")
    recorded = user.get("photo") if isinstance(user.get("photo"), dict) else None
    photo = seen.get(entra_id) if seen is not None and isinstance(entra_id, str) else None
    if seen is not None and entra_id in seen and photo is None:
        if recorded is not None:
            return (f"photo removed next run ({ENTRA_PHOTO_REMOVED}): the Entra user has no "
                    "profile photo any more", "photos")
        return (f"photo not copied ({NO_ENTRA_PHOTO}): the Entra user has no profile photo",
                "photos")
    etag = recorded_etag(recorded)
    if photo is not None and photo.etag != etag:
        return ("photo copied next run: the Entra profile photo is "
                f"{'new' if recorded is None else 'changed'} (photo_set)", "photos")
    if recorded is not None:
        return (f"photo copied from Entra (sha256 {recorded.get('sha256')}, "
                f"{recorded.get('updatedAt')}); it follows the Entra photo: the user is "
                "linked and has no employee profile", "photos")
    return ("photo follows Entra (the user is linked and has no employee profile); no "
            "photo copied yet", "photos")


def add_to_explanation(result: dict[str, Any], user: Mapping[str, Any], photo_sync: bool,
                       enabled: bool, seen: Mapping[str, Seen | None] | None
                       ) -> dict[str, Any]:
    """`explain`'s answer with R16's words, the user's `photo` field and the FAQ answer."""
    words, key = explain_words(user, photo_sync, enabled, seen)
    answers = [faq.answer(key)]
    if why_not(user, photo_sync, enabled) is None:  # it follows Entra: and only that way
        answers.append(faq.answer("photos_one_way"))
    return {**result, "why": [*result.get("why", ()), words], "photo": user.get("photo"),
            "faq": [*result.get("faq", ()), *answers]}
