"""R16, the FAQ's profile-picture answers, as tables over the pure planning
(`shared.reconcile.photos`) and the slices (`shared.reconcile.photo_slices`).

"The profile picture can only synchronize from Microsoft Entra ID to Emply on users that
are not connected to an employee, as it is the employee who controls the user, once
they are connected." — "Is it possible to have the profile pictures synchronize between
Emply and Microsoft Entra ID? No, it is not possible."
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.reconcile import convert, model, photo_slices, photos
from tests.unit import builders

STAMP = "2026-12-02T05:00:00Z"
RECORDED = {"sha256": "aa", "etag": 'W/"1"', "contentType": "image/jpeg",
            "updatedAt": "2026-12-01T00:00:00Z"}


def user(uid: str = "u-anna", **kw: Any) -> dict[str, Any]:
    return {"id": uid, "username": f"{uid}@contoso.com", "status": "active",
            "entraId": f"e-{uid}", "employeeId": None, "photo": None, **kw}


def seen(etag: str = 'W/"1"', sha: str | None = None) -> photos.Seen:
    return photos.Seen(etag, "image/jpeg", sha)


# --- who follows Entra: (the Emply user, counted as a target, counted as controlled)
CANDIDATES = [
    ("linked, active, no employee profile: follows Entra", user(), True, False),
    ("connected to an employee: the employee controls the picture",
     user(employeeId="e-1"), False, True),
    ("not linked (external or manual user)", user(entraId=None), False, False),
    ("deactivated", user(status="deactivated"), False, False),
    ("linked to an Entra user that no longer exists", user(entraId="e-gone"), False, False),
]


@pytest.mark.parametrize(("case", "doc", "target", "controlled"), CANDIDATES,
                         ids=[c[0] for c in CANDIDATES])
def test_only_linked_active_users_without_employee_follow_entra(
    case: str, doc: dict[str, Any], target: bool, controlled: bool,
) -> None:
    found, count = photos.candidates([convert.emply_user(doc)], {"e-u-anna"})
    assert ([t.user_id for t in found] == ["u-anna"]) is target, case
    assert count == int(controlled), case


# --- what a check finds: (recorded field, what Entra has) → (kind, reason) or None
CHANGES = [
    ("a new photo is copied", None, seen(sha="bb"), (photos.PHOTO_SET, photos.ENTRA_PHOTO_NEW)),
    ("a changed photo (new ETag) is copied", RECORDED, seen('W/"2"', "bb"),
     (photos.PHOTO_SET, photos.ENTRA_PHOTO_CHANGED)),
    ("an unchanged photo (same ETag) is left alone", RECORDED, seen(), None),
    ("a removed photo is removed", RECORDED, None,
     (photos.PHOTO_CLEAR, photos.ENTRA_PHOTO_REMOVED)),
    ("no photo either side: nothing", None, None, None),
]


@pytest.mark.parametrize(("case", "recorded", "entra", "expected"), CHANGES,
                         ids=[c[0] for c in CHANGES])
def test_photo_changes(case: str, recorded: dict[str, Any] | None,
                       entra: photos.Seen | None, expected: tuple[str, str] | None) -> None:
    target = photos.Target("u-anna", "e-anna", recorded)
    changes = photos.photo_changes([target], {"e-anna": entra}, STAMP)
    assert [(c.kind, c.reason) for c in changes] == ([expected] if expected else []), case
    for change in changes:
        assert change.rule == "R16" and change.user_id == "u-anna"
        if change.kind == photos.PHOTO_SET:
            assert change.after == {"photo": {"sha256": "bb", "etag": entra and entra.etag,
                                              "contentType": "image/jpeg",
                                              "updatedAt": STAMP}}
        else:
            assert change.after == {"photo": None}


def test_a_user_not_checked_this_run_is_left_as_it_is() -> None:
    target = photos.Target("u-anna", "e-anna", RECORDED)
    assert photos.photo_changes([target], {}, STAMP) == []


def change(kind: str, uid: str, entra: str, **after: Any) -> model.Change:
    return model.Change(kind, "R3", "x", uid, entra, after=after)


def test_a_run_checks_its_slot_and_every_user_it_links_creates_or_reactivates() -> None:
    docs = [user(f"u-{n}") for n in range(40)]
    docs.append(user("u-back", status="deactivated"))
    docs.append(user("u-new-link", entraId=None))
    docs.append(user("u-other-group", entraId=None))
    emply = convert.emply_snapshot({"users": docs})
    ids = [*(f"e-u-{n}" for n in range(40)), "e-u-back", "e-link", "e-created"]
    entra = builders.tenant([builders.entra_user(i) for i in [*ids, "e-outside"]],
                            {"employees": ids})
    settings = builders.settings({"employees": "employee"})
    slots, slot = 4, 1
    in_slot = {f"u-{n}" for n in range(40) if photo_slices.slot_of(f"u-{n}", slots) == slot}
    assert 0 < len(in_slot) < 39  # a slice, not everyone
    # Before the plan: this run's slot, and every member of a configured group no active
    # user is linked to (it may be linked, created or reactivated by this run).
    due = photos.due(emply, entra, settings, slots=slots, slot=slot)
    assert set(due) == {f"e-{u}" for u in in_slot} | {"e-u-back", "e-link", "e-created"}
    plan = model.Plan(changes=(
        change(model.REACTIVATE_USER, "u-back", "e-u-back"),
        change(model.LINK_USER, "u-new-link", "e-link"),
        change(model.CREATE_USER, "u-created", "e-created"),
        change(model.DEACTIVATE_USER, "u-3", "e-u-3"),
    ))
    seen_now = dataclasses.replace(entra, photos={e: seen(sha="bb") for e in due})
    checked, _ = photos.checked(plan, emply, seen_now)
    assert {t.user_id for t in checked} == (in_slot - {"u-3"}) | {
        "u-back", "u-new-link", "u-created"}
    assert photos.due(emply, entra, settings, slots=slots, slot=slot, only="u-7") == ["e-u-7"]


def test_employee_profile_users_are_counted_once_in_skips() -> None:
    emply = convert.emply_snapshot({"users": [user("u-a", employeeId="x-1"),
                                              user("u-b", employeeId="x-2")]})
    entra = builders.tenant([builders.entra_user("e-u-a"), builders.entra_user("e-u-b")], {})
    plan = model.Plan(changes=(), skips={"employee_profile_controls_roles": 2})
    merged = photos.with_photos(plan, dataclasses.replace(entra, photos={}), emply, STAMP)
    assert merged.skips == {"employee_profile_controls_roles": 2,
                            photos.EMPLOYEE_PROFILE_CONTROLS_PHOTO: 2}
    assert photos.with_photos(plan, entra, emply, STAMP) is plan  # photo sync off


WHY = [
    ("photo sync off", user(), False, True, photos.PHOTO_SYNC_OFF),
    ("integration removed (R17)", user(), True, False, model.INTEGRATION_DISABLED),
    ("not linked", user(entraId=None), True, True, photos.USER_NOT_SYNCED),
    ("deactivated", user(status="deactivated"), True, True, photos.USER_NOT_SYNCED),
    ("employee profile", user(employeeId="e-1"), True, True,
     photos.EMPLOYEE_PROFILE_CONTROLS_PHOTO),
    ("follows Entra", user(), True, True, None),
]


@pytest.mark.parametrize(("case", "doc", "on", "enabled", "reason"), WHY,
                         ids=[c[0] for c in WHY])
def test_why_a_photo_is_not_copied(case: str, doc: dict[str, Any], on: bool, enabled: bool,
                                   reason: str | None) -> None:
    why = photos.why_not(doc, on, enabled)
    assert (why[0] if why else None) == reason, case
    words, key = photos.explain_words(doc, on, enabled, None)
    assert words.startswith("photo not copied" if reason else "photo follows Entra")
    assert key == "photos"


def test_explain_says_no_entra_photo() -> None:
    words, _ = photos.explain_words(user(), True, True, {"e-u-anna": None})
    assert words == ("photo not copied (no_entra_photo): the Entra user has no profile "
                     "photo")


# --- slices ----------------------------------------------------------------------------
SCHEDULES = [
    ("0 */30 * * * *", 48, 24),  # the default: every user at least twice a day
    ("0 0 * * * *", 24, 12),
    ("0 */5 * * * *", 288, 144),
    ("0 0 3 * * *", 1, 1),
    ("0 0 0,6,12,18 * * *", 4, 2),
    ("0 15-45/15 8-17 * * *", 30, 15),
    ("0 0 9 * * 1-5", None, 1),  # weekdays only: not daily, everyone every run
    ("nonsense", None, 1),
]


@pytest.mark.parametrize(("schedule", "runs", "slots"), SCHEDULES,
                         ids=[s[0] for s in SCHEDULES])
def test_slots_from_the_schedule(schedule: str, runs: int | None, slots: int) -> None:
    ticks = photo_slices.ticks_per_day(schedule)
    assert (len(ticks) if ticks is not None else None) == runs
    assert photo_slices.slots_for(schedule) == slots


@settings(deadline=None)
@given(st.sampled_from([s for s, _, _ in SCHEDULES]), st.integers(0, 10_000),
       st.text(min_size=1, max_size=12))
def test_every_user_is_checked_at_least_once_in_any_day_of_runs(
    schedule: str, start_day: int, user_id: str,
) -> None:
    """Over the scheduled ticks of any UTC day, a user's slot comes round (twice when the
    schedule has two ticks or more per slot)."""
    slots = photo_slices.slots_for(schedule)
    mine = photo_slices.slot_of(user_id, slots)
    assert 0 <= mine < slots
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=start_day)
    ticks = photo_slices.ticks_per_day(schedule) or [0]
    hits = sum(photo_slices.current_slot(schedule, day + dt.timedelta(seconds=s)) == mine
               for s in ticks)
    assert hits >= (2 if len(ticks) >= 2 else 1)


def test_the_slot_is_stable_and_spreads_users_evenly() -> None:
    assert photo_slices.slot_of("u-megan", 24) == photo_slices.slot_of("u-megan", 24)
    sizes = [0] * 24
    for n in range(24_000):
        sizes[photo_slices.slot_of(f"u-{n}", 24)] += 1
    assert min(sizes) > 850 and max(sizes) < 1150  # about 1,000 each
