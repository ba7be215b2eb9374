"""R16's photo read over real HTTP to the simulator: metadata through `$batch`, bytes only
for a new or changed mediaEtag, no photo as None (404 or Graph's empty mediaEtag),
per-item 429 after Retry-After, a user whose photo fails alone (per-user failures)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from shared.graph import client as graph_client
from shared.graph import photos as graph_photos
from tests.graph.conftest import TENANT_ID, uid, user
from tests.support.simulator import running_simulator


def picture(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + f"photo of user {n}".encode()


def photo(n: int) -> dict[str, str]:
    return {"contentType": "image/jpeg", "base64": base64.b64encode(picture(n)).decode()}


def tenant(count: int = 3, without: tuple[int, ...] = (2,)) -> dict[str, Any]:
    return {
        "organization": {"id": TENANT_ID, "displayName": "Contoso",
                         "onPremisesSyncEnabled": False, "verifiedDomains": []},
        "users": [user(n, **({} if n in without else {"photo": photo(n)}))
                  for n in range(1, count + 1)],
        "groups": [],
    }


def counts(sim: Any) -> dict[str, int]:
    by: dict[str, int] = sim.requests()["byEndpoint"]
    return {k: v for k, v in by.items() if "photo" in k or "$batch" in k}


async def read(sim: Any, known: dict[str, str | None], **kw: Any) -> graph_photos.PhotoRead:
    graph = graph_client.create_graph_client(sim.url, env={})
    try:
        return await graph_photos.read_photos(graph, known, **kw)
    finally:
        await graph.aclose()


async def test_only_new_or_changed_photos_are_downloaded() -> None:
    with running_simulator(tenant()) as sim:
        first = await read(sim, {uid(1): None, uid(2): None, uid(3): None})
        assert counts(sim) == {"POST /$batch": 2, "GET /users/{id}/photo": 3,
                               "GET /users/{id}/photo/$value": 2}
        one, none, three = (first.photos[uid(n)] for n in (1, 2, 3))
        assert none is None
        assert one is not None and three is not None
        assert one.data == picture(1) and one.content_type == "image/jpeg"
        assert one.sha256 == hashlib.sha256(picture(1)).hexdigest()
        assert first.downloads == 2 and first.requests == 2

        # Known ETags: metadata only, no bytes.
        sim.reset_requests()
        again = await read(sim, {uid(1): one.etag, uid(3): three.etag})
        assert counts(sim) == {"POST /$batch": 1, "GET /users/{id}/photo": 2}
        assert again.downloads == 0
        assert again.photos[uid(1)] == graph_photos.Photo(one.etag, "image/jpeg")

        # The bytes change: so does the ETag, and only that photo is downloaded.
        changed = tenant()
        changed["users"][0]["photo"] = {"contentType": "image/png",
                                        "base64": base64.b64encode(b"\x89PNG new").decode()}
        sim.put_tenant(changed)
        sim.reset_requests()
        third = await read(sim, {uid(1): one.etag, uid(3): three.etag})
        assert counts(sim)["GET /users/{id}/photo/$value"] == 1
        new = third.photos[uid(1)]
        assert new is not None and new.etag != one.etag
        assert (new.data, new.content_type) == (b"\x89PNG new", "image/png")


async def test_twenty_a_batch_and_a_throttled_item_waits_its_retry_after() -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    with running_simulator(tenant(45, without=())) as sim:
        sim.set_faults(f"/users/{uid(7)}/photo", 429, times=1, retry_after=2)
        found = await read(sim, {uid(n): None for n in range(1, 46)}, sleep=no_wait)
        by = counts(sim)
    assert waits == [2.0]
    assert found.throttled == 1 and found.downloads == 45
    # 3 batches of metadata (20 + 20 + 5), one retry of the throttled item, 3 of bytes.
    assert by["POST /$batch"] == 3 + 1 + 3
    assert all(found.photos[uid(n)] is not None for n in range(1, 46))


async def test_a_throttled_for_good_or_refused_photo_fails_alone() -> None:
    async def no_wait(seconds: float) -> None:
        return None

    with running_simulator(tenant()) as sim:
        sim.set_faults(f"/users/{uid(3)}/photo", 429, times=-1, retry_after=1)
        throttled = await read(sim, {uid(1): None, uid(3): None}, sleep=no_wait)
        sim.clear_faults()
        sim.set_faults(f"/users/{uid(1)}/photo/$value", 403, times=-1)
        refused = await read(sim, {uid(1): None, uid(3): None})
    assert set(throttled.photos) == {uid(1)} and throttled.downloads == 1
    assert (throttled.failures[uid(3)].reason, throttled.failures[uid(3)].status,
            throttled.failures[uid(3)].temporary) == ("photo_unavailable", 429, True)
    assert set(refused.photos) == {uid(3)} and refused.downloads == 1
    failure = refused.failures[uid(1)]
    assert (failure.status, failure.temporary, failure.endpoint) == (
        403, False, "/users/{id}/photo/$value")


async def test_graphs_empty_media_etag_means_no_photo_not_a_failure() -> None:
    with running_simulator(tenant()) as sim:
        sim.set_user_quirks(uid(2), photo="emptyEtag")
        found = await read(sim, {uid(1): None, uid(2): "W/\"old\""})
        by = counts(sim)
    assert found.photos[uid(2)] is None and not found.failures
    assert found.photos[uid(1)] is not None and found.downloads == 1
    assert by["GET /users/{id}/photo/$value"] == 1  # no bytes asked for the placeholder


async def test_change_is_judged_on_the_media_etag_never_on_the_value_etag_header() -> None:
    """The simulator's `$value` ETag header differs from the mediaEtag (Graph documents
    no relation): the etag kept is the mediaEtag, so a second read downloads nothing."""
    with running_simulator(tenant()) as sim:
        first = await read(sim, {uid(1): None})
        one = first.photos[uid(1)]
        assert one is not None
        meta = sim.graph("GET", f"/users/{uid(1)}/photo").json()
        value = sim.graph("GET", f"/users/{uid(1)}/photo/$value")
        assert one.etag == meta["@odata.mediaEtag"] != value.headers["etag"]
        sim.reset_requests()
        again = await read(sim, {uid(1): one.etag})
        assert again.downloads == 0 and "GET /users/{id}/photo/$value" not in counts(sim)


async def test_an_unavailable_mailbox_fails_its_photo_alone() -> None:
    async def no_wait(seconds: float) -> None:
        return None

    with running_simulator(tenant()) as sim:
        sim.set_user_quirks(uid(3), mailbox="unavailable")
        found = await read(sim, {uid(n): None for n in (1, 2, 3)}, sleep=no_wait)
    assert set(found.photos) == {uid(1), uid(2)} and found.photos[uid(2)] is None
    assert (found.failures[uid(3)].code, found.failures[uid(3)].temporary) == (
        "serviceNotAvailable", True)
