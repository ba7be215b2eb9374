"""R15's Graph write over real HTTP to the simulator: transactionId dedupe, a mailbox
not in the cloud, per-item 429 after Retry-After, and Outlook's 4 per mailbox."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.graph import client as graph_client
from shared.graph import event_writer
from shared.reconcile import event_push
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


def push(event_id: str, n: int) -> event_writer.Push:
    return event_writer.Push(event_id, uid(n), event_writer.event_body(
        f"Interview {event_id}", "2026-12-02T10:00:00+01:00", "2026-12-02T11:00:00+01:00",
        event_push.transaction_id(event_id)))


def events_of(tenant: dict[str, Any], n: int) -> list[dict[str, Any]]:
    (megan,) = [u for u in tenant["users"] if u["id"] == uid(n)]
    return [e for c in megan["calendars"] for e in c["events"]]


async def test_events_are_created_once_and_a_mailbox_off_the_cloud_fails_for_good() -> None:
    with running_simulator(tenant()) as sim:
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            first = await event_writer.push_events(graph, [push("o-1", 1), push("o-2", 2)])
            again = await event_writer.push_events(graph, [push("o-1", 1)])  # a retry
        finally:
            await graph.aclose()
        created = events_of(sim.tenant(), 1)
    assert first.outcomes["o-2"] == event_writer.Outcome(failure="mailbox_not_in_cloud")
    graph_id = first.outcomes["o-1"].graph_id
    assert graph_id is not None and again.outcomes["o-1"].graph_id == graph_id
    (event,) = created  # the same transactionId: Graph's event of the first POST
    assert event["id"] == graph_id
    assert event["transactionId"] == event_push.transaction_id("o-1")
    assert event["start"] == {"dateTime": "2026-12-02T09:00:00", "timeZone": "UTC"}
    assert first.requests == 1  # both in one $batch


async def test_a_throttled_item_is_sent_again_after_its_retry_after() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with running_simulator(tenant()) as sim:
        sim.set_faults(f"/users/{uid(3)}/calendar/events", 429, method="POST", times=1,
                       retry_after=7)
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            result = await event_writer.push_events(graph, [push("o-1", 1), push("o-3", 3)],
                                                    sleep=sleep)
        finally:
            await graph.aclose()
        created = len(events_of(sim.tenant(), 3))
    assert slept == [7.0]
    assert result.throttled == 1 and result.requests == 2
    assert all(o.graph_id for o in result.outcomes.values()) and created == 1


async def test_a_failing_item_is_a_temporary_error_the_others_are_created() -> None:
    with running_simulator(tenant()) as sim:
        sim.set_faults(f"/users/{uid(3)}/calendar/events", 500, method="POST", times=1)
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            result = await event_writer.push_events(graph, [push("o-1", 1), push("o-3", 3)])
        finally:
            await graph.aclose()
    assert result.outcomes["o-1"].graph_id
    error = result.outcomes["o-3"].error
    assert error is not None and "HTTP 500" in error and result.outcomes["o-3"].graph_id is None


async def test_many_events_of_one_mailbox_go_four_at_a_time_twenty_a_batch() -> None:
    pushes = [push(f"o-{i:02d}", 1) for i in range(10)] + [
        push(f"p-{i:02d}", 3) for i in range(30)]
    with running_simulator(tenant()) as sim:
        graph = graph_client.create_graph_client(sim.url, env={})
        try:
            result = await event_writer.push_events(graph, pushes)
        finally:
            await graph.aclose()
        tenant_now = sim.tenant()
    assert len({o.graph_id for o in result.outcomes.values()}) == 40
    assert len(events_of(tenant_now, 1)) == 10 and len(events_of(tenant_now, 3)) == 30
    # 8 rounds (30 events of one mailbox, 4 a round), each one batch of at most 8 items.
    assert result.requests == 8


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=120))
def test_rounds_keep_every_push_once_four_per_mailbox_twenty_per_batch(
    mailboxes: list[int],
) -> None:
    pushes = [event_writer.Push(f"o-{i}", f"m-{m}", {}) for i, m in enumerate(mailboxes)]
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
            result = await event_writer.push_events(graph, [push("o-1", 1), push("o-3", 3)])
        finally:
            await graph.aclose()
        created = events_of(sim.tenant(), 1) + events_of(sim.tenant(), 3)
    assert created == []
    for outcome in result.outcomes.values():
        assert outcome.graph_id is None and outcome.failure is None
        assert outcome.error is not None and outcome.error.startswith(
            "POST /$batch failed: HTTP 400")
