"""Contract (a): the product's Graph readers and writers, over real HTTP through the
msgraph-sdk pipeline, parse Microsoft's own documented example answers for every call
they make (fixtures: see `tests.contract.docserver`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from shared.graph import (
    batch_get,
    creator,
    errors,
    event_writer,
    mailboxes,
    middleware,
    outbound_requests,
    reader,
    subscriptions,
    writer,
)
from shared.graph import client as graph_client
from shared.graph import events as graph_events
from shared.graph import photos as graph_photos
from shared.reconcile import events as planned_events
from shared.reconcile import model, outbound
from tests.contract.docserver import PHOTO_BYTES, all_fixtures, fixture, serving

pytestmark = pytest.mark.integration

TENANT = "84841066-274d-4ec0-a5c1-276be684bdd3"
NO_RETRY = middleware.RetryPolicy(max_retries=0, backoff_factor=0.0, max_jitter=0.0,
                                  max_total_delay=0.0)


@asynccontextmanager
async def client(url: str, **kw: Any) -> AsyncIterator[graph_client.GraphClient]:
    graph = graph_client.create_graph_client(url, env={}, **kw)
    try:
        yield graph
    finally:
        await graph.aclose()


def test_every_fixture_names_its_documented_source() -> None:
    for name in all_fixtures():
        source = fixture(name)["source"]
        assert source["repository"] == "microsoftgraph/microsoft-graph-docs-contrib", name
        assert source["path"].endswith(".md") and len(source["commit"]) == 40, name
        assert source["example"], name


async def test_the_organization_and_a_full_directory_read_then_a_delta_round() -> None:
    pages = [f"{kind}-delta-{n}" for kind in ("users", "groups")
             for n in ("1-initial", "2-next", "3-final", "4-changes")]
    with serving(["organization-list", *pages]) as docs:
        async with client(docs.url) as graph:
            organization = await reader.read_organization(graph)
            first = await reader.read_entra(graph, None, tenant_id=TENANT)
            second = await reader.read_entra(graph, first.mirror, tenant_id=TENANT)
    assert organization == {"id": TENANT, "onPremisesSyncEnabled": False,
                            "verifiedDomains": ["Contoso.onmicrosoft.com"]}
    users = first.mirror["users"]
    assert len(users) == 7 and "86462606-fde0-4fc4-9e0c-a20eb73e54c6" not in users
    name = reader.USER_FIELD_INDEX["displayName"]
    assert users["605d1257-ffff-40b6-8e6f-528a53f5dc55"][name] == "Delia Dennis"
    groups = first.mirror["groups"]
    assert len(groups) == 6 and sorted(groups["421e797f-9406-4934-b778-4908421e3505"][
        "members"]) == ["3c8ac7c4-d365-4df9-abfa-356a9dd7763c",
                        "49320844-be99-4164-8167-87ff5d047ace"]
    assert first.mirror["deltaLinks"]["users"].startswith(docs.url + "/users/delta?")
    # The documented next round: a user renamed, one removed, a member added to a group.
    again = second.mirror
    assert not second.full_read
    assert again["users"]["25dcffff-959e-4ece-9973-e5d9b800e8cc"][name] == "MOD Administrator"
    assert "37de1ae3-408f-4702-8636-20824abda004" in again["groups"][
        "2e5807ce-58f3-4a94-9b37-ffff2e085957"]["members"]


async def test_calendars_and_a_calendar_view_delta_round_then_the_next_round() -> None:
    names = ["calendars-list", "calendarview-delta-1-initial", "calendarview-delta-2-next",
             "calendarview-delta-3-final", "calendarview-delta-4-next-round"]
    window = ("2016-12-01T00:00:00Z", "2016-12-30T00:00:00Z")
    with serving(names) as docs:
        async with client(docs.url) as graph:
            listed = await mailboxes.read_calendars(graph, ["u-1"])
            first = await graph_events.read_events(
                graph, [graph_events.Wanted("u-1", "cal-1")], window)
            done = first.calendars[("u-1", "cal-1")]
            assert done is not None
            nxt = await graph_events.read_events(
                graph, [graph_events.Wanted("u-1", "cal-1", done.delta_link)], window)
    (calendar,) = listed.mailboxes["u-1"] or []
    assert (calendar["id"], calendar["name"], calendar["canEdit"]) == (
        "AAMkAGI2TGuLAAA=", "Calendar", True)
    assert not listed.failures and not first.failures
    assert done.full and [e["subject"] for e in done.events] == [
        "Plan shopping list", "Pick up car", "Get food", "Prepare food", "Rest!"]
    records = [planned_events.record("u", "c", e) for e in done.events]
    assert all(r is not None for r in records)
    assert records[0] is not None and records[0]["start"].startswith("2016-12-09T20:30")
    later = nxt.calendars[("u-1", "cal-1")]
    assert later is not None and not later.full
    assert [e["subject"] for e in later.events] == ["Attend service"]
    assert later.removed == ["AAMkADk0MGFkODE3LWE4MmYtNDRhOS04OGQLkRkXbBznTvAADb6ytyAAA="]


async def test_photo_metadata_the_no_photo_placeholder_and_the_bytes() -> None:
    with serving(["photo-metadata", "photo-metadata-none", "photo-value"]) as docs:
        async with client(docs.url) as graph:
            read = await graph_photos.read_photos(graph, {"u-1": None, "no-photo": "x"})
    assert read.photos["no-photo"] is None and not read.failures
    assert read.photos["u-1"] == graph_photos.Photo('"BA09D118"', "image/jpeg", PHOTO_BYTES)


async def test_an_event_is_created_and_subscriptions_made_renewed_deleted() -> None:
    names = ["event-create", "subscription-create", "subscription-update",
             "subscription-delete"]
    expires = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with serving(names) as docs:
        async with client(docs.url) as graph:
            request = outbound_requests.create(outbound.OutboundEvent(
                "ev-1", "u-e-1", "Interview", "2030-01-01T10:00:00Z",
                "2030-01-01T11:00:00Z"), "u-1")
            pushed = await event_writer.send(graph, [request])
            made = await subscriptions.create(
                graph, resource="groups", notification_url="https://x.example/api/hook",
                client_state="s", expires=expires)
            renewed = await subscriptions.renew(graph, made["id"], expires)
            await subscriptions.delete(graph, made["id"])
    answer = pushed.answers["ev-1"]
    assert outbound_requests.outcome(request, answer).graph_id == "AAMkADAGAADDdm4NAAA="
    assert made["id"] == "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
    assert renewed is not None and subscriptions.expires_at(renewed) == dt.datetime(
        2016, 11, 22, 18, 23, 45, 935691, tzinfo=dt.UTC)
    assert ("DELETE", "/subscriptions/7f105c7d-2dc5-4530-97cd-4e7ae6534c07") in docs.seen


async def test_write_back_updates_deletes_and_creates_a_user() -> None:
    names = ["user-update", "user-delete", "users-list-filter", "user-create",
             "group-add-member"]
    update = model.Change(model.ENTRA_UPDATE, "R9", model.ENTRA_UPDATE, "u-1", "e-1", {},
                          {"jobTitle": "Chef"})
    delete = model.Change(model.ENTRA_DELETE, "R9", model.ENTRA_DELETE, "u-2", "e-2", {}, {})
    create = model.Change(model.ENTRA_CREATE, "R9", model.ENTRA_CREATE, "u-3", None, {},
                          {"accountEnabled": True, "displayName": "Adele Vance",
                           "userPrincipalName": "AdeleV@contoso.onmicrosoft.com",
                           "mailNickname": "AdeleV"})
    with serving(names) as docs:
        async with client(docs.url) as graph:
            written = await writer.write_changes(graph, [update, delete])
            created = await creator.create_users(graph, [create], "g-1")
    assert written.written == (update, delete) and written.errors == ()
    assert created.created == ((create, "87d349ed-44d7-43e1-9a83-5f2406dee5bd"),)
    assert created.errors == () and created.posts == 1


async def test_the_documented_batch_answer_is_read_item_by_item() -> None:
    with serving(["batch"], verbatim_batch=True) as docs:
        async with client(docs.url) as graph:
            sent = await writer.exchange(graph, [
                {"id": str(n), "method": "GET", "url": f"/x/{n}"} for n in range(1, 6)])
    statuses = {i: a[0] for i, a in sent.answers.items()}
    assert statuses == {"1": 200, "2": 403, "3": 403, "4": 405, "5": 200}
    assert batch_get.error_of(sent.answers["2"][2]) == (
        "", "You do not have the required permissions to access this item.")
    assert batch_get.error_of(sent.answers["3"][2])[0] == "Authorization_RequestDenied"
    assert sent.failure("3")[0] == writer.WRITE_FORBIDDEN


@pytest.mark.parametrize(("name", "call"), [
    ("error-mailbox-access-denied", ("GET", "/users/u-1/calendars")),
    ("error-throttled", ("PATCH", "/users/u-1")),
    ("error-generic", ("GET", "/users/u-1")),
])
async def test_documented_error_bodies_become_read_errors_with_graphs_code(
        name: str, call: tuple[str, str]) -> None:
    doc = fixture(name)
    with serving([name]) as docs:
        async with client(docs.url, retry=NO_RETRY) as graph:
            with pytest.raises(errors.GraphReadError) as failed:
                if call[0] == "GET":
                    await graph.get_json(call[1])
                else:
                    await graph.send_json(call[0], call[1], {"jobTitle": "x"})
    error = doc["body"]["error"]
    assert (failed.value.status, failed.value.code) == (doc["status"], error["code"])
    assert failed.value.message == error["message"]
    assert batch_get.error_of(doc["body"]) == (error["code"], error["message"])
    if "headers" in doc:
        assert batch_get.retry_after(doc["headers"]) == pytest.approx(2.128)
