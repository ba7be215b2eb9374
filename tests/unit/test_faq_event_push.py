"""R15 as a table over the pure planner: FAQ "How do I synchronize the calendar with
MS365? ... Additionally, Emply can create events in the MS365 calendar." — each case a
user, an outbound event, and what the plan does with it; and a property: a plan's
outcome applied, the next plan pushes nothing again."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.reconcile import event_push, model, planner
from tests.unit import builders as b
from tests.unit.test_faq_calendars import ANNA, MAIN, ON, STAFF, anna

EVENT = model.OutboundEvent("o-1", "u-anna", "Interview", "2026-12-02T10:00:00Z",
                            "2026-12-02T11:00:00Z")


def plan_of(user: model.EmplyUser | None = None, *, event: model.OutboundEvent = EVENT,
            cfg: model.Settings = ON, mailbox: object = (MAIN,),
            entra: model.EntraSnapshot = STAFF) -> model.Plan:
    snapshot = dataclasses.replace(entra, mailboxes={"anna": mailbox})  # type: ignore[dict-item]
    users = (user,) if user is not None else ()
    return planner.plan(snapshot, model.EmplySnapshot(users, (), b.ROLES, outbound=(event,)),
                        cfg, model.SyncState(), b.NOW)


def pushes(plan: model.Plan) -> list[tuple[str, str | None]]:
    return [(c.reason, c.after.get("status")) for c in plan.changes
            if c.kind == model.EVENT_PUSH]


CASES = [
    pytest.param(anna(), {}, [("outbound_event", "created")], id="linked_active_pushed"),
    pytest.param(anna(status="deactivated", deactivated_by="emply"), {},
                 [("user_deactivated", "failed")], id="deactivated_fails"),
    pytest.param(b.emply_user("u-anna"), {"entra": b.tenant([], {"grp-staff": []})},
                 [("user_not_linked", "failed")], id="unlinked_fails"),
    pytest.param(anna(calendar_sync=False), {}, [("calendar_sync_off", "failed")],
                 id="user_flag_off_fails"),
    pytest.param(anna(), {"cfg": dataclasses.replace(ON, calendar_sync=False)},
                 [("calendar_sync_off", "failed")], id="setting_off_fails"),
    pytest.param(anna(), {"mailbox": None}, [("mailbox_not_in_cloud", "failed")],
                 id="mailbox_not_in_cloud_fails"),
    pytest.param(anna(), {"cfg": dataclasses.replace(ON, enabled=False)}, [],
                 id="integration_removed_pushes_nothing"),
    pytest.param(anna(), {"event": dataclasses.replace(EVENT, graph_id="AAMk1")},
                 [("already_created", "created")], id="graph_id_never_posted_again"),
    pytest.param(anna(), {"event": dataclasses.replace(EVENT, status="created",
                                                       graph_id="AAMk1")}, [],
                 id="created_is_final"),
    pytest.param(anna(), {"event": dataclasses.replace(EVENT, status="failed")}, [],
                 id="failed_is_final"),
    pytest.param(b.emply_user("u-anna", username="anna@contoso.com"), {},
                 [], id="linked_by_this_run_waits_for_the_next"),
    pytest.param(anna(), {"entra": b.tenant([ANNA], {"grp-staff": []})},
                 [("user_deactivated", "failed")], id="deactivated_by_this_run_fails"),
]


@pytest.mark.parametrize(("user", "kw", "expected"), CASES)
def test_faq_outbound_events(user: model.EmplyUser, kw: dict[str, object],
                             expected: list[tuple[str, str]]) -> None:
    plan = plan_of(user, **kw)  # type: ignore[arg-type]
    assert pushes(plan) == expected
    for change in plan.changes:
        if change.kind == model.EVENT_PUSH and change.reason == "outbound_event":
            assert change.after["transactionId"] == event_push.transaction_id("o-1")


def test_the_transaction_id_is_the_same_for_every_attempt_and_differs_per_event() -> None:
    assert event_push.transaction_id("o-1") == event_push.transaction_id("o-1")
    assert event_push.transaction_id("o-1") != event_push.transaction_id("o-2")
    assert uuid.UUID(event_push.transaction_id("o-1")).version == 5  # name-based


def _applied(event: model.OutboundEvent, change: model.Change) -> model.OutboundEvent:
    """What apply stores for a change (a created event gets a Graph id)."""
    status = str(change.after["status"])
    graph_id = event.graph_id or (f"AAMk-{event.id}" if status == "created" else None)
    return dataclasses.replace(event, status=status, graph_id=graph_id)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pending", "created", "failed"]),
                          st.booleans(), st.sampled_from(["u-anna", "u-ext"])),
                max_size=8),
       st.booleans(), st.sampled_from([(MAIN,), None]))
def test_a_plan_applied_leaves_nothing_to_push(
    events: list[tuple[str, bool, str]], sync_on: bool, mailbox: object,
) -> None:
    outbound = tuple(
        model.OutboundEvent(f"o-{i}", user_id, None, EVENT.start, EVENT.end,
                            "AAMk" if has_id else None, status)
        for i, (status, has_id, user_id) in enumerate(events))
    users = (anna(), b.emply_user("u-ext", username="ext@fabrikam.com"))
    cfg = dataclasses.replace(ON, calendar_sync=sync_on)
    snapshot = dataclasses.replace(STAFF, mailboxes={"anna": mailbox})  # type: ignore[dict-item]

    def plan(outbound: tuple[model.OutboundEvent, ...]) -> model.Plan:
        return planner.plan(snapshot, model.EmplySnapshot(users, (), b.ROLES,
                                                          outbound=outbound),
                            cfg, model.SyncState(), b.NOW)

    first = plan(outbound)
    planned = {c.after["id"]: c for c in first.changes if c.kind == model.EVENT_PUSH}
    # Every event not final is planned exactly once; final ones never.
    assert set(planned) == {o.id for o in outbound if o.status == "pending"}
    for o in outbound:
        if o.id in planned and o.graph_id is not None:
            assert planned[o.id].reason == "already_created"  # never POSTed again
    after = tuple(_applied(o, planned[o.id]) if o.id in planned else o for o in outbound)
    assert [c for c in plan(after).changes if c.kind == model.EVENT_PUSH] == []
