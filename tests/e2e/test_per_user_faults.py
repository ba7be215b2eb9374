"""R7's per-user faults end to end: `emply-sync` against Azurite and the Graph simulator
over HTTP, with one mailbox that Graph refuses as an application access policy makes it
(`PUT /_sim/users/{id}/quirks`, concepts/auth-limit-mailbox-access.md).

One refused mailbox never stops a run: the leaver is deactivated, the other mailboxes
are synced, the refused user is an error with Graph's code and keeps its calendars,
the stored state remembers it (`state-faults.json.gz`), and `explain` says why.
"""

from __future__ import annotations

import json
from typing import Any

from tests.e2e import tenants as t

CALENDAR = {"id": "cal-main", "name": "Calendar", "isDefaultCalendar": True,
            "canEdit": True, "events": []}
ANN = t.entra_user(1, "Ann Lee", calendars=[dict(CALENDAR)])
BO = t.entra_user(2, "Bo Ek", calendars=[dict(CALENDAR)])
DEE = t.entra_user(3, "Dee Ho", calendars=[dict(CALENDAR)])


def _tenant(members: list[str]) -> dict[str, Any]:
    return t.tenant([ANN, BO, DEE], {t.G_EMPLOYEE: members, t.G_HR: []})


def _state() -> dict[str, Any]:
    users = [{"id": f"u-{p['givenName'].lower()}", "username": p["userPrincipalName"],
              "email": p["mail"], "displayName": p["displayName"], "roles": ["employee"]}
             for p in (ANN, BO, DEE)]
    return t.emply_state(users=users, calendarSync=True)


def test_one_refused_mailbox_still_deactivates_the_leaver(make_world: Any) -> None:
    world = make_world(_tenant([ANN["id"], BO["id"], DEE["id"]]))
    world.import_state(_state())
    assert world.sync()["counts"] == {"link_user": 3}
    world.sim.set_user_quirks(BO["id"], mailbox="accessDenied")
    world.sim.put_tenant(_tenant([ANN["id"], BO["id"]]))  # Dee leaves

    dry = world.sync("--dry-run")
    report = world.sync()
    for found in (dry, report):
        assert found["status"] == "succeeded"
        assert [(e["reason"], e["entraId"], e["graphStatus"], e["graphCode"])
                for e in found["errors"]] == [
            ("mailbox_unavailable", BO["id"], 403, "ErrorAccessDenied")]
    kinds = sorted((c["kind"], c["userId"]) for c in report["changes"])
    assert kinds == [("calendar_add", "u-ann"), ("deactivate_user", "u-dee")]
    assert world.users()[DEE["userPrincipalName"]]["status"] == "deactivated"

    code, out, _ = world.cli("explain", "u-bo", "--json")
    assert code == 0
    why = " ".join(json.loads(out)["why"])
    assert "mailbox_unavailable" in why and "ErrorAccessDenied" in why

    # The next run (minutes later, before Bo's next try) leaves Bo's mailbox alone.
    world.sim.reset_requests()
    quiet = world.sync()
    assert quiet["errors"] == [] and quiet["skips"]["mailbox_retry_later"] == 1
    assert world.sim.requests()["byEndpoint"]["GET /users/{id}/calendars"] == 1  # Ann's
