"""R15 as a table over the pure planner: FAQ "How do I synchronize the calendar with
MS365? ... Additionally, Emply can create events in the MS365 calendar." — each case a
user, an outbound event (as Emply sent it and as the sync stored it), what M365 holds
when the run looked it up, and what the plan does with it; and properties: a plan's
outcome applied, the next plan writes nothing to M365 again."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.reconcile import event_push, model, outbound, planner
from shared.reconcile.outbound import OutboundCopy
from tests.unit import builders as b
from tests.unit.test_faq_calendars import ANNA, MAIN, ON, STAFF, anna

EVENT = model.OutboundEvent("o-1", "u-anna", "Interview", "2026-12-02T10:00:00Z",
                            "2026-12-02T11:00:00Z")
CANDIDATE = ("lee.gu@fabrikam.com", "Lee Gu")


def pushed(event: model.OutboundEvent = EVENT, **kw: Any) -> model.OutboundEvent:
    """`event` as the sync leaves it once created: its Graph id and digests stored."""
    done = dataclasses.replace(event, graph_id="AAMk1", status="created")
    return dataclasses.replace(done, pushed=outbound.digests(done), **kw)


MOVED = dataclasses.replace(pushed(), start="2026-12-03T10:00:00Z", end="2026-12-03T11:00:00Z")


def plan_of(user: model.EmplyUser | None = None, *, event: model.OutboundEvent = EVENT,
            cfg: model.Settings = ON, mailbox: object = (MAIN,),
            entra: model.EntraSnapshot = STAFF,
            found: dict[str, OutboundCopy | None] | None = None) -> model.Plan:
    snapshot = dataclasses.replace(entra, mailboxes={"anna": mailbox},  # type: ignore[dict-item]
                                   outbound=found)
    users = (user,) if user is not None else ()
    return planner.plan(snapshot, model.EmplySnapshot(users, (), b.ROLES, outbound=(event,)),
                        cfg, model.SyncState(), b.NOW)


def pushes(plan: model.Plan) -> list[tuple[str, object, object]]:
    return [(c.reason, c.after.get("status"), c.after.get("action")) for c in plan.changes
            if c.kind == model.EVENT_PUSH]


def copy(event: model.OutboundEvent, graph_id: str = "AAMk1") -> OutboundCopy:
    """M365's copy of `event` as its mark says: this content."""
    return OutboundCopy(graph_id, outbound.content_digest(event))


DEACTIVATED = {"user": anna(status="deactivated", deactivated_by="emply")}
CASES = [
    # Created once.
    pytest.param({}, [("outbound_event", "created", "create")], id="linked_active_pushed"),
    pytest.param(DEACTIVATED, [("user_deactivated", "failed", "none")],
                 id="deactivated_fails"),
    pytest.param({"user": b.emply_user("u-anna"), "entra": b.tenant([], {"grp-staff": []})},
                 [("user_not_linked", "failed", "none")], id="unlinked_fails"),
    pytest.param({"user": anna(calendar_sync=False)},
                 [("calendar_sync_off", "failed", "none")], id="user_flag_off_fails"),
    pytest.param({"cfg": dataclasses.replace(ON, calendar_sync=False)},
                 [("calendar_sync_off", "failed", "none")], id="setting_off_fails"),
    pytest.param({"mailbox": None}, [("mailbox_not_in_cloud", "failed", "none")],
                 id="mailbox_not_in_cloud_fails"),
    pytest.param({"cfg": dataclasses.replace(ON, enabled=False)}, [],
                 id="integration_removed_pushes_nothing"),
    pytest.param({"event": dataclasses.replace(EVENT, graph_id="AAMk1")},
                 [("already_created", "created", "none")], id="graph_id_never_posted_again"),
    pytest.param({"event": pushed()}, [], id="created_stays"),
    pytest.param({"event": dataclasses.replace(EVENT, status="created", graph_id="AAMk1")},
                 [("already_created", "created", "none")],
                 id="created_before_digests_were_kept_gets_them"),
    pytest.param({"event": dataclasses.replace(EVENT, status="failed")}, [],
                 id="failed_is_final"),
    pytest.param({"user": b.emply_user("u-anna", username="anna@contoso.com")}, [],
                 id="linked_by_this_run_waits_for_the_next"),
    pytest.param({"entra": b.tenant([ANNA], {"grp-staff": []})},
                 [("user_deactivated", "failed", "none")], id="deactivated_by_this_run_fails"),
    # A POST whose answer was lost: found by its mark, not POSTed again.
    pytest.param({"event": dataclasses.replace(EVENT, attempted_at="2026-11-26T11:00:00Z"),
                  "found": {"o-1": copy(EVENT, "AAMk9")}},
                 [("found_in_m365", "created", "none")], id="lost_post_found_by_its_mark"),
    pytest.param({"event": dataclasses.replace(EVENT, attempted_at="2026-11-26T11:00:00Z"),
                  "found": {"o-1": None}},
                 [("outbound_event", "created", "create")], id="lost_post_never_landed"),
    pytest.param({"event": dataclasses.replace(EVENT, attempted_at="2026-11-26T11:00:00Z")},
                 [], id="lost_post_not_looked_up_waits"),
    # Moved, changed: PATCH of what differs.
    pytest.param({"event": MOVED}, [("event_changed", "updated", "update")], id="moved"),
    pytest.param({"event": MOVED, **DEACTIVATED}, [("user_deactivated", "failed", "none")],
                 id="user_deactivated_between_push_and_move"),
    pytest.param({"event": dataclasses.replace(MOVED, attempted_at="2026-11-26T11:00:00Z"),
                  "found": {"o-1": copy(MOVED)}},
                 [("event_changed", "updated", "none")], id="lost_patch_landed"),
    pytest.param({"event": dataclasses.replace(MOVED, attempted_at="2026-11-26T11:00:00Z"),
                  "found": {"o-1": copy(pushed())}},
                 [("event_changed", "updated", "update")], id="lost_patch_never_landed"),
    pytest.param({"event": MOVED, "found": {"o-1": None}},
                 [("deleted_in_m365", "deleted", "none")], id="moved_but_deleted_in_outlook"),
    pytest.param({"event": pushed(), "found": {"o-1": None}},
                 [("deleted_in_m365", "deleted", "none")], id="deleted_in_outlook_reported"),
    pytest.param({"event": pushed(status="deleted", reason="deleted_in_m365")}, [],
                 id="deleted_in_m365_never_created_again"),
    # Cancelled: attendees told; none to tell: deleted.
    pytest.param({"event": pushed(dataclasses.replace(EVENT, attendees=(CANDIDATE,)),
                                  cancelled=True)},
                 [("event_cancelled", "cancelled", "cancel")], id="cancelled_with_attendees"),
    pytest.param({"event": pushed(cancelled=True)},
                 [("event_cancelled", "cancelled", "delete")], id="cancelled_alone_deleted"),
    pytest.param({"event": dataclasses.replace(EVENT, cancelled=True)},
                 [("event_cancelled", "cancelled", "none")], id="cancelled_before_created"),
    pytest.param({"event": pushed(cancelled=True, attempted_at="2026-11-26T11:00:00Z"),
                  "found": {"o-1": None}},
                 [("event_cancelled", "cancelled", "none")], id="lost_cancel_landed"),
    pytest.param({"event": pushed(cancelled=True, status="cancelled")}, [],
                 id="cancelled_is_final"),
    # Deleted: in M365, then in Emply.
    pytest.param({"event": pushed(delete_requested=True)},
                 [("event_deleted", "deleted", "delete")], id="deleted_in_emply"),
    pytest.param({"event": dataclasses.replace(EVENT, delete_requested=True)},
                 [("event_deleted", "deleted", "forget")], id="deleted_before_created"),
    pytest.param({"event": pushed(delete_requested=True, status="cancelled")},
                 [("event_deleted", "deleted", "forget")], id="deleted_after_cancelled"),
    pytest.param({"event": pushed(delete_requested=True), **DEACTIVATED},
                 [("user_deactivated", "failed", "none")], id="deleted_of_a_deactivated_user"),
]


@pytest.mark.parametrize(("kw", "expected"), CASES)
def test_faq_outbound_events(kw: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    plan = plan_of(kw.pop("user", anna()), **kw)
    assert pushes(plan) == expected
    for change in plan.changes:
        if change.kind == model.EVENT_PUSH and change.reason == "outbound_event":
            assert change.after["transactionId"] == event_push.transaction_id("o-1")


def _push(plan: model.Plan) -> model.Change:
    (change,) = [c for c in plan.changes if c.kind == model.EVENT_PUSH]
    return change


def test_a_move_patches_only_the_fields_that_differ() -> None:
    change = _push(plan_of(anna(), event=MOVED))
    assert change.after["fields"] == ["start", "end"]
    assert change.after["graphId"] == "AAMk1"
    renamed = dataclasses.replace(pushed(), subject="Second interview",
                                  attendees=(CANDIDATE,), location="Room 4")
    change = _push(plan_of(anna(), event=renamed))
    assert change.after["fields"] == ["subject", "location", "attendees"]


def test_a_failure_is_final_until_emply_changes_the_event() -> None:
    failed = _push(plan_of(anna(status="deactivated", deactivated_by="emply"),
                           event=MOVED))
    stored = dataclasses.replace(MOVED, status="failed", reason=failed.reason,
                                 failed_for=str(failed.after["failedFor"]))
    assert pushes(plan_of(anna(), event=stored)) == []  # even once the user is back
    again = dataclasses.replace(stored, start="2026-12-04T10:00:00Z",
                                end="2026-12-04T11:00:00Z")
    assert pushes(plan_of(anna(), event=again)) == [("event_changed", "updated", "update")]


def test_the_mark_is_the_same_for_every_attempt_and_differs_per_event() -> None:
    assert event_push.transaction_id("o-1") == outbound.mark_id("o-1")
    assert outbound.mark_id("o-1") != outbound.mark_id("O-1")  # Graph's value filter ignores case
    assert uuid.UUID(outbound.mark_id("o-1")).version == 5  # name-based
    value = outbound.mark_value("o-1", outbound.content_digest(EVENT))
    assert value.startswith(outbound.mark_id("o-1") + ":")
    assert outbound.digest_in_mark(value) == outbound.content_digest(EVENT)


def test_the_same_instant_in_another_zone_is_no_change() -> None:
    same = dataclasses.replace(pushed(), start="2026-12-02T11:00:00+01:00",
                               attendees=())
    assert pushes(plan_of(anna(), event=same)) == []


# --- the property: apply what was planned, plan again: no Graph write is left ---------

STATUSES = ["pending", "created", "updated", "failed", "cancelled", "deleted"]


def _applied(event: model.OutboundEvent, change: model.Change) -> model.OutboundEvent | None:
    """What the event-push step stores for a change when Graph does as asked (None: the
    outbound event is removed from Emply)."""
    after = change.after
    if after["action"] in (event_push.FORGET, event_push.DELETE) and after["status"] == "deleted":
        return None
    status = str(after["status"])
    graph_id = after.get("graphId") or event.graph_id
    if after["action"] == event_push.CREATE:
        graph_id = f"AAMk-{event.id}"
    done = dataclasses.replace(event, status=status, graph_id=graph_id, attempted_at=None,
                               reason=after.get("reason"),  # type: ignore[arg-type]
                               failed_for=after.get("failedFor"))  # type: ignore[arg-type]
    return dataclasses.replace(done, pushed=outbound.digests(done)) \
        if status in ("created", "updated") else done


@st.composite
def outbound_events(draw: st.DrawFn, i: int) -> model.OutboundEvent:
    base = dataclasses.replace(
        EVENT, id=f"o-{i}", user_id=draw(st.sampled_from(["u-anna", "u-ext"])),
        start=draw(st.sampled_from(["2026-12-02T10:00:00Z", "2026-12-03T10:00:00Z"])),
        attendees=draw(st.sampled_from([(), (CANDIDATE,)])),
        status=draw(st.sampled_from(STATUSES)))
    if draw(st.booleans()):
        base = dataclasses.replace(base, graph_id="AAMk", pushed=draw(st.sampled_from(
            [None, outbound.digests(EVENT)])))
    return dataclasses.replace(base, cancelled=draw(st.booleans()),
                               delete_requested=draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 6).flatmap(lambda n: st.tuples(*(outbound_events(i) for i in range(n)))),
       st.booleans(), st.sampled_from([(MAIN,), None]))
def test_a_plan_applied_leaves_nothing_to_write_to_m365(
    events: tuple[model.OutboundEvent, ...], sync_on: bool, mailbox: object,
) -> None:
    users = (anna(), b.emply_user("u-ext", username="ext@fabrikam.com"))
    cfg = dataclasses.replace(ON, calendar_sync=sync_on)
    snapshot = dataclasses.replace(STAFF, mailboxes={"anna": mailbox})  # type: ignore[dict-item]

    def plan(outbound_events: tuple[model.OutboundEvent, ...]) -> list[model.Change]:
        return [c for c in planner.plan(
            snapshot, model.EmplySnapshot(users, (), b.ROLES, outbound=outbound_events),
            cfg, model.SyncState(), b.NOW).changes if c.kind == model.EVENT_PUSH]

    first = {c.after["id"]: c for c in plan(events)}
    assert len(first) == len(plan(events))  # one change per event at most
    for event in events:
        if event.status in ("cancelled", "deleted") and not event.delete_requested:
            assert event.id not in first  # final
    after = tuple(e for e in (_applied(o, first[o.id]) if o.id in first else o
                              for o in events) if e is not None)
    assert plan(after) == []
