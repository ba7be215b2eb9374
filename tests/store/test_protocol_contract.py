"""One contract for each storage protocol, run against the Azure store (on Azurite) and
the in-memory fake (`tests/support/memory_store.py`): the fake cannot drift from what
the service gets in production.

A store keeps nothing of a load, so "another writer" is simply a write made without
the `LoadedEmply` (on Azure this was once a second store: the first one remembered).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.emply.document import DocumentError, validate_document
from shared.store import ConcurrentChangeError, LeaseLost, RunInProgress, open_store
from shared.store.protocols import SubscriptionRecord, SyncStore
from tests.support.azurite import AzuriteProcess
from tests.support.memory_store import MemoryStore

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", pytest.param("azure", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, clock: Clock,
                prefix: str) -> AsyncIterator[SyncStore]:
    if request.param == "memory":
        yield MemoryStore(clock)
        return
    azurite: AzuriteProcess = request.getfixturevalue("azurite")
    async with open_store(connection_string=azurite.connection_string, prefix=prefix,
                          clock=clock) as azure:
        yield azure


def _doc(n: int = 5) -> dict[str, Any]:
    history = [{"kind": "link_user", "rule": "R3", "reason": "link_user", "message": "m",
                "runId": "r1", "at": "2025-01-01T00:00:00Z"}]
    return {
        "settings": {"tenantId": "t1", "groups": [{"groupId": "g1", "roleId": "r1"}],
                     "defaultRoleId": "r1"},
        "roles": [{"id": "r1", "name": "Role"}],
        "users": [{"id": f"u{i:03d}", "username": f"u{i}@c.com", "roles": ["r1"],
                   "history": history, "lastChange": history[0]} for i in range(n)],
        "employees": [{"id": "e1", "email": "e1@c.com"}],
    }


# --- RunLease ---------------------------------------------------------------------------


async def test_lease_one_run_at_a_time(store: SyncStore, clock: Clock) -> None:
    assert await store.current_lease() is None
    assert await store.acquire_lease("r1", "timer", ttl_seconds=60) is None
    lease = await store.current_lease()
    assert lease is not None and (lease["runId"], lease["trigger"]) == ("r1", "timer")
    assert lease["startedAt"] == "2026-11-30T08:00:00Z"
    assert lease["expiresAt"] == "2026-11-30T08:01:00Z"
    with pytest.raises(RunInProgress) as info:
        await store.acquire_lease("r2", "http", ttl_seconds=60)
    assert info.value.running_run_id == "r1"
    clock.now = T0 + dt.timedelta(seconds=30)
    assert await store.acquire_lease("r1", "timer", ttl_seconds=60) is None  # its own again
    lease = await store.current_lease()
    assert lease is not None and lease["startedAt"] == "2026-11-30T08:00:00Z"
    await store.release_lease("r2")  # not r2's: nothing happens
    assert (await store.current_lease() or {}).get("runId") == "r1"
    await store.release_lease("r1")
    assert await store.current_lease() is None


async def test_lease_renewal_and_takeover_of_an_expired_one(store: SyncStore,
                                                            clock: Clock) -> None:
    await store.acquire_lease("r1", "timer", ttl_seconds=60)
    clock.now = T0 + dt.timedelta(seconds=50)
    await store.renew_lease("r1", ttl_seconds=60)
    renewed = await store.current_lease()
    assert renewed is not None and renewed["expiresAt"] == "2026-11-30T08:01:50Z"
    with pytest.raises(LeaseLost):
        await store.renew_lease("r2", ttl_seconds=60)
    clock.now = T0 + dt.timedelta(seconds=111)  # expired
    taken = await store.acquire_lease("r2", "http", ttl_seconds=60)
    assert taken is not None and taken["runId"] == "r1"
    assert taken["renewedAt"] == "2026-11-30T08:00:50Z"
    with pytest.raises(LeaseLost):
        await store.renew_lease("r1", ttl_seconds=60)


async def test_marker_is_created_only_once_and_deleted_only_by_its_etag(
        store: SyncStore) -> None:
    assert await store.read_marker() is None
    assert await store.create_marker("q1", "2026-11-30T08:00:00.000Z")
    assert not await store.create_marker("q2", "2026-11-30T08:00:01.000Z")
    marker = await store.read_marker()
    assert marker is not None and marker["runId"] == "q1" and marker["etag"]
    assert marker["queuedAt"] == "2026-11-30T08:00:00.000Z"
    await store.delete_marker('W/"not-it"')
    assert (await store.read_marker() or {}).get("runId") == "q1"
    await store.delete_marker(marker["etag"])
    assert await store.read_marker() is None
    await store.delete_marker(marker["etag"])  # gone already: fine


# --- RunLog -----------------------------------------------------------------------------


async def test_run_log_lists_newest_first_with_summaries(store: SyncStore) -> None:
    assert await store.last_run() is None and await store.list_runs() == []
    old = {"runId": "r-old", "trigger": "timer", "status": "succeeded",
           "startedAt": "2026-11-30T07:00:00.000Z", "counts": {"create_user": 2},
           "held": [{"userId": "u1"}], "errors": []}
    queued = {"runId": "r-queued", "trigger": "http", "status": "running", "dryRun": True,
              "queuedAt": "2026-11-30T07:30:00.000Z", "startedAt": "2026-11-30T09:00:00.000Z",
              "errors": [{"reason": "x"}, {"reason": "y"}]}
    new = {"runId": "r-new", "trigger": "cli", "status": "failed",
           "startedAt": "2026-11-30T08:00:00.000Z"}
    for report in (old, queued, new):
        await store.save_run(report)
    runs = await store.list_runs()
    assert [r["runId"] for r in runs] == ["r-new", "r-queued", "r-old"]
    by_id = {r["runId"]: r for r in runs}
    assert by_id["r-old"]["counts"] == {"create_user": 2} and by_id["r-old"]["heldCount"] == 1
    assert by_id["r-queued"]["errorCount"] == 2 and by_id["r-queued"]["dryRun"] is True
    assert by_id["r-new"]["counts"] == {} and by_id["r-new"]["dryRun"] is False
    assert [r["runId"] for r in await store.list_runs(2)] == ["r-new", "r-queued"]
    assert (await store.last_run() or {}).get("runId") == "r-new"
    assert await store.get_run("r-queued") == queued
    await store.save_run({**old, "status": "abandoned", "lastSeenAt": "x"})  # replaces
    assert (await store.get_run("r-old") or {}).get("status") == "abandoned"
    assert len(await store.list_runs()) == 3
    assert await store.get_run("missing") is None


async def test_run_log_refuses_a_report_without_run_id(store: SyncStore) -> None:
    with pytest.raises(ValueError, match="runId"):
        await store.save_run({"status": "succeeded"})
    assert await store.list_runs() == []


# --- SyncStateStore -----------------------------------------------------------------------


async def test_sync_state_and_index_parts(store: SyncStore) -> None:
    assert await store.load_sync_state() is None
    await store.save_sync_state({"version": 3, "deltaLinks": {"users": "L"}, "ünï": "✓"})
    assert await store.load_sync_state() == {"version": 3, "deltaLinks": {"users": "L"},
                                             "ünï": "✓"}
    generation = "0123456789abcdef0123456789abcdef"
    assert await store.load_index(generation, "entra") is None
    await store.save_index(generation, "entra",
                           [b"\x00entra" * 600, memoryview(b"\x00entra" * 400)])
    await store.save_index(generation, "emply", [])
    assert await store.load_index(generation, "entra") == b"\x00entra" * 1000
    assert await store.load_index(generation, "emply") == b""
    assert await store.load_index("f" * 32, "entra") is None
    with pytest.raises(ValueError):
        await store.save_index("not-a-generation", "entra", [])
    with pytest.raises(ValueError):
        await store.load_index(generation, "other")
    await store.delete_index(generation)
    assert await store.load_index(generation, "entra") is None
    await store.delete_index(generation)  # missing: fine


# --- EmplyTables, EmplyGenerations -------------------------------------------------------


async def test_empty_emply_side(store: SyncStore) -> None:
    loaded = await store.load_emply()
    assert loaded.doc == validate_document({}) == await store.export_document()
    assert not loaded.served_from_cache
    assert await store.current_version() is None


async def test_import_load_and_the_compact_copy(store: SyncStore) -> None:
    counts = await store.import_document(_doc())
    assert counts == {"settings": 1, "roles": 1, "users": 5, "employees": 1, "calendars": 0,
                      "events": 0, "outboundEvents": 0}
    full = await store.load_emply()
    assert full.doc == validate_document(_doc()) == await store.export_document()
    cache = full.cache()
    assert cache is not None and full.version() == await store.current_version() is not None
    served = await store.load_emply(cache)
    assert served.served_from_cache
    assert [u["id"] for u in served.doc["users"]] == [u["id"] for u in full.doc["users"]]
    assert all("history" not in u or not u["history"] for u in served.doc["users"])
    assert served.doc["employees"] == full.doc["employees"]
    assert served.doc["settings"] == full.doc["settings"]


async def test_own_writes_keep_the_copy_current_another_writer_spoils_it(
        store: SyncStore) -> None:
    await store.import_document(_doc())
    loaded = await store.load_emply()
    whole = await store.read_entities("users", ["u001", "missing"], loaded=loaded)
    assert list(whole) == ["u001"] and whole["u001"]["history"]
    new = validate_document({"users": [{"id": "u-new", "username": "n@c.com"}]})["users"][0]
    await store.write_entities("users", [{**whole["u001"], "displayName": "renamed"}, new],
                               loaded=loaded)
    await store.write_built("employees", ["e1"],
                            lambda i: {**loaded.doc["employees"][0], "status": "archived"},
                            loaded=loaded)
    assert loaded.version() == await store.current_version()
    served = await store.load_emply(loaded.cache())
    assert served.served_from_cache
    users = {u["id"]: u for u in served.doc["users"]}
    assert users["u001"]["displayName"] == "renamed" and "u-new" in users
    assert served.doc["employees"][0]["status"] == "archived"
    # another writer (a write without the loaded value) moves the marker
    await store.write_entities("users", [{**whole["u001"], "displayName": "by the operator"}])
    assert served.version() is None or served.version() != await store.current_version()
    assert not (await store.load_emply(loaded.cache())).served_from_cache
    await store.write_entities("users", [new], loaded=served)  # its ETag is still current
    assert served.cache() is None and served.version() is None


async def test_scan_gives_every_entity_compact_with_its_etag(store: SyncStore) -> None:
    """`scan`: the whole Emply side a page at a time, as `Ledger.entries` gives it, with
    the marker it is current at, and which users the compact entity is all of."""
    await store.import_document(_doc())
    first, second = (await store.load_emply()).doc["users"][:2]
    change = {"kind": "set_roles", "rule": "R4", "reason": "role_changed", "message": "m",
              "runId": "r1", "at": "2026-12-05T00:00:00Z"}
    await store.write_entities("users", [
        {**first, "lastChange": change, "history": [change]},
        {**second, "lastChange": None, "history": []}])
    seen: list[tuple[str, str | None, dict[str, Any]]] = []
    whole: dict[str, bool] = {}

    def take(kind: str, etag: str | None, item: dict[str, Any], is_whole: bool) -> None:
        seen.append((kind, etag, item))
        if kind == "users":
            whole[str(item["id"])] = is_whole

    version = await store.scan(take)
    assert version == await store.current_version() is not None
    loaded = await store.load_emply()
    assert whole == {str(u["id"]): not (u.get("history") or u.get("lastChange"))
                     for u in loaded.doc["users"]}
    assert whole[str(first["id"])] is False and whole[str(second["id"])] is True

    def present(entries: Any) -> list[tuple[Any, dict[str, Any]]]:
        """Entries by id, absent fields and fields of no value alike (a whole user's
        empty history is the ledger's to keep and the scan's to leave out)."""
        return sorted(((etag, {k: v for k, v in item.items() if v is not None
                               and not (k == "history" and v == [])})
                       for etag, item in entries), key=lambda e: str(e[1].get("id")))

    for kind in ("settings", "roles", "users", "employees"):
        mine = [(etag, item) for k, etag, item in seen if k == kind]
        assert present(mine) == present(loaded.ledger.entries(kind)), kind
    assert all("history" not in item and "lastChange" not in item for _k, _e, item in seen)


async def test_a_copy_of_some_entities_is_a_load_while_the_marker_stands(
        store: SyncStore) -> None:
    """`Ledger.entries` gives what a caller keeps of the Emply side (ETag, entity without
    lastChange and history); `loaded_from` makes a load of some of them again, whose
    writes are guarded by those ETags, until another writer moves the marker."""
    await store.import_document(_doc())
    full = await store.load_emply()
    version = full.version()
    assert version is not None
    kept = {kind: list(full.ledger.entries(kind)) for kind in ("settings", "roles", "users",
                                                              "employees")}
    assert [item["id"] for _etag, item in kept["users"]] == [f"u{i:03d}" for i in range(5)]
    assert all(etag and "history" not in item and "lastChange" not in item
               for etag, item in kept["users"])
    assert [item["id"] for _e, item in full.ledger.entries("users", ["u003", "none"])] == [
        "u003"]
    some = await store.loaded_from(version, {"settings": kept["settings"],
                                             "users": kept["users"][1:3]})
    assert some.served_from_cache and some.cache() is None
    assert [u["id"] for u in some.doc["users"]] == ["u001", "u002"]
    assert some.doc["settings"] == full.doc["settings"] and some.doc["employees"] == []
    whole = await store.read_entities("users", ["u001"], loaded=some)
    await store.write_entities("users", [{**whole["u001"], "displayName": "mine"}], loaded=some)
    assert some.version() == await store.current_version() != version
    assert [item.get("displayName") for _e, item in some.ledger.entries("users", ["u001"])] == [
        "mine"]
    await store.write_entities("users", [{**whole["u001"], "displayName": "theirs"}])
    with pytest.raises(ConcurrentChangeError, match="u001"):
        await store.write_entities("users", [{**whole["u001"], "displayName": "again"}],
                                   loaded=some)
    # The marker moved since the copy was made: writes are still guarded entity by entity.
    stale = await store.loaded_from(version, {"users": kept["users"]})
    assert stale.version() is None
    await store.write_entities("users", [{**kept["users"][4][1], "displayName": "fine"}],
                               loaded=stale)
    with pytest.raises(ConcurrentChangeError, match="u001"):
        await store.write_entities("users", [{**whole["u001"], "displayName": "stale"}],
                                   loaded=stale)
    assert stale.version() is None


async def test_a_write_guarded_by_a_stale_load_is_a_conflict(store: SyncStore) -> None:
    await store.import_document(_doc())
    loaded = await store.load_emply()
    theirs = {**loaded.doc["users"][2], "displayName": "by the operator"}
    await store.write_entities("users", [theirs])
    mine = [{**u, "displayName": "by the sync"} for u in loaded.doc["users"]]
    with pytest.raises(ConcurrentChangeError) as info:
        await store.write_built("users", [u["id"] for u in mine],
                                {u["id"]: u for u in mine}.__getitem__, loaded=loaded)
    assert (info.value.kind, info.value.entity_id) == ("users", "u002")
    with pytest.raises(ConcurrentChangeError, match="u002"):
        await store.read_entities("users", ["u002"], loaded=loaded)
    # ... or, asked to, leaves it out and reads the others (the run then skips it)
    others = await store.read_entities("users", ["u001", "u002"], loaded=loaded,
                                       skip_conflicts=True)
    assert list(others) == ["u001"]
    after = {u["id"]: u for u in (await store.export_document())["users"]}
    assert after["u002"]["displayName"] == "by the operator"
    # deleted meanwhile is a conflict too
    again = await store.load_emply()
    await store.delete_entities("employees", [{"id": "e1"}, {"id": "never-there"}])
    with pytest.raises(ConcurrentChangeError, match="e1"):
        await store.write_entities("employees", again.doc["employees"], loaded=again)


async def test_write_built_takes_users_and_employees_only(store: SyncStore) -> None:
    with pytest.raises(ValueError, match="roles"):
        await store.write_built("roles", ["r1"], lambda i: {"id": i, "name": "R"})
    with pytest.raises(ValueError, match="unknown fields"):
        await store.write_built("users", ["u1"], lambda i: {"id": i, "surprise": 1})


async def test_imports_merge_or_replace_and_refuse_whole(store: SyncStore) -> None:
    await store.import_document(_doc(3))
    version = await store.current_version()
    bad = {"users": [{"id": "u-x", "username": "u0@c.com"}]}  # a taken username
    with pytest.raises(DocumentError):
        await store.import_document(bad)
    assert await store.current_version() == version
    await store.import_document({"users": [{"id": "u-x", "username": "x@c.com"}]})
    assert len((await store.export_document())["users"]) == 4
    assert await store.current_version() != version
    await store.import_document({"users": [{"id": "u-y", "username": "y@c.com"}]},
                                replace=True)
    doc = await store.export_document()
    assert [u["id"] for u in doc["users"]] == ["u-y"] and doc["settings"] is None
    await store.import_document({}, replace=True)
    assert await store.export_document() == validate_document({})
    assert await store.remove_stale_generations() == 0


# --- NotificationRecords, CursorKeys --------------------------------------------------------


def _subscription(resource: str, subscription_id: str) -> SubscriptionRecord:
    return SubscriptionRecord(resource=resource, subscription_id=subscription_id,
                              client_state="secret-" + subscription_id,
                              expires_at="2026-12-29T08:00:00Z", url_digest="d1",
                              created_at="2026-11-30T08:00:00Z")


async def test_subscriptions_are_stored_only_over_the_record_read(store: SyncStore) -> None:
    assert await store.subscriptions() == {}
    first = _subscription("users", "s-1")
    assert await store.save_subscription(first, expected=None)
    assert not await store.save_subscription(_subscription("users", "s-2"), expected=None)
    stored = (await store.subscriptions())["users"]
    assert stored == first and stored.etag
    # Two workers replace the record they both read: one wins, the other is told.
    assert await store.save_subscription(_subscription("users", "s-3"), expected=stored)
    assert not await store.save_subscription(_subscription("users", "s-4"), expected=stored)
    assert (await store.subscriptions())["users"].subscription_id == "s-3"
    await store.delete_subscription(stored)  # stale: left alone
    assert (await store.subscriptions())["users"].subscription_id == "s-3"
    await store.delete_subscription((await store.subscriptions())["users"])
    assert await store.subscriptions() == {}


async def test_a_lifecycle_event_is_claimed_once(store: SyncStore) -> None:
    now = "2026-11-30T08:00:00Z"
    assert await store.claim_lifecycle("s-1", "subscriptionRemoved", now)
    assert not await store.claim_lifecycle("s-1", "subscriptionRemoved", now)
    assert not await store.claim_lifecycle("s-1", "subscriptionRemoved",
                                           "2027-11-30T08:00:00Z")  # no lapse without a ttl
    assert await store.claim_lifecycle("s-1", "reauthorizationRequired", now, ttl_seconds=600)
    assert not await store.claim_lifecycle("s-1", "reauthorizationRequired",
                                           "2026-11-30T08:09:59Z", ttl_seconds=600)
    assert await store.claim_lifecycle("s-1", "reauthorizationRequired",
                                       "2026-11-30T08:10:00Z", ttl_seconds=600)
    await store.release_lifecycle("s-1", "subscriptionRemoved")  # its action failed
    assert await store.claim_lifecycle("s-1", "subscriptionRemoved", now)


async def test_the_debounce_moves_only_from_what_was_read(store: SyncStore) -> None:
    seen = await store.read_debounce()
    assert seen.scheduled_at is None
    assert await store.write_debounce(seen, "2026-11-30T08:01:00Z")
    assert not await store.write_debounce(seen, "2026-11-30T08:02:00Z")
    assert (await store.read_debounce()).scheduled_at == "2026-11-30T08:01:00Z"


async def test_the_cursor_key_is_made_once(store: SyncStore) -> None:
    key = await store.cursor_key()
    assert len(key) == 32 and await store.cursor_key() == key


# --- uniqueness under concurrency (issue 24) -------------------------------------------------


async def test_a_username_or_entra_id_another_user_holds_is_refused_at_write(
        store: SyncStore) -> None:
    """Two writers that each checked against what they read: the store lets one of them
    hold the value (case and Unicode form ignored), the other is refused or skipped."""
    await store.import_document(_doc(2))
    first = {**validate_document({"users": [{"id": "u-a", "username": "Same@c.com",
                                             "entraId": "E-1"}]})["users"][0]}
    await store.write_entities("users", [first])
    for clash in ({"username": "same@C.COM "}, {"entraId": "e-1"}):
        second = validate_document({"users": [{"id": "u-b", "username": "other@c.com",
                                               **clash}]})["users"][0]
        with pytest.raises(ConcurrentChangeError) as info:
            await store.write_entities("users", [second])
        assert info.value.entity_id == "u-b"
        assert await store.write_built("users", ["u-b"], lambda _i, s=second: s,
                                       skip_conflicts=True) == ["u-b"]
    assert sorted(u["id"] for u in (await store.export_document())["users"]) == [
        "u-a", "u000", "u001"]
    # The holder may rename; its old value is then free for another user.
    await store.write_entities("users", [{**first, "username": "renamed@c.com"}])
    free = validate_document({"users": [{"id": "u-b", "username": "same@c.com"}]})["users"][0]
    await store.write_entities("users", [free])
    # And a deleted user's values are free again.
    await store.delete_entities("users", [{"id": "u-a"}])
    again = validate_document({"users": [{"id": "u-c", "username": "renamed@c.com",
                                          "entraId": "E-1"}]})["users"][0]
    assert await store.write_built("users", ["u-c"], lambda _i: again,
                                   skip_conflicts=True) == []
