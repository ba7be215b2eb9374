"""Per-user faults between runs (R7), pure: the back-off, the records a run leaves, the
report's errors, and the writes Graph refused as a privileged user's (R9), which the
planner does not plan again until they change."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from shared.graph import failures
from shared.reconcile import explain, model, plan_model, planner
from shared.run import refused_writes, user_faults
from tests.unit.builders import NOW
from tests.unit.test_faq_writeback import ray_employee, ray_entra, world

MIN = dt.timedelta(minutes=1)


def _failure(entra_id: str, status: int | None = 403, code: str | None = "ErrorAccessDenied",
             reason: str = failures.MAILBOX_UNAVAILABLE) -> failures.UserReadFailure:
    return failures.failure(entra_id, reason, status, code, "refused",
                            "/users/{id}/calendars")


def test_the_back_off_doubles_from_half_an_hour_up_to_a_day() -> None:
    waits = [user_faults.backoff(n) for n in range(1, 9)]
    assert [w / MIN for w in waits] == [30, 60, 120, 240, 480, 960, 1440, 1440]
    assert user_faults.backoff(10_000) == dt.timedelta(days=1)


def test_a_failure_counts_up_a_success_clears_and_waiting_users_are_kept() -> None:
    first = user_faults.Faults().after(user_faults.MAILBOX, ["a", "b"], {"a": _failure("a")},
                                       NOW)
    (record,) = first.of(user_faults.MAILBOX).values()
    assert (record.attempts, record.next_try, record.code) == (1, NOW + 30 * MIN,
                                                               "ErrorAccessDenied")
    assert first.waiting(user_faults.MAILBOX, NOW + 10 * MIN) == {"a": record}
    # A run 29 minutes on (the next timer run, started a little early) reads "a" again.
    assert first.waiting(user_faults.MAILBOX, NOW + 29 * MIN) == {}
    skipped = first.after(user_faults.MAILBOX, ["b"], {}, NOW + 10 * MIN)
    assert skipped == first  # "a" was not asked for: its record stands
    again = first.after(user_faults.MAILBOX, ["a"], {"a": _failure("a")}, NOW + 30 * MIN)
    record = again.of(user_faults.MAILBOX)["a"]
    assert (record.attempts, record.first_at, record.next_try) == (
        2, NOW, NOW + 90 * MIN)
    assert again.after(user_faults.MAILBOX, ["a"], {}, NOW + 2 * 60 * MIN).of(
        user_faults.MAILBOX) == {}
    # The photo records are another kind: the mailbox's do not touch them.
    both = again.after(user_faults.PHOTO, ["a"], {"a": _failure(
        "a", 503, "serviceNotAvailable", failures.PHOTO_UNAVAILABLE)}, NOW)
    assert set(both.of(user_faults.PHOTO)) == {"a"} and set(both.of(user_faults.MAILBOX)) == {"a"}


def test_a_record_nobody_asks_about_any_more_is_dropped_a_day_after_its_next_try() -> None:
    faults = user_faults.Faults().after(user_faults.MAILBOX, ["a"], {"a": _failure("a")}, NOW)
    late = NOW + 30 * MIN + dt.timedelta(days=1)
    assert faults.after(user_faults.MAILBOX, [], {}, late).of(user_faults.MAILBOX)
    assert not faults.after(user_faults.MAILBOX, [], {}, late + MIN).of(user_faults.MAILBOX)


def test_the_records_round_trip_and_an_unreadable_part_counts_as_empty() -> None:
    faults = user_faults.Faults().after(
        user_faults.MAILBOX, ["a"],
        {"a": dataclasses.replace(_failure("a", None, "paging_loop"), calendar_id="c1",
                                  temporary=True)}, NOW)
    assert user_faults.Faults.from_json(faults.to_json()) == faults
    for bad in (None, [], {"format": 9, "reads": {}}, {"format": 1, "reads": []}):
        assert user_faults.Faults.from_json(bad) == user_faults.Faults()
    stored = faults.to_json()
    stored["reads"]["mailbox"]["a"]["attempts"] = "many"
    stored["reads"]["mailbox"]["b"] = {**stored["reads"]["mailbox"]["a"], "attempts": 2}
    assert set(user_faults.Faults.from_json(stored).of(user_faults.MAILBOX)) == {"b"}


def test_each_failure_is_an_error_on_its_user_with_its_attempts_and_next_try() -> None:
    failed = [_failure("a"), _failure("b", 404, "ErrorInvalidUser")]
    records = user_faults.Faults().after(user_faults.MAILBOX, ["a", "b", "c"],
                                         {f.entra_id: f for f in failed}, NOW)
    errors = user_faults.errors("calendars", 3, failed, records.of(user_faults.MAILBOX))
    assert [(e["reason"], e["entraId"], e["graphCode"], e["temporary"], e["attempts"])
            for e in errors] == [
        ("mailbox_unavailable", "a", "ErrorAccessDenied", False, 1),
        ("mailbox_unavailable", "b", "ErrorInvalidUser", True, 1)]
    assert errors[0]["nextTry"] == "2026-11-26T12:30:00.000Z"


@pytest.mark.parametrize(("asked", "failed", "one_error"), [
    (3, [_failure("a"), _failure("b"), _failure("c")], True),
    (3, [_failure("a"), _failure("b")], False),  # one user was read: not a permission
    (1, [_failure("a")], False),  # one user alone says nothing of the app
    (2, [_failure("a"), _failure("b", 403, "Authorization_RequestDenied")], False),
    (2, [_failure("a", 503, "serviceNotAvailable"),
         _failure("b", 503, "serviceNotAvailable")], False),
], ids=["all alike", "one read", "a single user", "two codes", "not a 403"])
def test_every_user_refused_alike_is_one_error_for_the_run(
        asked: int, failed: list[failures.UserReadFailure], one_error: bool) -> None:
    errors = user_faults.errors("photos", asked, failed, {})
    if one_error:
        (error,) = errors
        assert (error["reason"], error["count"], error["graphStatus"]) == (
            "graph_read_forbidden", asked, 403)
        assert "ProfilePhoto.Read.All" in error["message"]
    else:
        assert [e["entraId"] for e in errors] == [f.entra_id for f in failed]


# --- R9: writes Graph refused as a privileged user's ---------------------------------


def _plan(entra: model.EntraSnapshot, emply: model.EmplySnapshot, settings: model.Settings,
          refused: dict[str, model.RefusedWrite] | None = None) -> model.Plan:
    entra = dataclasses.replace(entra, refused_writes=refused)
    return planner.plan(entra, emply, settings, model.SyncState(), NOW)


def test_a_refused_write_is_not_planned_again_until_it_changes() -> None:
    snapshots = world(ray_entra(), ray_employee(job_title="Admin"))
    (change,) = [c for c in _plan(*snapshots).changes if c.kind == model.ENTRA_UPDATE]
    records = refused_writes.after({}, [change], [change], NOW)
    stored = refused_writes.loaded(refused_writes.to_json(records), NOW + MIN)
    assert stored == records and list(stored) == [change.entra_id]

    again = _plan(*snapshots, stored)
    assert [c.kind for c in again.changes if c.kind in model.ENTRA_KINDS] == []
    assert again.skips[model.ENTRA_USER_PROTECTED] == 1 and again.errors == ()
    docs = {"u-ray": {"id": "u-ray", "username": "ray.ross@contoso.com",
                      "employeeId": ray_employee().id, "entraId": change.entra_id}}
    entra = dataclasses.replace(snapshots[0], refused_writes=stored)
    why = explain.explain("u-ray", entra, snapshots[1], docs, snapshots[2], again, NOW)["why"]
    assert any("entra_user_protected" in w and "2026-11-26" in w for w in why), why

    # Emply's profile changes: another write, which is planned (and sent) again.
    changed = world(ray_entra(), ray_employee(job_title="Chief Admin"))
    assert [c.after for c in _plan(*changed, stored).changes
            if c.kind == model.ENTRA_UPDATE] == [{"jobTitle": "Chief Admin"}]
    # So does a change to the Entra user's fields the write concerns.
    moved = world(ray_entra(job_title="Admin (acting)"), ray_employee(job_title="Admin"))
    assert len([c for c in _plan(*moved, stored).changes
                if c.kind == model.ENTRA_UPDATE]) == 1


def test_a_refusal_is_forgotten_after_a_week_and_dropped_once_the_user_is_written() -> None:
    change = model.Change(model.ENTRA_DELETE, "R9", model.ENTRA_DELETE, "u-1", "a-1",
                          {"userPrincipalName": "x@contoso.com"}, {})
    records = refused_writes.after({}, [change], [change], NOW)
    assert records["a-1"].digest == plan_model.write_digest(change)
    week = NOW + refused_writes.RETRY_AFTER
    assert refused_writes.loaded(refused_writes.to_json(records), week - MIN)
    assert refused_writes.loaded(refused_writes.to_json(records), week) == {}
    assert refused_writes.after(records, [], [], NOW + MIN) == records
    assert refused_writes.after(records, [change], [], NOW + MIN) == {}  # written now
    for bad in (None, {"format": 1, "users": {"a-1": {"kind": "entra_nope"}}},
                {"format": 1, "users": {"a-1": {"kind": "entra_delete", "digest": "d",
                                                "at": "yesterday"}}}):
        assert refused_writes.loaded(bad, NOW) == {}


def test_the_digest_tells_writes_apart() -> None:
    one = model.Change(model.ENTRA_UPDATE, "R9", model.ENTRA_UPDATE, "u-1", "a-1",
                       {"jobTitle": None}, {"jobTitle": "A"})
    assert plan_model.write_digest(one) == plan_model.write_digest(dataclasses.replace(
        one, message="other words"))
    for other in (dataclasses.replace(one, after={"jobTitle": "B"}),
                  dataclasses.replace(one, before={"jobTitle": "C"}),
                  dataclasses.replace(one, entra_id="a-2"),
                  dataclasses.replace(one, kind=model.ENTRA_DELETE)):
        assert plan_model.write_digest(other) != plan_model.write_digest(one)
