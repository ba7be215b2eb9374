"""R15 through `emply-sync`, against Azurite and the simulator serving Megan's mailbox
(Ray has none in the cloud).

FAQ ("How do I synchronize the calendar with MS365?"): "In the integration set up you
must activate synchronization of the calendar. When the synchronization is activated the
data can be used in Emply's calendar functionality. Additionally, Emply can create events
in the MS365 calendar."
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shared.reconcile import event_push
from tests.e2e.conftest import MAILBOX_MODES
from tests.e2e.test_cli_calendars import calendar_world, edit
from tests.e2e.test_emply_api import body_of, call
from tests.e2e.test_http import function
from tests.reliability.harness import expire_lease

# R13–R16 hold whether the mailbox shards run in the run or on the queue.
pytestmark = pytest.mark.parametrize("mailbox_mode", MAILBOX_MODES, indirect=True)

ROOT = Path(__file__).resolve().parents[2]
POST_EVENT = "POST /users/{id}/calendar/events"


def outbound(event_id: str, user_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "userId": user_id, "subject": f"Interview {event_id}",
            "start": "2026-12-02T10:00:00Z", "end": "2026-12-02T11:00:00Z", **extra}


def send(world: Any, *events: dict[str, Any]) -> None:
    """Emply's outbound events, as the state document brings them (a plain import)."""
    path = world.tmp / "outbound.json"
    path.write_text(json.dumps({"outboundEvents": list(events)}))
    world.ok("emply", "import", str(path))


def stored(world: Any) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in world.export()["outboundEvents"]}


def graph_events(world: Any, user_id: str) -> list[dict[str, Any]]:
    (user,) = [u for u in world.sim.tenant()["users"] if u["id"] == user_id]
    return [e for c in user.get("calendars", ()) for e in c["events"]
            if e.get("transactionId")]


def megan_entra(world: Any) -> str:
    return str(next(u["entraId"] for u in world.export()["users"] if u["id"] == "u-megan"))


def test_an_outbound_event_is_created_once_and_its_graph_id_stored(make_world: Any) -> None:
    world = calendar_world(make_world)
    send(world, outbound("o-1", "u-megan"), outbound("o-ray", "u-ray"))
    dry = world.sync("--dry-run")
    report = world.sync()
    pushes = sorted((c["after"]["id"], c["reason"]) for c in report["changes"]
                    if c["kind"] == "event_push")
    assert pushes == [("o-1", "outbound_event"), ("o-ray", "mailbox_not_in_cloud")]
    assert [c for c in dry["changes"] if c["kind"] == "event_push"] == [
        c for c in report["changes"] if c["kind"] == "event_push"]
    assert report["counts"]["event_push"] == 2
    (created,) = graph_events(world, megan_entra(world))
    assert created["transactionId"] == event_push.transaction_id("o-1")
    assert created["subject"] == "Interview o-1"
    events = stored(world)
    assert (events["o-1"]["status"], events["o-1"]["graphId"]) == ("created", created["id"])
    assert (events["o-ray"]["status"], events["o-ray"]["reason"]) == (
        "failed", "mailbox_not_in_cloud")
    assert events["o-ray"]["graphId"] is None

    # Final: never planned or POSTed again.
    world.sim.reset_requests()
    again = world.sync()
    assert "event_push" not in again["counts"]
    assert POST_EVENT not in world.sim.requests()["byEndpoint"]
    assert len(graph_events(world, megan_entra(world))) == 1
    explained = json.loads(world.ok("explain", "u-megan", "--json"))
    assert (f"outbound event 'Interview o-1' (o-1): created in the user's default M365 "
            f"calendar (graphId {created['id']})") in explained["why"]
    assert any(a["question"] == "How do I synchronize the calendar with MS365?"
               for a in explained["faq"])


# FAQ-driven: who gets a failed status, with which reason (never a retry loop).
EXTERNAL = {"id": "u-ext", "username": "ext@fabrikam.com", "email": "ext@fabrikam.com"}
FAILED = [
    # (edit of the Emply side, whose event, reason)
    (lambda doc: _user(doc, "u-megan").update(status="deactivated"), "u-megan",
     "user_deactivated"),
    (lambda doc: _user(doc, "u-megan").update(calendarSync=False), "u-megan",
     "calendar_sync_off"),
    (lambda doc: doc["settings"].update(calendarSync=False), "u-megan", "calendar_sync_off"),
    (lambda doc: doc["users"].append(dict(EXTERNAL)), "u-ext", "user_not_linked"),
]


def _user(doc: dict[str, Any], user_id: str) -> dict[str, Any]:
    return next(u for u in doc["users"] if u["id"] == user_id)


@pytest.mark.parametrize(("change", "user_id", "reason"), FAILED)
def test_an_event_of_a_user_who_cannot_get_it_fails_with_the_reason(
    make_world: Any, change: Any, user_id: str, reason: str,
) -> None:
    world = calendar_world(make_world)
    world.sync()

    def both(doc: dict[str, Any]) -> None:
        change(doc)
        doc["outboundEvents"] = [outbound("o-1", user_id)]

    edit(world, both)
    world.sim.reset_requests()
    report = world.sync()
    (push,) = [c for c in report["changes"] if c["kind"] == "event_push"]
    assert push["reason"] == reason and push["after"]["status"] == "failed"
    assert POST_EVENT not in world.sim.requests()["byEndpoint"]
    event = stored(world)["o-1"]
    assert (event["status"], event["reason"], event["graphId"]) == ("failed", reason, None)
    assert "event_push" not in world.sync()["counts"]  # final


def test_an_event_of_a_user_linked_by_this_run_waits_for_the_next(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sync()

    def unlink(doc: dict[str, Any]) -> None:
        _user(doc, "u-megan").update(entraId=None)
        doc["outboundEvents"] = [outbound("o-1", "u-megan")]

    edit(world, unlink)
    report = world.sync()
    assert report["counts"].get("link_user") == 1 and "event_push" not in report["counts"]
    assert stored(world)["o-1"]["status"] == "pending"
    assert world.sync()["counts"]["event_push"] == 1
    assert stored(world)["o-1"]["status"] == "created"


def test_a_temporary_failure_keeps_it_pending_and_the_next_run_creates_it(
    make_world: Any,
) -> None:
    world = calendar_world(make_world)
    world.sync()
    send(world, outbound("o-1", "u-megan"))
    world.sim.set_faults("/users/{id}/calendar/events", 500, method="POST", times=1)
    report = world.sync()
    assert "event_push" not in report["counts"]
    (error,) = [e for e in report["errors"] if e["reason"] == "event_push_failed"]
    assert error["userId"] == "u-megan" and error["temporary"] is True
    event = stored(world)["o-1"]
    assert event["status"] == "pending" and "HTTP 500" in event["lastError"]
    assert graph_events(world, megan_entra(world)) == []

    report = world.sync()
    assert report["counts"]["event_push"] == 1
    event = stored(world)["o-1"]
    (created,) = graph_events(world, megan_entra(world))
    assert (event["status"], event["graphId"], event["lastError"]) == (
        "created", created["id"], None)


def test_a_stored_graph_id_is_never_posted_again(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sync()
    send(world, outbound("o-1", "u-megan", graphId="AAMk-made-earlier"))
    world.sim.reset_requests()
    report = world.sync()
    (push,) = [c for c in report["changes"] if c["kind"] == "event_push"]
    assert push["reason"] == "already_created"
    assert POST_EVENT not in world.sim.requests()["byEndpoint"]
    event = stored(world)["o-1"]
    assert (event["status"], event["graphId"]) == ("created", "AAMk-made-earlier")


def test_a_removed_integration_pushes_nothing(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sync()

    def remove(doc: dict[str, Any]) -> None:
        doc["settings"]["enabled"] = False
        doc["outboundEvents"] = [outbound("o-1", "u-megan")]

    edit(world, remove)
    world.sim.reset_requests()
    report = world.sync()
    assert report["status"] == "disabled" and "event_push" not in report["counts"]
    assert world.sim.requests()["total"] == 0
    assert stored(world)["o-1"]["status"] == "pending"


@pytest.mark.slow
def test_a_run_killed_after_the_post_and_before_the_status_leaves_one_event(
    make_world: Any,
) -> None:
    world = calendar_world(make_world)
    world.sync()
    send(world, outbound("o-1", "u-megan"))
    # Graph remembers no transactionId here (it promises nothing beyond a retry): the
    # event the lost POST made is found by its mark, never POSTed again.
    world.sim.http.put("/_sim/transaction-window", json={"seconds": 0})
    made = kill_during(world, "POST", "/users/{id}/calendar/events")
    event = stored(world)["o-1"]
    assert (event["status"], event["graphId"]) == ("pending", None)  # never stored
    assert event["attemptedAt"]  # but the attempt is

    report = world.sync()
    assert report["status"] == "succeeded"
    assert [(c["reason"], c["after"]["graphId"]) for c in report["changes"]
            if c["kind"] == "event_push"] == [("found_in_m365", made[0]["id"])]
    assert world.sim.requests()["byEndpoint"][POST_EVENT] == 1  # not sent again
    (only,) = graph_events(world, megan_entra(world))
    event = stored(world)["o-1"]
    assert only["id"] == made[0]["id"]
    assert (event["status"], event["graphId"], event["attemptedAt"]) == (
        "created", made[0]["id"], None)


def kill_during(world: Any, method: str, route: str) -> list[dict[str, Any]]:
    """Run `emply-sync sync` in a child process, let Graph do `method route` at once and
    hold its answer, and kill -9 the child while it waits (after the Graph call, before
    the status write). Returns Megan's marked events at that moment."""
    world.sim.reset_requests()
    world.sim.hold_answers(method, route, 60_000)
    child = subprocess.Popen([sys.executable, "-m", "shared.cli", "sync", "--json"],
                             cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while world.sim.requests()["byEndpoint"].get(f"{method} {route}", 0) == 0:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, f"the run never sent {method} {route}"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    world.sim.hold_answers(method, route, 0)
    expire_lease(world.azurite.connection_string)
    return graph_events(world, megan_entra(world))


def test_outbound_events_are_validated_naming_the_field(make_world: Any) -> None:
    world = calendar_world(make_world)
    before = world.export()
    cases = [
        (outbound("o-1", "u-megan", end="2026-12-02T09:00:00Z"),
         'outboundEvents[0] (id "o-1").end: must be after start'),
        (outbound("o-1", "u-megan", start="2026-12-02T10:00:00"),
         'outboundEvents[0] (id "o-1").start: expected an ISO 8601 date-time with a zone'),
        (outbound("o-1", "u-nobody"), 'outboundEvents[0] (id "o-1").userId: unknown user'),
    ]
    for event, message in cases:
        path = world.tmp / "bad.json"
        path.write_text(json.dumps({"outboundEvents": [event]}))
        code, out, err = world.cli("emply", "import", str(path))
        assert code != 0 and message in err + out, err + out
    path = world.tmp / "twice.json"
    path.write_text(json.dumps({"outboundEvents": [outbound("o-1", "u-megan")] * 2}))
    code, out, err = world.cli("emply", "import", str(path))
    assert code != 0 and 'outboundEvents[1] (id "o-1").id: duplicate' in err + out
    assert world.export() == before


# --- the same through the Emply HTTP API (docs/emply-api.md) ---------------------------


def _http(name: str, method: str, url: str, body: Any = None,
          route: dict[str, str] | None = None) -> tuple[int, Any, str | None]:
    response = asyncio.run(function(name)(call(method, url, body, route=route)))
    return response.status_code, body_of(response), response.headers.get("ETag")


def test_emply_sends_outbound_events_and_calendar_choices_over_http(make_world: Any) -> None:
    world = calendar_world(make_world)
    world.sync()
    url, route = "/api/outbound-events/o-1", {"id": "o-1"}
    bad = {**outbound("o-1", "u-megan"), "end": "2026-12-02T09:00:00Z"}
    status, problem, _ = _http("put_outbound_event", "PUT", url, bad, route)
    assert status == 400 and problem["errors"][0]["path"] == "end"
    status, problem, _ = _http("put_outbound_event", "PUT", url,
                               {**outbound("o-1", "u-nobody")}, route)
    assert status == 400 and problem["errors"][0]["path"] == "userId"
    assert stored(world) == {}
    status, created, _ = _http("put_outbound_event", "PUT", url,
                               {k: v for k, v in outbound("o-1", "u-megan").items()
                                if k != "id"}, route)
    assert (status, created["status"]) == (201, "pending")
    assert world.sync()["counts"]["event_push"] == 1
    status, event, etag = _http("get_outbound_event", "GET", url, route=route)
    (made,) = graph_events(world, megan_entra(world))
    assert (status, event["status"], event["graphId"]) == (200, "created", made["id"])
    assert etag

    calendar = "/api/users/u-megan/calendars/"
    status, item, _ = _http("put_user_calendar", "PUT", calendar + "cal-team",
                            {"enabled": True}, {"id": "u-megan", "cid": "cal-team"})
    assert (status, item["enabled"], item["isDefault"]) == (200, True, False)
    status, problem, _ = _http("put_user_calendar", "PUT", calendar + "cal-main",
                               {"enabled": False}, {"id": "u-megan", "cid": "cal-main"})
    assert status == 400 and problem["errors"][0]["path"] == "enabled"
    assert "cannot be disabled" in problem["errors"][0]["detail"]
    status, problem, _ = _http("put_user_calendar", "PUT", calendar + "cal-none",
                               {"enabled": True}, {"id": "u-megan", "cid": "cal-none"})
    assert status == 404
    status, problem, _ = _http("put_user_calendar", "PUT", calendar + "cal-team",
                               {"enabled": True, "name": "x"},
                               {"id": "u-megan", "cid": "cal-team"})
    assert status == 400 and problem["errors"][0]["path"] == "name"
    kept = {c["id"]: c["enabled"] for c in world.export()["calendars"]}
    assert kept == {"cal-main": True, "cal-team": True}
    assert "calendar_add" not in world.sync()["counts"]  # the user's choice stands
