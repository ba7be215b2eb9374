"""R15's Graph traffic over real HTTP to the simulator: an event created with its mark,
found again by the mark, updated, cancelled and deleted; a mailbox not in the cloud,
per-item 429 after Retry-After, and Outlook's 4 per mailbox."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.graph import client as graph_client
from shared.graph import event_writer, outbound_requests
from shared.graph.outbound_requests import Outcome
from shared.reconcile import event_push, outbound
from shared.reconcile.outbound import OutboundEvent
from tests.graph.conftest import TENANT_ID, uid, user
from tests.support.simulator import running_simulator

DEFAULT = {"id": "cal-main", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
           "events": []}


def tenant() -> dict[str, Any]:
    return {
        "organization": {"id": TENANT_ID, "displayName": "Contoso",
                         "onPremisesSyncEnabled": False, "verifiedDomains": []},
        # User 2 has no mailbox in the cloud (no calendars: MailboxNotEnabledForRESTAPI).
        "users": [user(1, calendars=[dict(DEFAULT)]), user(2),
                  user(3, calendars=[dict(DEFAULT)])],
        "groups": [],
    }


def event(event_id: str, **extra: Any) -> OutboundEvent:
    fields: dict[str, Any] = {"subject": f"Interview {event_id}",
                              "start": "2026-12-02T10:00:00+01:00",
                              "end": "2026-12-02T11:00:00+01:00", **extra}
    return OutboundEvent(event_id, "u-1", **fields)


def push(event_id: str, n: int) -> event_writer.Request:
    return outbound_requests.create(event(event_id), uid(n))


async def send(graph: graph_client.GraphClient, *requests: event_writer.Request,
               **kwargs: Any) -> dict[str, Outcome]:
    result = await event_writer.send(graph, requests, **kwargs)
    return {r.event_id: outbound_requests.outcome(r, result.answers[r.event_id])
            for r in requests}


def events_of(tenant: dict[str, Any], n: int) -> list[dict[str, Any]]:
    (megan,) = [u for u in tenant["users"] if u["id"] == uid(n)]
    return [e for c in megan["calendars"] for e in c["events"]]


async def test_an_event_is_created_with_its_mark_and_found_again_by_it() -> None:
    with running_simulator(tenant()) as sim:
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            sent = await event_writer.send(graph, [push("o-1", 1), push("o-2", 2)])
            first = {r: outbound_requests.outcome(push(r, n), sent.answers[r])
                     for r, n in (("o-1", 1), ("o-2", 2))}
            looked = await event_writer.send(graph, [
                outbound_requests.lookup(event("o-1"), uid(1)),
                outbound_requests.lookup(event("o-9"), uid(1))])
        finally:
            await graph.aclose()
        created = events_of(sim.tenant(), 1)
    assert first["o-2"] == Outcome(failure="mailbox_not_in_cloud")
    graph_id = first["o-1"].graph_id
    (made,) = created
    assert made["id"] == graph_id and first["o-1"].done
    assert made["transactionId"] == event_push.transaction_id("o-1")
    assert made["start"] == {"dateTime": "2026-12-02T09:00:00", "timeZone": "UTC"}
    assert "singleValueExtendedProperties" not in made  # only with $expand
    assert sent.requests == 1 and sent.batches == 1  # both in one $batch
    assert outbound_requests.found(looked.answers["o-1"]) == outbound.OutboundCopy(
        str(graph_id), outbound.content_digest(event("o-1")))
    assert outbound_requests.found(looked.answers["o-9"]) is None


async def test_an_event_is_updated_cancelled_and_deleted_and_then_gone() -> None:
    with running_simulator(tenant()) as sim:
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            with_candidate = event("o-1", attendees=(("lee.gu@fabrikam.com", "Lee Gu"),))
            made = (await send(graph, outbound_requests.create(with_candidate, uid(1))))["o-1"]
            graph_id = str(made.graph_id)
            moved = event("o-1", start="2026-12-03T10:00:00Z", end="2026-12-03T11:00:00Z",
                          attendees=with_candidate.attendees, graph_id=graph_id)
            patched = await send(graph, outbound_requests.update(moved, uid(1), graph_id,
                                                                 ["start", "end"]))
            looked = await event_writer.send(graph, [outbound_requests.lookup(moved, uid(1))])
            cancel = outbound_requests.cancel(moved, uid(1), graph_id)
            cancelled, again = await send(graph, cancel), await send(graph, cancel)
            other = (await send(graph, push("o-2", 1)))["o-2"]
            delete = outbound_requests.delete(event("o-2"), uid(1), str(other.graph_id))
            deleted, twice = await send(graph, delete), await send(graph, delete)
        finally:
            await graph.aclose()
        left = events_of(sim.tenant(), 1)
        mail = sim.http.get("/_sim/mail").json()["mail"]
    assert patched["o-1"].done
    assert outbound_requests.found(looked.answers["o-1"]) == outbound.OutboundCopy(
        graph_id, outbound.content_digest(moved))  # the PATCH moved the mark's digest too
    assert cancelled["o-1"].done and again["o-1"] == Outcome(gone=True)
    assert deleted["o-2"].done and twice["o-2"] == Outcome(gone=True)
    assert left == []
    assert [(m["kind"], m["to"], m["comment"]) for m in mail] == [
        ("invitation", ["lee.gu@fabrikam.com"], None),
        ("update", ["lee.gu@fabrikam.com"], None),
        ("cancellation", ["lee.gu@fabrikam.com"], outbound_requests.CANCEL_COMMENT)]


async def test_a_throttled_item_is_sent_again_after_its_retry_after() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with running_simulator(tenant()) as sim:
        sim.set_faults(f"/users/{uid(3)}/calendar/events", 429, method="POST", times=1,
                       retry_after=7)
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            result = await event_writer.send(graph, [push("o-1", 1), push("o-3", 3)],
                                             sleep=sleep)
        finally:
            await graph.aclose()
        created = len(events_of(sim.tenant(), 3))
    assert slept == [7.0]
    assert result.throttled == 1 and result.requests == 2
    assert all(a.status == 201 for a in result.answers.values()) and created == 1


async def test_a_failing_item_is_a_temporary_error_the_others_are_created() -> None:
    with running_simulator(tenant()) as sim:
        sim.set_faults(f"/users/{uid(3)}/calendar/events", 500, method="POST", times=1)
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            result = await send(graph, push("o-1", 1), push("o-3", 3))
        finally:
            await graph.aclose()
    assert result["o-1"].graph_id
    error = result["o-3"].error
    assert error is not None and "HTTP 500" in error and result["o-3"].graph_id is None


async def test_many_events_of_one_mailbox_go_four_at_a_time_twenty_a_batch() -> None:
    pushes = [push(f"o-{i:02d}", 1) for i in range(10)] + [
        push(f"p-{i:02d}", 3) for i in range(30)]
    with running_simulator(tenant()) as sim:
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            result = await event_writer.send(graph, pushes)
        finally:
            await graph.aclose()
        tenant_now = sim.tenant()
    assert len({a.body["id"] for a in result.answers.values()}) == 40
    assert len(events_of(tenant_now, 1)) == 10 and len(events_of(tenant_now, 3)) == 30
    # 8 rounds (30 events of one mailbox, 4 a round), each one batch of at most 8 items.
    assert result.requests == 8


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=120))
def test_rounds_keep_every_push_once_four_per_mailbox_twenty_per_batch(
    mailboxes: list[int],
) -> None:
    pushes = [event_writer.Request(f"o-{i}", f"m-{m}", "POST", "/x")
              for i, m in enumerate(mailboxes)]
    planned = event_writer.rounds(pushes)
    sent = [p for r in planned for b in r for p in b]
    assert sorted(p.event_id for p in sent) == sorted(p.event_id for p in pushes)
    for batches in planned:
        assert all(0 < len(b) <= 20 for b in batches)
        per_mailbox = Counter(p.entra_id for b in batches for p in b)
        assert max(per_mailbox.values()) <= 4
    # As few rounds as the busiest mailbox allows.
    busiest = max(Counter(mailboxes).values(), default=0)
    assert len(planned) == -(-busiest // 4)


async def test_a_refused_batch_makes_its_events_temporary_errors_not_a_failed_run() -> None:
    with running_simulator(tenant()) as sim:
        sim.set_faults("/$batch", 400, method="POST", times=1)
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            result = await send(graph, push("o-1", 1), push("o-3", 3))
        finally:
            await graph.aclose()
        created = events_of(sim.tenant(), 1) + events_of(sim.tenant(), 3)
    assert created == []
    for outcome in result.values():
        assert outcome.graph_id is None and outcome.failure is None
        assert outcome.error is not None and outcome.error.startswith(
            "POST /users/{id}/calendar/events: POST /$batch failed: HTTP 400")
