"""Emply's events follow Emply (R15) and are shown once (R14), through `emply-sync` and
the HTTP API against Azurite and the simulator serving Megan's mailbox.

FAQ ("How do I synchronize the calendar with MS365?"): "When the synchronization is
activated the data can be used in Emply's calendar functionality. Additionally, Emply
can create events in the MS365 calendar." BEHAVIOUR R15: "When Emply later changes it
(time, subject, location, attendees) the M365 event is updated; when Emply cancels or
deletes it, the M365 event is cancelled (attendees notified) or deleted. An event
deleted in M365 by its owner is reported, not re-created." R14: "An event that Emply
itself created is not mirrored back as a second event: Emply shows it once."
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.e2e.test_cli_calendars import calendar_world, edit
from tests.e2e.test_cli_event_push import (
    _http,
    graph_events,
    kill_during,
    megan_entra,
    send,
    stored,
)

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
CANDIDATE = {"email": "lee.gu@fabrikam.com", "name": "Lee Gu"}


def interview(days_later: int = 0, **extra: Any) -> dict[str, Any]:
    """Megan's interview of the candidate, as Emply sends it (its own fields only)."""
    day = (DAY + dt.timedelta(days=days_later)).isoformat()
    return {"id": "o-1", "userId": "u-megan", "subject": "Interview: Lee Gu",
            "start": f"{day}T10:00:00Z", "end": f"{day}T11:00:00Z", "location": "Room 4",
            "attendees": [CANDIDATE], **extra}


def pushed_world(make_world: Any) -> Any:
    world = calendar_world(make_world)
    world.sync()  # Megan's calendars
    send(world, interview())
    report = world.sync()
    assert [(c["reason"], c["after"]["status"]) for c in report["changes"]
            if c["kind"] == "event_push"] == [("outbound_event", "created")]
    world.sim.reset_requests()
    return world


def pushes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["reason"], c["after"]["status"]) for c in report["changes"]
            if c["kind"] == "event_push"]


def mail(world: Any) -> list[tuple[str, list[str]]]:
    return [(m["kind"], m["to"]) for m in world.sim.http.get("/_sim/mail").json()["mail"]]


def starts(world: Any) -> list[str]:
    return [e["start"]["dateTime"] for e in graph_events(world, megan_entra(world))]


def test_an_interview_moved_in_emply_is_one_m365_event_at_the_new_time(
        make_world: Any) -> None:
    world = pushed_world(make_world)
    graph_id = stored(world)["o-1"]["graphId"]
    send(world, interview(days_later=1))  # Emply sends it again, moved
    assert pushes(world.sync()) == [("event_changed", "updated")]
    assert starts(world) == [f"{(DAY + dt.timedelta(days=1)).isoformat()}T10:00:00"]
    assert world.sim.requests()["byEndpoint"]["PATCH /users/{id}/events/{eid}"] == 1
    event = stored(world)["o-1"]
    assert (event["status"], event["graphId"]) == ("updated", graph_id)
    assert mail(world) == [("invitation", [CANDIDATE["email"]]),
                           ("update", [CANDIDATE["email"]])]
    assert pushes(world.sync()) == []


def test_an_interview_moved_over_http_keeps_what_the_sync_knows(make_world: Any) -> None:
    world = pushed_world(make_world)
    created = stored(world)["o-1"]
    url, route = "/api/outbound-events/o-1", {"id": "o-1"}
    moved = {k: v for k, v in interview(days_later=1).items() if k != "id"}
    status, item, _ = _http("put_outbound_event", "PUT", url, moved, route)
    assert (status, item["graphId"], item["status"]) == (200, created["graphId"], "created")
    assert pushes(world.sync()) == [("event_changed", "updated")]
    assert len(graph_events(world, megan_entra(world))) == 1


def test_an_interview_cancelled_in_emply_is_cancelled_in_m365_and_attendees_are_told(
        make_world: Any) -> None:
    world = pushed_world(make_world)
    send(world, interview(cancelled=True))
    assert pushes(world.sync()) == [("event_cancelled", "cancelled")]
    assert graph_events(world, megan_entra(world)) == []
    assert mail(world)[-1] == ("cancellation", [CANDIDATE["email"]])
    assert stored(world)["o-1"]["status"] == "cancelled"
    assert pushes(world.sync()) == []


def test_an_interview_deleted_in_emply_is_gone_in_m365_and_in_emply(make_world: Any) -> None:
    world = pushed_world(make_world)
    url, route = "/api/outbound-events/o-1", {"id": "o-1"}
    status, marked, etag = _http("delete_outbound_event", "DELETE", url, route=route)
    assert (status, marked["deleteRequested"], marked["status"]) == (202, True, "created")
    assert etag
    assert _http("delete_outbound_event", "DELETE", url, route=route)[0] == 202  # again
    assert _http("delete_outbound_event", "DELETE", "/api/outbound-events/nope",
                 route={"id": "nope"})[0] == 404
    assert pushes(world.sync()) == [("event_deleted", "deleted")]
    assert graph_events(world, megan_entra(world)) == []
    assert mail(world)[-1] == ("cancellation", [CANDIDATE["email"]])  # a meeting: told
    assert stored(world) == {}
    assert _http("get_outbound_event", "GET", url, route=route)[0] == 404


def test_a_pushed_event_never_appears_in_emplys_events(make_world: Any) -> None:
    world = pushed_world(make_world)
    graph_id = stored(world)["o-1"]["graphId"]
    for days_later in (1, 2):
        world.sync()  # R14 reads Megan's calendar, the interview in it
        mirrored = [e["id"] for e in world.export()["events"]]
        assert graph_id not in mirrored and mirrored == ["ev-1"]  # her own 1:1 only
        send(world, interview(days_later=days_later))
    world.sim.expire_delta_tokens()  # a window read in full leaves it out too
    world.sync()
    assert [e["id"] for e in world.export()["events"]] == ["ev-1"]


def test_an_event_deleted_in_outlook_is_reported_not_created_again(make_world: Any) -> None:
    world = pushed_world(make_world)
    world.sync()  # R14's delta has seen the interview since
    graph_id = stored(world)["o-1"]["graphId"]
    gone = world.sim.graph("DELETE", f"/users/{megan_entra(world)}/events/{graph_id}")
    assert gone.status_code == 204  # its owner deleted it in Outlook
    # R14's read (the mailbox pass, after the one plan) sees it go and writes that down
    # (`shared.run.mailboxes.gone`); not created again meanwhile, the next run reports it.
    assert pushes(world.sync()) == []
    assert pushes(world.sync()) == [("deleted_in_m365", "deleted")]
    event = stored(world)["o-1"]
    assert (event["status"], event["reason"]) == ("deleted", "deleted_in_m365")
    send(world, interview(days_later=1))
    assert pushes(world.sync()) == []
    assert graph_events(world, megan_entra(world)) == []
    assert "POST /users/{id}/calendar/events" not in world.sim.requests()["byEndpoint"]


def test_a_user_deactivated_between_push_and_move_fails_the_move_with_its_reason(
        make_world: Any) -> None:
    world = pushed_world(make_world)

    def deactivate_and_move(doc: dict[str, Any]) -> None:
        megan = next(u for u in doc["users"] if u["id"] == "u-megan")
        megan.update(status="deactivated", deactivatedBy="emply")
        doc["outboundEvents"][0].update(interview(days_later=1))

    edit(world, deactivate_and_move)
    report = world.sync()
    assert pushes(report) == [("user_deactivated", "failed")]
    event = stored(world)["o-1"]
    assert (event["status"], event["reason"]) == ("failed", "user_deactivated")
    assert starts(world) == [f"{DAY.isoformat()}T10:00:00"]  # not moved
    assert pushes(world.sync()) == []  # no retry loop


@pytest.mark.parametrize(("step", "method", "route"), [
    ("move", "PATCH", "/users/{id}/events/{eid}"),
    ("cancel", "POST", "/users/{id}/events/{eid}/cancel"),
    ("delete", "DELETE", "/users/{id}/events/{eid}"),
])
def test_kill_9_between_the_graph_call_and_the_status_write_leaves_one_effect(
        make_world: Any, step: str, method: str, route: str) -> None:
    world = pushed_world(make_world)
    if step == "move":
        send(world, interview(days_later=1))
    elif step == "cancel":
        send(world, interview(cancelled=True))
    else:
        assert _http("delete_outbound_event", "DELETE", "/api/outbound-events/o-1",
                     route={"id": "o-1"})[0] == 202
    kill_during(world, method, route)
    assert stored(world)["o-1"]["attemptedAt"]
    world.sim.reset_requests()
    report = world.sync()
    assert report["status"] == "succeeded", report["errors"]
    assert f"{method} {route}" not in world.sim.requests()["byEndpoint"]  # looked up instead
    assert pushes(world.sync()) == []
    left = stored(world)
    if step == "move":
        assert starts(world) == [f"{(DAY + dt.timedelta(days=1)).isoformat()}T10:00:00"]
        assert left["o-1"]["status"] == "updated"
        assert [k for k, _ in mail(world)] == ["invitation", "update"]
    else:
        assert graph_events(world, megan_entra(world)) == []
        assert [k for k, _ in mail(world)] == ["invitation", "cancellation"]
        if step == "cancel":
            assert left["o-1"]["status"] == "cancelled"
        else:
            assert left == {}  # gone in M365, then in Emply
