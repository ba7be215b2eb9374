"""R13's calendar read over real HTTP to the simulator: pages, no mailbox, throttling,
and a mailbox that fails alone (per-user failures, R7)."""

from __future__ import annotations

from typing import Any

from shared.graph import client as graph_client
from shared.graph import mailbox_gate, mailboxes
from tests.graph.conftest import TENANT_ID, FakeTime, uid, user
from tests.support.simulator import running_simulator


def calendars(n: int) -> list[dict[str, Any]]:
    return [{"id": f"cal-{i}", "name": f"Calendar {i}", "isDefaultCalendar": i == 0,
             "canEdit": i % 3 != 2, "events": []} for i in range(n)]


def tenant() -> dict[str, Any]:
    return {
        "organization": {"id": TENANT_ID, "displayName": "Contoso",
                         "onPremisesSyncEnabled": False, "verifiedDomains": []},
        # User 1 has more calendars than a page holds (100), user 2 no mailbox in the cloud.
        "users": [user(1, calendars=calendars(120)), user(2), user(3, calendars=calendars(1))],
        "groups": [],
    }


async def test_calendars_are_read_per_user_with_no_mailbox_as_none() -> None:
    with running_simulator(tenant()) as sim:
        sim.set_faults(f"/users/{uid(3)}/calendars", 429, times=1, retry_after=1)
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            read = await mailboxes.read_calendars(graph, [uid(3), uid(1), uid(2), uid(1)])
        finally:
            await graph.aclose()
        counts = sim.requests()["byEndpoint"]
    assert list(read.mailboxes) == [uid(1), uid(2), uid(3)]
    first = read.mailboxes[uid(1)]
    assert first is not None
    assert [c["id"] for c in first] == [f"cal-{i}" for i in range(120)]
    assert {k for c in first for k in c} >= {"id", "name", "isDefaultCalendar", "canEdit"}
    assert "events" not in first[0]
    assert read.mailboxes[uid(2)] is None
    assert read.mailboxes[uid(3)] == [{"id": "cal-0", "name": "Calendar 0",
                                       "isDefaultCalendar": True, "canEdit": True}]
    assert read.throttled == 1  # user 3's item, answered 429 inside the batch
    # One $batch for the three first pages, user 1's second page, one $batch retrying
    # user 3 alone after its Retry-After.
    assert read.requests == 3
    # The simulator counts each batch item too: 3 first pages, user 3's retry, user 1's
    # second page.
    assert counts == {"POST /$batch": 2, "GET /users/{id}/calendars": 5}, counts


async def test_a_refused_mailbox_is_a_failure_of_its_own_the_others_are_read() -> None:
    with running_simulator(tenant()) as sim:
        sim.set_faults(f"/users/{uid(1)}/calendars", 403, times=-1)
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            read = await mailboxes.read_calendars(graph, [uid(1), uid(2), uid(3)])
        finally:
            await graph.aclose()
    assert read.mailboxes == {uid(2): None, uid(3): [
        {"id": "cal-0", "name": "Calendar 0", "isDefaultCalendar": True, "canEdit": True}]}
    failure = read.failures[uid(1)]
    assert (failure.entra_id, failure.reason, failure.status, failure.temporary) == (
        uid(1), "mailbox_unavailable", 403, False)
    assert failure.endpoint == "/users/{id}/calendars"


async def test_access_policy_unknown_and_unavailable_mailboxes_fail_alone() -> None:
    doc = tenant()
    doc["users"].append(user(4, calendars=calendars(2)))
    doc["users"].append(user(5, calendars=calendars(2)))
    with running_simulator(doc) as sim:
        sim.set_user_quirks(uid(3), mailbox="accessDenied")
        sim.set_user_quirks(uid(4), mailbox="invalidUser")
        sim.set_user_quirks(uid(5), mailbox="unavailable")
        graph = graph_client.create_graph_client(sim.url, env={})
        time = FakeTime()
        gate = mailbox_gate.MailboxGate(sleep=time.sleep, clock=time.clock)
        try:
            read = await mailboxes.read_calendars(graph, [uid(n) for n in range(1, 6)],
                                                  gate=gate)
        finally:
            await graph.aclose()
    assert set(read.mailboxes) == {uid(1), uid(2)} and len(read.mailboxes[uid(1)] or []) == 120
    assert {i: (f.code, f.status, f.temporary) for i, f in read.failures.items()} == {
        uid(3): ("ErrorAccessDenied", 403, False),
        uid(4): ("ErrorInvalidUser", 404, True),
        uid(5): ("serviceNotAvailable", 503, True)}
    assert len(time.slept) == mailboxes.MAX_ITEM_RETRIES  # the 503 item, until its retries ran out
    error = read.failures[uid(3)].as_error()
    assert {k: error[k] for k in ("reason", "entraId", "temporary", "graphStatus")} == {
        "reason": "mailbox_unavailable", "entraId": uid(3), "temporary": False,
        "graphStatus": 403}
    assert "Access to OData is disabled." in error["message"]


async def test_users_go_20_a_batch_and_an_item_throttled_for_good_fails_alone() -> None:
    many = tenant()
    many["users"] = [user(n, calendars=calendars(1)) for n in range(1, 46)]
    time = FakeTime()
    with running_simulator(many) as sim:
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            read = await mailboxes.read_calendars(graph, [uid(n) for n in range(1, 46)])
            assert sim.requests()["byEndpoint"]["POST /$batch"] == 3  # 20 + 20 + 5
            assert all(read.mailboxes[uid(n)] for n in range(1, 46))
            sim.set_faults(f"/users/{uid(7)}/calendars", 429, times=-1, retry_after=3)
            gate = mailbox_gate.MailboxGate(sleep=time.sleep, clock=time.clock)
            again = await mailboxes.read_calendars(graph, [uid(n) for n in range(1, 46)],
                                                   gate=gate)
        finally:
            await graph.aclose()
    assert list(again.failures) == [uid(7)] and len(again.mailboxes) == 44
    assert again.failures[uid(7)].status == 429 and again.failures[uid(7)].temporary
    assert time.slept == [3.0] * mailboxes.MAX_ITEM_RETRIES
    assert again.throttled == mailboxes.MAX_ITEM_RETRIES + 1
