"""The mailbox pass's shards on the queue (issue 26), on the storage fakes and the
simulator's handlers in-process: a run queues its shards and stays running until they
are worked; a next run never starts a shard for buckets an earlier one still holds; a
shard the host gives up is reported in its run, never lost; a message delivered twice
is worked once. The queue is a list here (the real queue and trigger:
tests/e2e/test_cli_calendars.py and friends, mode `queue`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from graph_simulator.inprocess import InProcessTransport
from graph_simulator.state import Simulator
from shared.graph import client as graph_client
from shared.run import context, pipeline
from shared.run.mailboxes import queued, shard_runs
from shared.run.mailboxes.settings import PassSettings
from tests.e2e.tenants import G_EMPLOYEE, G_HR, emply_state, entra_user, tenant
from tests.support.memory_store import MemoryStore

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
URL = "http://127.0.0.1:1/v1.0"
PEOPLE = 12


def _event(n: int) -> dict[str, Any]:
    return {"id": f"ev-{n}", "subject": f"Meeting {n}", "showAs": "busy",
            "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T09:30:00", "timeZone": "UTC"}}


def _world() -> tuple[dict[str, Any], dict[str, Any]]:
    people = [entra_user(100 + n, f"Person{n} Staff", calendars=[{
        "id": f"cal-{n}", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
        "events": [_event(n)]}]) for n in range(PEOPLE)]
    users = [{"id": f"u-{n}", "username": p["userPrincipalName"], "email": p["mail"],
              "displayName": p["displayName"], "roles": ["employee"], "entraId": p["id"],
              "status": "active", "source": "entra"} for n, p in enumerate(people)]
    return (tenant(people, {G_EMPLOYEE: [p["id"] for p in people], G_HR: []}),
            emply_state(users=users, calendarSync=True))


class Queue:
    """The shard queue: what the run sends, worked when a test says so."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def send(self, message: Mapping[str, Any]) -> None:
        self.messages.append(json.dumps(message))


@pytest.fixture
async def graph() -> AsyncIterator[graph_client.GraphClient]:
    client = graph_client.create_graph_client(
        URL, env={}, transport=InProcessTransport(Simulator(_world()[0])))
    try:
        yield client
    finally:
        await client.aclose()


async def _store() -> MemoryStore:
    store = MemoryStore(lambda: NOW)
    await store.import_document(_world()[1])
    return store


SETTINGS = PassSettings(queued=True, shard_size=3)


def _deps(store: MemoryStore, graph: graph_client.GraphClient, queue: Queue) -> context.Deps:
    return context.Deps(store=store, graph=graph, clock=lambda: NOW, mailboxes=SETTINGS,
                        shard_queue=queue.send)


async def _work(store: MemoryStore, graph: graph_client.GraphClient, queue: Queue) -> list[str]:
    """The queue trigger: every message worked, in order; what became of each."""
    done = []
    while queue.messages:
        message = queued.ShardMessage.parse(queue.messages.pop(0))
        done.append(await shard_runs.work(store, graph, SETTINGS, message, NOW))
    return done


async def test_a_run_is_finished_when_its_shards_are(graph: graph_client.GraphClient) -> None:
    store, queue = await _store(), Queue()
    report = await pipeline.run_sync(_deps(store, graph, queue), trigger="timer")
    assert report["status"] == "running" and report["finishedAt"] is None
    shards = report["mailboxShards"]
    assert shards["queued"] == len(queue.messages) >= 2 and shards["bucketsHeld"] == 0
    assert shards["statusWhenDone"] == "succeeded"
    assert report["counts"] == {}  # the directory changed nothing; calendars come later

    worked = await _work(store, graph, queue)
    assert set(worked) == {"done"}
    final = await store.get_run(report["runId"])
    assert final is not None and final["status"] == "succeeded" and final["finishedAt"]
    assert final["counts"] == {"calendar_add": PEOPLE, "events_mirror": PEOPLE}
    assert final["mailboxShards"]["done"] == shards["queued"] and "progress" not in final
    assert len((await store.export_document())["events"]) == PEOPLE

    # The next run records the shards' changes in the feed (under its lease), and finds
    # nothing more to do.
    again = await pipeline.run_sync(_deps(store, graph, queue), trigger="timer")
    assert await _work(store, graph, queue)
    feed = [e for c in store.change_feed.chunks.values() for e in c.changes()]
    assert sorted(e["kind"] for e in feed if e["runId"] == report["runId"]) == sorted(
        ["calendar_add"] * PEOPLE + ["events_mirror"] * PEOPLE)
    last = await store.get_run(again["runId"])
    assert last is not None and last["status"] == "succeeded" and last["counts"] == {}


async def test_a_next_run_starts_no_shard_for_buckets_a_shard_still_holds(
        graph: graph_client.GraphClient) -> None:
    store, queue = await _store(), Queue()
    first = await pipeline.run_sync(_deps(store, graph, queue), trigger="timer")
    pending = list(queue.messages)
    queue.messages.clear()
    second = await pipeline.run_sync(_deps(store, graph, queue), trigger="timer")
    # Every bucket with users is held by the first run's shards: nothing queued for them.
    held = sum(len(queued.ShardMessage.parse(m).buckets()) for m in pending)
    assert second.get("mailboxShards") is None or second["mailboxShards"]["queued"] == 0
    assert second["status"] == "succeeded" and queue.messages == []
    assert held == 256  # the first run's shards cover every bucket
    queue.messages = pending
    await _work(store, graph, queue)
    done = await store.get_run(first["runId"])
    assert done is not None and done["status"] == "succeeded"


async def test_a_shard_the_host_gives_up_is_reported_and_its_buckets_freed(
        graph: graph_client.GraphClient) -> None:
    store, queue = await _store(), Queue()
    report = await pipeline.run_sync(_deps(store, graph, queue), trigger="timer")
    given_up = queued.ShardMessage.parse(queue.messages.pop(0))
    await shard_runs.poisoned(store, given_up, 5, NOW)
    assert set(await _work(store, graph, queue)) == {"done"}
    final = await store.get_run(report["runId"])
    assert final is not None and final["status"] == "succeeded"
    assert final["mailboxShards"]["failed"] == 1
    failed = [e for e in final["errors"] if e["reason"] == shard_runs.SHARD_FAILED]
    assert len(failed) == 1 and f"{given_up.first}..{given_up.last}" in failed[0]["message"]
    # Its buckets are free again: the next run queues a shard for them, which reads
    # their mailboxes (the others have nothing new).
    again = await pipeline.run_sync(_deps(store, graph, queue), trigger="timer")
    assert again["mailboxShards"]["queued"] >= 1
    await _work(store, graph, queue)
    last = await store.get_run(again["runId"])
    assert last is not None and last["counts"].get("calendar_add", 0) >= 1
    assert len((await store.export_document())["calendars"]) == PEOPLE


async def test_a_shard_delivered_twice_is_worked_once(graph: graph_client.GraphClient) -> None:
    store, queue = await _store(), Queue()
    await pipeline.run_sync(_deps(store, graph, queue), trigger="timer")
    copy = queue.messages[0]
    assert set(await _work(store, graph, queue)) == {"done"}
    queue.messages.append(copy)
    assert await _work(store, graph, queue) == ["already settled"]


def test_a_shard_message_is_checked_before_it_is_worked() -> None:
    good = queued.ShardMessage("r", "0001", "00", "0f", "2026-11-30T08:00:00Z").to_json()
    assert queued.ShardMessage.parse(json.dumps(good)).buckets()[-1] == "0f"
    for bad, field in ((b"{", "not JSON"), (json.dumps({**good, "kind": "run"}), "kind"),
                       (json.dumps({**good, "first": "zz"}), "range"),
                       (json.dumps({**good, "last": "00", "first": "0f"}), "range"),
                       (json.dumps({**good, "started": "soon"}), "started"),
                       (json.dumps({**good, "runId": ""}), "runId")):
        with pytest.raises(ValueError, match=field):
            queued.ShardMessage.parse(bad)
