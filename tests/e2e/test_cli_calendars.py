"""R13 through `emply-sync`, against Azurite and the simulator serving Megan's mailbox.

FAQ ("Why is Emply not synchronized with the calendar?"): "the integration will add all
Entra ID calendars where the Entra ID user has editing rights or higher to Emply
automatically. The Entra ID user's own default calendar will be added without the
Disable button but all additional calendars will be added with the Disable/Enable
buttons. Additional calendars will be added to Emply as Disabled by default."
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from tests.e2e import tenants as t
from tests.e2e.conftest import MAILBOX_MODES
from tests.e2e.test_cli_roles import MEGAN, RAY, faq_state

# R13–R16 hold whether the mailbox shards run in the run or on the queue.
pytestmark = pytest.mark.parametrize("mailbox_mode", MAILBOX_MODES, indirect=True)

TODAY = dt.datetime.now(dt.UTC).date().isoformat()
EVENT = {"id": "ev-1", "subject": "1:1",
         "start": {"dateTime": f"{TODAY}T09:00:00", "timeZone": "UTC"},
         "end": {"dateTime": f"{TODAY}T09:30:00", "timeZone": "UTC"},
         "showAs": "busy", "sensitivity": "normal"}


def mailbox(**extra: dict[str, Any]) -> list[dict[str, Any]]:
    calendars = {
        "cal-main": {"id": "cal-main", "name": "Calendar", "isDefaultCalendar": True,
                     "canEdit": True, "events": [EVENT]},
        "cal-team": {"id": "cal-team", "name": "Team", "isDefaultCalendar": False,
                     "canEdit": True, "events": []},
        "cal-boss": {"id": "cal-boss", "name": "Boss", "isDefaultCalendar": False,
                     "canEdit": False, "events": []},
    }
    for cid, values in extra.items():
        calendars[cid] = {**calendars.get(cid, {"id": cid, "isDefaultCalendar": False,
                                                 "events": []}), **values}
    return [c for c in calendars.values() if c.get("name") is not None]


def tenant(megan_groups: tuple[str, ...] = (t.G_EMPLOYEE, t.G_HR),
           **calendars: dict[str, Any]) -> dict[str, Any]:
    megan = {**MEGAN, "calendars": mailbox(**calendars)}
    # Ray has no calendars: the simulator has no mailbox for him (not in the cloud).
    return t.tenant([RAY, megan], {g: [RAY["id"]] + ([MEGAN["id"]] if g in megan_groups
                                                     else []) for g in (t.G_EMPLOYEE, t.G_HR)})


def kept(world: Any) -> dict[tuple[str, str], tuple[bool, bool]]:
    """(user, calendar) → (isDefault, enabled) of the calendars Emply keeps."""
    return {(c["userId"], c["id"]): (c["isDefault"], c["enabled"])
            for c in world.export()["calendars"]}


def outcome(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The run's R13 changes (R14's `events_mirror`: tests/e2e/test_cli_events.py)."""
    return sorted((c["kind"], c["userId"], c.get("after", {}).get("id")
                   or c["before"].get("calendarId"), c["reason"])
                  for c in report["changes"] if c["kind"] != "events_mirror")


def mailbox_reads(world: Any) -> dict[str, int]:
    """The simulator's mailbox requests (calendars, events) since it was last reset."""
    return {k: n for k, n in world.sim.requests()["byEndpoint"].items() if "calendars" in k}


def edit(world: Any, change: Any) -> None:
    """An operator's edit of the Emply side: export, change, import --replace."""
    doc = world.export()
    change(doc)
    path = world.tmp / "edited.json"
    path.write_text(json.dumps(doc))
    world.ok("emply", "import", str(path), "--replace")


def calendar_world(make_world: Any) -> Any:
    world = make_world(tenant())
    state = faq_state()
    state["settings"]["calendarSync"] = True
    world.import_state(state)
    first = world.sync()
    assert first["counts"] == {"link_user": 2}  # calendars follow once linked
    return world


def test_editable_calendars_are_added_the_default_enabled_the_others_disabled(
    make_world: Any,
) -> None:
    world = calendar_world(make_world)
    dry = world.sync("--dry-run")
    report = world.sync()
    assert outcome(dry) == outcome(report) == [
        ("calendar_add", "u-megan", "cal-main", "default_calendar"),
        ("calendar_add", "u-megan", "cal-team", "additional_calendar"),
    ]
    assert kept(world) == {("u-megan", "cal-main"): (True, True),
                           ("u-megan", "cal-team"): (False, False)}
    # Calendar sync is whole (R13–R15): nothing reported as missing.
    assert report["errors"] == []

    # Nothing changed: the directory's outcome is reused, the calendars are still read
    # (they are not in the delta), and nothing changes.
    world.sim.reset_requests()
    again = world.sync()
    assert again["counts"] == {} and "reusedPlanOf" in again
    calendar_reads = mailbox_reads(world)
    if world.mode == "notified":
        # With notifications on, a run reads only what Graph said changed: nothing here;
        # the sweep reads every mailbox as a run without notifications does.
        assert calendar_reads == {}
        world.sim.reset_requests()
        assert world.sync(sweep=True)["counts"] == {}
        calendar_reads = mailbox_reads(world)
    # Megan and Ray, one page each, and one delta page of Megan's enabled calendar (R14).
    assert calendar_reads == {"GET /users/{id}/calendars": 2,
                              "GET /users/{id}/calendars/{cid}/calendarView/delta": 1}
    # One $batch for the calendars, one for the events.
    assert world.sim.requests()["byEndpoint"]["POST /$batch"] == 2


def test_the_users_choice_stands_and_the_default_cannot_be_disabled(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sync()

    def enable_team(doc: dict[str, Any]) -> None:
        for calendar in doc["calendars"]:
            if calendar["id"] == "cal-team":
                calendar["enabled"] = True

    edit(world, enable_team)
    assert world.sync()["counts"] == {}
    assert kept(world)[("u-megan", "cal-team")] == (False, True)
    explained = json.loads(world.ok("explain", "u-megan", "--json"))
    assert ("calendars kept in Emply (those the user can edit): Calendar (default, enabled), "
            "Team (enabled)") in explained["why"]
    assert "Why is Emply not synchronized with the calendar?" in [
        f["question"] for f in explained["faq"]]
    ray = world.ok("explain", "u-ray")
    assert ("calendars not synced (mailbox_not_in_cloud): the user's mailbox is not in the "
            "cloud") in ray

    doc = world.export()
    for calendar in doc["calendars"]:
        calendar["enabled"] = False
    path = world.tmp / "bad.json"
    path.write_text(json.dumps(doc))
    code, out, err = world.cli("emply", "import", str(path), "--replace")
    assert code == 2, out + err
    assert "default calendar cannot be disabled" in err and "calendars[" in err
    assert kept(world)[("u-megan", "cal-main")] == (True, True)  # nothing written


def test_calendars_that_go_or_lose_edit_rights_are_removed_with_their_events(
    make_world: Any,
) -> None:
    world = calendar_world(make_world)
    world.sync()
    edit(world, lambda doc: doc["events"].extend([
        {"userId": "u-megan", "calendarId": "cal-team", "id": f"ev-{n}", "subject": "x",
         "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"} for n in (1, 2)]))

    world.sim.put_tenant(tenant(**{"cal-team": {"canEdit": False},
                                   "cal-new": {"name": "Project", "canEdit": True}}))
    # Graph notifies no change of calendars (only of events): with notifications on,
    # the mailbox's sweep sees them.
    report = world.sync(sweep=True)
    assert outcome(report) == [
        ("calendar_add", "u-megan", "cal-new", "additional_calendar"),
        ("calendar_remove", "u-megan", "cal-team", "calendar_not_editable"),
    ]
    removed = next(c for c in report["changes"] if c["kind"] == "calendar_remove")
    assert removed["before"]["events"] == 2
    assert [(e["calendarId"], e["id"]) for e in world.export()["events"]] == [
        ("cal-main", "ev-1")]  # the default calendar's mirrored event (R14) stays

    world.sim.put_tenant(tenant(**{"cal-team": {"canEdit": False}}))
    assert outcome(world.sync(sweep=True)) == [
        ("calendar_remove", "u-megan", "cal-new", "calendar_gone")]
    assert world.sync()["counts"] == {}


def test_users_with_calendar_sync_off_or_deactivated_keep_none(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sync()

    def megan_off(value: bool) -> Any:
        def change(doc: dict[str, Any]) -> None:
            for user in doc["users"]:
                if user["id"] == "u-megan":
                    user["calendarSync"] = value
        return change

    edit(world, megan_off(False))
    assert "calendars not synced (calendar_sync_off): calendar sync is off for this user" in \
        world.ok("explain", "megan.jordan@contoso.com")
    assert outcome(world.sync()) == [
        ("calendar_remove", "u-megan", "cal-main", "calendar_sync_off"),
        ("calendar_remove", "u-megan", "cal-team", "calendar_sync_off"),
    ]
    edit(world, megan_off(True))
    assert world.sync()["counts"] == {"calendar_add": 2, "events_mirror": 1}

    world.sim.put_tenant(tenant(megan_groups=()))
    report = world.sync()
    assert outcome(report) == [
        ("calendar_remove", "u-megan", "cal-main", "user_not_synced"),
        ("calendar_remove", "u-megan", "cal-team", "user_not_synced"),
        ("deactivate_user", "u-megan", None, "removed_from_groups"),
    ]
    assert kept(world) == {}
    assert world.sync()["counts"] == {}

    # The setting off: nobody keeps calendars.
    world.sim.put_tenant(tenant())
    assert world.sync()["counts"] == {"reactivate_user": 1}
    assert world.sync()["counts"] == {"calendar_add": 2, "events_mirror": 1}
    settings = copy.deepcopy(faq_state()["settings"])
    world.import_state({"settings": {**settings, "calendarSync": False}})
    report = world.sync()
    assert report["counts"] == {"calendar_remove": 2}
    assert {c["reason"] for c in report["changes"]} == {"calendar_sync_off"}
    assert report["errors"] == []
