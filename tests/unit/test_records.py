"""The typed sync state, residual and run report (`shared.run.state`): their stored and
reported shapes, the state the code before them wrote, and what is unreadable."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from shared.reconcile import model
from shared.run import report as run_report
from shared.run import state as sync_state
from tests.unit import builders as b

HEAD = {"version": 2, "tenantId": b.TENANT,
        "organization": {"id": b.TENANT, "onPremisesSyncEnabled": False,
                         "verifiedDomains": ["contoso.com"]},
        "deltaLinks": {"users": "https://graph/users/delta?$deltatoken=u",
                       "groups": "https://graph/groups/delta?$deltatoken=g"}}
HELD = {"kind": "deactivate_user", "userId": "u1", "entraId": "p1", "reason": "held_by_guard",
        "rule": "R7", "before": {"status": "active"}, "after": {"status": "deactivated"},
        "message": "held"}
RESIDUAL = {"runId": "20310304T090000Z-abcdef01", "date": "2031-03-04", "emplyVersion": "v7",
            "tenantId": b.TENANT, "organization": HEAD["organization"],
            "status": "needs_approval", "held": [HELD],
            "errors": [{"reason": "ambiguous_match", "message": "two", "entraId": "p2"}],
            "skips": {"employee_profile_controls_roles": 2}}
# Exactly what the code before `shared.run.state` wrote (no "format"), naming its index.
OLD_STATE = {"mirrorHead": HEAD, "index": "0" * 32,
             "previousMapping": {"g1": "employee", "g2": None},
             "lastRunId": "20310304T090000Z-abcdef01", "residual": RESIDUAL}


# What the old state is written back as: its fields, and R7's (empty) window and digests.
WRITTEN_AGAIN = {**OLD_STATE, "indexDelta": None, "guardWindow": [], "heldDigest": None,
                 "residual": {**OLD_STATE["residual"], "heldDigest": None, "until": None}}


def test_a_state_written_before_the_format_reads_and_writes_back_the_same() -> None:
    state = sync_state.SyncState.from_json(OLD_STATE)
    assert state.mirror_head == HEAD and state.index == "0" * 32
    assert state.previous_mapping == {"g1": "employee", "g2": None}
    assert state.residual is not None and state.residual.date == dt.date(2031, 3, 4)
    assert state.residual.outcome.held == (HELD,)
    assert state.to_json() == {"format": sync_state.FORMAT, **WRITTEN_AGAIN}
    assert sync_state.SyncState.from_json(state.to_json()) == state


def test_no_state_is_the_empty_state() -> None:
    assert sync_state.SyncState.from_json(None) == sync_state.SyncState()
    assert sync_state.SyncState().previous_mirror({"users": {}, "groups": {}}) is None


@pytest.mark.parametrize("value, words", [
    ([OLD_STATE], "expected a JSON object, got list"),
    ("state", "expected a JSON object, got str"),
    ({**OLD_STATE, "format": 5}, "state format 5, this code reads 4"),
    ({**OLD_STATE, "format": "4"}, "state format '4'"),
])
def test_another_format_or_shape_is_unreadable(value: Any, words: str) -> None:
    with pytest.raises(sync_state.StateUnreadable, match=words):
        sync_state.SyncState.from_json(value)


@pytest.mark.parametrize("part, value", [
    ("residual", {**RESIDUAL, "date": "yesterday"}),
    ("residual", {**RESIDUAL, "emplyVersion": None}),
    ("residual", {**RESIDUAL, "held": {"u1": HELD}}),
    ("residual", {**RESIDUAL, "organization": "contoso"}),
    ("residual", ["not", "a", "residual"]),
    ("previousMapping", {"g1": 3}),
    ("previousMapping", ["g1"]),
    ("mirrorHead", "head"),
    ("index", 42),
])
def test_a_malformed_part_counts_as_absent(part: str, value: Any) -> None:
    state = sync_state.SyncState.from_json({**OLD_STATE, part: value})
    field = {"residual": "residual", "previousMapping": "previous_mapping",
             "mirrorHead": "mirror_head", "index": "index"}[part]
    assert getattr(state, field) is None
    # The rest of the state stands.
    others = {"residual", "previous_mapping", "mirror_head", "index"} - {field}
    assert all(getattr(state, name) is not None for name in others)


def test_a_state_of_format_3_reads_without_its_snapshot() -> None:
    """Format 3 named a snapshot of another shape: that run reads both sides whole."""
    old = {**OLD_STATE, "format": 3, "snapshot": "0" * 32}
    del old["index"]
    state = sync_state.SyncState.from_json(old)
    assert state.index is None and state.mirror_head == HEAD and state.residual is not None


def test_the_previous_mirror_is_the_index_mirror_with_the_states_head() -> None:
    state = sync_state.SyncState.from_json(OLD_STATE)
    users = {"p1": ["p1", "p1@contoso.com", *[None] * 9]}
    groups = {"g1": {"id": "g1", "displayName": "G1", "members": ["p1"]}}
    stale = {**HEAD, "deltaLinks": {"users": "older", "groups": "older"}}
    mirror = state.previous_mirror({**stale, "users": users, "groups": groups})
    assert mirror == {**HEAD, "users": users, "groups": groups}
    assert mirror is not None and mirror["users"] is users  # shared, not copied
    assert state.previous_mirror(None) is None
    legacy = sync_state.SyncState.from_json({"mirror": {**HEAD, "users": users, "groups": groups}})
    assert legacy.previous_mirror(None) == mirror


def test_after_an_unchanged_run_only_the_delta_links_and_the_run_id_move() -> None:
    state = sync_state.SyncState.from_json(OLD_STATE)
    links = {"users": "u2", "groups": "g2"}
    after = state.after_unchanged(links, "run-2")
    assert after.to_json() == {"format": sync_state.FORMAT, **WRITTEN_AGAIN, "lastRunId": "run-2",
                               "mirrorHead": {**HEAD, "deltaLinks": links}}
    assert state.to_json()["mirrorHead"] == HEAD  # the record it came from is unchanged


def test_a_residual_is_reusable_on_its_utc_date_without_approval_only() -> None:
    residual = sync_state.Residual.from_json(RESIDUAL)
    assert residual is not None
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert residual.reusable_on(dt.datetime(2031, 3, 4, 23, 59, 59, tzinfo=dt.UTC),
                                approve=None)
    # 01:30 on the 5th in UTC+2 is still the 4th in UTC.
    assert residual.reusable_on(dt.datetime(2031, 3, 5, 1, 30, tzinfo=plus_two), approve=None)
    assert not residual.reusable_on(dt.datetime(2031, 3, 5, 0, 0, 1, tzinfo=dt.UTC),
                                    approve=None)
    assert not residual.reusable_on(dt.datetime(2031, 3, 4, 12, tzinfo=dt.UTC), approve=1)


def test_a_residual_is_recorded_only_with_a_known_emply_version() -> None:
    plan = model.Plan(changes=(), errors=(model.Problem("ambiguous_match", "two"),),
                      skips={"employee_profile_controls_roles": 1})
    started = dt.datetime(2031, 3, 4, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    made = sync_state.residual(plan, run_id="r", started=started, tenant_id=b.TENANT,
                            emply_version="v1", organization={"id": b.TENANT})
    assert made is not None and made.date == dt.date(2031, 3, 5)  # the UTC date
    assert made.to_json()["errors"] == [{"reason": "ambiguous_match", "message": "two"}]
    assert sync_state.Residual.from_json(made.to_json()) == made
    assert sync_state.residual(plan, run_id="r", started=started, tenant_id=b.TENANT,
                            emply_version=None, organization={}) is None


REPORT_KEYS = ["runId", "trigger", "status", "dryRun", "startedAt", "finishedAt",
               "durationMs", "counts", "changes", "held", "errors", "skips", "entraRead",
               "reusedPlanOf", "planned"]


def test_a_reports_keys_appear_as_the_run_gets_there() -> None:
    running = run_report.RunReport(run_id="r1", trigger="timer", dry_run=False,
                                started_at="2031-03-04T09:00:00.000Z")
    assert running.to_json() == {
        "runId": "r1", "trigger": "timer", "status": "running", "dryRun": False,
        "startedAt": "2031-03-04T09:00:00.000Z", "finishedAt": None, "counts": {},
        "changes": [], "held": [], "errors": []}

    outcome = run_report.Outcome("needs_approval", (HELD,), (),
                                 {"employee_profile_controls_roles": 1})
    read = run_report.EntraReadSummary(full_read=True, reason="initial", requests=5, throttled=1)
    warning = {"reason": "sync_state_unreadable", "message": "gone"}
    changes = [{"kind": "create_user", "userId": "u9"}]
    planned = running.with_outcome(outcome, read, {"create_user": 1}, warnings=(warning,))
    done = planned.with_error({"reason": "approval_unused", "message": "none held"})
    finished = dataclasses.replace(done, changes=changes, duration_ms=1000,
                                   finished_at="2031-03-04T09:00:01.000Z").to_json()
    assert list(finished) == [k for k in REPORT_KEYS if k not in ("reusedPlanOf", "planned")]
    assert finished["status"] == "needs_approval" and finished["counts"] == {"create_user": 1}
    assert finished["changes"] is changes  # an initial sync's changes are not copied
    assert finished["errors"] == [warning, {"reason": "approval_unused",
                                            "message": "none held"}]
    assert finished["entraRead"] == {"fullRead": True, "reason": "initial", "requests": 5,
                                     "throttled": 1}

    failed = planned.failed({"reason": "graph_read_failed", "message": "503"}, changes)
    as_json = failed.to_json()
    assert as_json["status"] == "failed" and as_json["changes"] == []
    assert as_json["counts"] == {} and as_json["planned"] == changes
    assert as_json["errors"][-1]["reason"] == "graph_read_failed"
    assert as_json["held"] == [HELD]  # what was held is still shown


def test_the_guard_window_and_held_digest_round_trip_and_bad_entries_are_dropped() -> None:
    at = dt.datetime(2031, 3, 4, 9, 0, tzinfo=dt.UTC)
    state = sync_state.SyncState(recent_deactivations=((at, 9),), held_digest="0123456789ab")
    stored = state.to_json()
    assert stored["guardWindow"] == [{"at": "2031-03-04T09:00:00Z", "count": 9}]
    assert sync_state.SyncState.from_json(stored) == state
    assert state.planner_state().recent_deactivations == ((at, 9),)
    assert state.planner_state().held_digest == "0123456789ab"
    broken = {**stored, "guardWindow": [{"at": "yesterday", "count": 3}, {"count": True},
                                        "x", {"at": "2031-03-04T10:00:00Z", "count": 2}]}
    assert sync_state.SyncState.from_json(broken).recent_deactivations == (
        (at + dt.timedelta(hours=1), 2),)


def test_a_residual_that_holds_is_reusable_only_until_the_window_moves() -> None:
    until = dt.datetime(2031, 3, 4, 15, 0, tzinfo=dt.UTC)
    residual = sync_state.Residual.from_json({**RESIDUAL, "until": "2031-03-04T15:00:00Z"})
    assert residual is not None and residual.until == until
    assert residual.reusable_on(until - dt.timedelta(seconds=1), approve=None)
    assert not residual.reusable_on(until, approve=None)
    assert sync_state.Residual.from_json({**RESIDUAL, "until": "soon"}) is None
