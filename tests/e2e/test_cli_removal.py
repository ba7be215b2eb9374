"""R17 through `emply-sync`, against Azurite and the simulator.

FAQ: "What happens if I remove the Microsoft Entra ID integration? The calendar
synchronization stops, the Outlook events will no longer be visible in Emply after
next synchronization, new users connected to an Entra ID group will not be created in
Emply." Users stay as they are; turning the integration on again reads Entra in full.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.e2e import tenants as t
from tests.e2e.conftest import MAILBOX_MODES
from tests.e2e.test_cli_roles import MEGAN, faq_state, faq_tenant

# R13–R16 hold whether the mailbox shards run in the run or on the queue.
pytestmark = pytest.mark.parametrize("mailbox_mode", MAILBOX_MODES, indirect=True)

NEWCOMER = t.entra_user(3, "Nina Newcomer")


def calendars_and_events() -> dict[str, Any]:
    """What a calendar sync left in Emply: Megan's two calendars and their events (an
    import refuses an event whose calendar Emply does not keep)."""
    def event(calendar: str, n: int) -> dict[str, Any]:
        return {"userId": "u-megan", "calendarId": calendar, "id": f"ev-{calendar}-{n}",
                "subject": "1:1", "start": "2026-12-01T09:00:00Z",
                "end": "2026-12-01T09:30:00Z", "showAs": "busy"}

    return {
        "calendars": [
            {"userId": "u-megan", "id": "cal-default", "name": "Calendar", "isDefault": True,
             "enabled": True},
            {"userId": "u-megan", "id": "cal-team", "name": "Team", "isDefault": False,
             "enabled": True},
        ],
        "events": [event("cal-default", 1), event("cal-default", 2), event("cal-team", 1)],
        "outboundEvents": [{"id": "out-1", "userId": "u-megan", "subject": "Interview",
                            "start": "2026-12-02T10:00:00Z", "end": "2026-12-02T11:00:00Z"}],
    }


def users_as_stored(world: Any) -> list[dict[str, Any]]:
    return sorted(world.export()["users"], key=lambda u: str(u["id"]))


def test_removing_the_integration_removes_calendars_and_events_and_nothing_else(
    make_world: Any,
) -> None:
    world = make_world(faq_tenant())
    state = faq_state()
    world.import_state(state)
    assert world.sync()["counts"] == {"link_user": 2}
    world.import_state({**calendars_and_events(),
                        "settings": {**state["settings"], "enabled": False}})
    before = users_as_stored(world)

    # Meanwhile in Entra: Megan leaves every group (the enabled sync would deactivate
    # her) and a newcomer joins them (it would be created).
    tenant = faq_tenant(megan_groups=())
    tenant["users"].append(NEWCOMER)
    for group in tenant["groups"]:
        group["members"].append(NEWCOMER["id"])
    world.sim.put_tenant(tenant)
    world.sim.reset_requests()

    dry = world.sync("--dry-run")
    report = world.sync()
    for run in (dry, report):
        assert run["status"] == "disabled"
        assert run["counts"] == {"calendar_remove": 2}
        assert run["held"] == [] and run["errors"] == []
        assert run["entraRead"]["requests"] == 0
    assert sorted((c["userId"], c["before"]["calendarId"], c["before"]["events"], c["rule"],
                   c["reason"]) for c in report["changes"]) == [
        ("u-megan", "cal-default", 2, "R17", "integration_disabled"),
        ("u-megan", "cal-team", 1, "R17", "integration_disabled"),
    ]
    # A removed integration does not talk to Graph at all (its consent may be gone).
    assert world.sim.requests()["total"] == 0, world.sim.requests()

    after = world.export()
    assert after["calendars"] == [] and after["events"] == []
    assert users_as_stored(world) == before  # no creation, status or role change
    assert [u["status"] for u in before] == ["active", "active"]

    explained = world.ok("explain", "u-megan")
    assert "the integration is removed (settings enabled: false)" in explained
    assert "What happens if I remove the Microsoft Entra ID integration?" in explained

    again = world.sync()
    assert again["status"] == "disabled" and again["counts"] == {}

    text = world.ok("sync")
    assert "DISABLED" in text and "integration is disabled" in text

    # Pushes stop too (R15): Emply's outbound event waits, pending.
    assert [o["status"] for o in world.export()["outboundEvents"]] == ["pending"]

    # On again: a full read, and what happened meanwhile is acted on as usual (calendar
    # sync is off in these settings: the outbound event fails for it, R15).
    world.import_state({"settings": state["settings"]})
    resumed = world.sync()
    assert resumed["status"] == "succeeded"
    assert resumed["entraRead"]["fullRead"] is True
    assert resumed["counts"] == {"create_user": 1, "deactivate_user": 1, "event_push": 1}
    assert {(c["kind"], c["entraId"], c["reason"]) for c in resumed["changes"]} == {
        ("create_user", NEWCOMER["id"], "create_user"),
        ("deactivate_user", MEGAN["id"], "removed_from_groups"),
        ("event_push", MEGAN["id"], "calendar_sync_off")}
    assert world.sync()["counts"] == {}


def test_a_removed_integration_plans_no_write_back_or_unavailable_features(
    make_world: Any,
) -> None:
    """Settings that would turn features on are not reported as missing features while
    the integration is removed: nothing is done for any of them."""
    world = make_world(faq_tenant())
    state = faq_state()
    state["settings"].update(enabled=False, calendarSync=True, photoSync=True,
                             writeBack={"create": True, "update": True, "delete": True})
    world.import_state(copy.deepcopy(state))
    report = world.sync()
    assert report["status"] == "disabled"
    assert report["counts"] == {} and report["errors"] == []
    assert [u["entraId"] for u in world.export()["users"]] == [None, None]
    assert MEGAN["id"] not in str(report)
