"""R14 through `emply-sync`, against Azurite and the simulator serving Megan's mailbox:
events mirrored, a no-change run reading one delta page per calendar, changes, private
and cancelled events, expired links, the window, export/import and explain."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from tests.e2e.conftest import MAILBOX_MODES
from tests.e2e.test_cli_calendars import calendar_world, edit, tenant

# R13–R16 hold whether the mailbox shards run in the run or on the queue.
pytestmark = pytest.mark.parametrize("mailbox_mode", MAILBOX_MODES, indirect=True)

TODAY = dt.datetime.now(dt.UTC).date()
DELTA = "GET /users/{id}/calendars/{cid}/calendarView/delta"


def event(n: int, days: int = 0, **extra: Any) -> dict[str, Any]:
    day = (TODAY + dt.timedelta(days=days)).isoformat()
    return {"id": f"ev-{n}", "subject": f"Meeting {n}", "showAs": "busy",
            "sensitivity": "normal",
            "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day}T10:00:00", "timeZone": "UTC"}, **extra}


def with_events(main: list[dict[str, Any]], team: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    calendars: dict[str, dict[str, Any]] = {"cal-main": {"events": main}}
    if team is not None:
        calendars["cal-team"] = {"events": team}
    return tenant(**calendars)


def mirrored(world: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["calendarId"], e["id"]): e for e in world.export()["events"]}


def mirror_changes(report: dict[str, Any]) -> list[tuple[str, str, int, int, int, int]]:
    return sorted((c["before"]["calendarId"], c["reason"], c["after"]["added"],
                   c["after"]["updated"], c["after"]["removed"], c["after"]["events"])
                  for c in report["changes"] if c["kind"] == "events_mirror")


def test_events_are_mirrored_and_a_no_change_run_reads_one_delta_page(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sim.put_tenant(with_events([
        event(1), event(2, 3, sensitivity="private", subject="Doctor", showAs="oof"),
        event(3, -3),  # before the window
        event(4, 70),  # after it
        event(5, 1, isCancelled=True),
    ], team=[event(6)]))
    dry = world.sync("--dry-run")
    report = world.sync()
    assert mirror_changes(dry) == mirror_changes(report) == [
        ("cal-main", "events_changed", 2, 0, 0, 2)]  # the team calendar is disabled
    events = mirrored(world)
    assert sorted(events) == [("cal-main", "ev-1"), ("cal-main", "ev-2")]
    private = events[("cal-main", "ev-2")]
    assert (private["subject"], private["showAs"], private["sensitivity"]) == (
        None, "oof", "private")
    assert private["start"] == f"{(TODAY + dt.timedelta(days=3)).isoformat()}T09:00:00Z"
    assert events[("cal-main", "ev-1")]["subject"] == "Meeting 1"

    world.sim.reset_requests()
    again = world.sync()
    assert again["counts"] == {} and again["errors"] == []
    if world.mode == "notified":  # nothing notified, nothing read; the sweep reads them
        assert DELTA not in world.sim.requests()["byEndpoint"]
        world.sim.reset_requests()
        assert world.sync(sweep=True)["counts"] == {}
    counts = world.sim.requests()["byEndpoint"]
    assert counts[DELTA] == 1, counts  # Megan's one enabled calendar: one delta page
    assert not any("calendarView" in k and k != DELTA for k in counts), counts

    # Changes in Outlook show up in the next run through the delta link.
    world.sim.put_tenant(with_events([event(1, subject="Moved"), event(7, 10),
                                      event(2, 3, isCancelled=True)], team=[event(6)]))
    changed = world.sync()
    assert mirror_changes(changed) == [("cal-main", "events_changed", 1, 1, 1, 2)]
    assert sorted(mirrored(world)) == [("cal-main", "ev-1"), ("cal-main", "ev-7")]
    assert mirrored(world)[("cal-main", "ev-1")]["subject"] == "Moved"

    # The user enables the team calendar: its events follow at the next run; disabled
    # again, they go.
    def team(enabled: bool) -> Any:
        def change(doc: dict[str, Any]) -> None:
            for calendar in doc["calendars"]:
                if calendar["id"] == "cal-team":
                    calendar["enabled"] = enabled
        return change

    edit(world, team(True))
    assert mirror_changes(world.sync()) == [("cal-team", "events_changed", 1, 0, 0, 1)]
    explained = json.loads(world.ok("explain", "u-megan", "--json"))
    assert any(w.startswith("events of calendar 'Team' are mirrored: 1 in the window")
               for w in explained["why"]), explained["why"]
    edit(world, team(False))
    assert world.ok("explain", "u-megan").count("are not mirrored: the calendar is disabled") == 1
    assert mirror_changes(world.sync()) == [("cal-team", "calendar_disabled", 0, 0, 1, 0)]
    assert sorted(mirrored(world)) == [("cal-main", "ev-1"), ("cal-main", "ev-7")]


def test_expired_links_and_a_moved_window_read_in_full(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sim.put_tenant(with_events([event(1), event(2, 20)]))
    assert mirror_changes(world.sync()) == [("cal-main", "events_changed", 2, 0, 0, 2)]

    world.sim.expire_delta_tokens()  # Graph's 410 SyncStateNotFound
    world.sim.put_tenant(with_events([event(1)]))
    report = world.sync()
    assert report["status"] == "succeeded"
    assert mirror_changes(report) == [("cal-main", "events_changed", 0, 0, 1, 1)]
    assert world.sync()["counts"] == {}

    # A narrower window (as a new day moves it): read in full, what left it goes.
    world.sim.put_tenant(with_events([event(1), event(2, 20)]))
    doc = world.export()
    doc["settings"]["eventWindow"] = {"pastDays": 0, "futureDays": 7}
    world.import_state({"settings": doc["settings"]})
    world.sim.reset_requests()
    narrower = world.sync()
    assert mirror_changes(narrower) == []  # event 2 (day 20) is outside the new window
    assert sorted(mirrored(world)) == [("cal-main", "ev-1")]
    log = world.sim.requests()["byEndpoint"]
    assert log[DELTA] == 1
    assert world.export()["settings"]["eventWindow"] == {"pastDays": 0, "futureDays": 7}


def test_export_import_carry_events_and_refuse_unknown_calendars(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sim.put_tenant(with_events([event(1)]))
    world.sync()
    doc = world.export()
    assert [e["id"] for e in doc["events"]] == ["ev-1"]
    path = world.tmp / "same.json"
    path.write_text(json.dumps(doc))
    world.ok("emply", "import", str(path), "--replace")
    assert world.export() == doc
    assert world.sync()["counts"] == {}  # Emply still holds what the link was applied with

    bad = copy.deepcopy(doc)
    bad["events"].append({**bad["events"][0], "id": "ev-x", "calendarId": "cal-nope"})
    bad["settings"]["eventWindow"] = {"pastDays": -1, "futureDays": 9999}
    path.write_text(json.dumps(bad))
    code, out, err = world.cli("emply", "import", str(path), "--replace")
    assert code == 2, out + err
    assert 'events[1] (id "ev-x").calendarId: unknown calendar "cal-nope"' in err, err
    assert "settings.eventWindow.pastDays" in err and "settings.eventWindow.futureDays" in err
    assert world.export() == doc  # nothing written

    # Events removed from Emply behind the sync's back: the link no longer matches what
    # Emply holds, so the calendar is read in full and the event comes back.
    edit(world, lambda d: d.update(events=[]))
    assert mirror_changes(world.sync()) == [("cal-main", "events_changed", 1, 0, 0, 1)]
