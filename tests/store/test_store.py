"""EmplyStore against a real Azurite (Table + Blob)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import pytest

from shared.emply.document import ENTITY_KINDS, DocumentError, entity_key, validate_document
from shared.store import (
    ConcurrentChangeError,
    EmplyStore,
    LeaseLost,
    RunInProgress,
    open_store,
    wire,
)
from shared.store.azure_store import bucket
from shared.store.keys import decode_key, encode_key, expand_connection_string
from tests.support.azurite import AzuriteProcess

ODD_IDS = ["a/b", "back\\slash", "hash#tag", "what?", "per%cent", "it's", "pipe|d",
           "quo\"te", "ünïcødé ✓", "  spaced  "]


def document() -> dict[str, Any]:
    return {
        "settings": {"tenantId": "tenant-1", "syncRoles": True,
                     "groups": [{"groupId": "g-emp", "roleId": "employee"},
                                {"groupId": "g/odd#1", "roleId": None}],
                     "defaultRoleId": "employee", "allowedDomains": ["contoso.com"],
                     "writeBack": {"create": False, "update": True, "delete": False},
                     "deactivationGuard": {"maxCount": 10, "maxPercent": 12.5}},
        "roles": [{"id": "employee", "name": "Employee"},
                  {"id": "administrator", "name": "Administrator", "administrator": True},
                  {"id": "hr", "name": "HR"}, {"id": "manager", "name": "Manager"}],
        "users": [
            {"id": "u-megan", "username": "megan.jordan@contoso.com",
             "email": "megan.jordan@contoso.com", "displayName": "Megan Jordan",
             "roles": ["employee", "hr", "manager"], "source": "entra",
             "entraId": "0000-megan", "linkedAt": "2026-11-01T10:00:00Z",
             "tenantId": "tenant-1", "photo": {"sha256": "abc"},
             "syncGroups": ["g-emp"],
             "lastChange": {"rule": "R3", "reason": "link_user", "runId": "r1"},
             "history": [{"at": "2026-11-01T10:00:00Z", "reason": "link_user"}]},
            {"id": "u-ray", "username": "ray.ross@contoso.com", "employeeId": "e-ray",
             "status": "deactivated", "deactivationReason": "removed_from_groups",
             "deactivatedBy": "sync"},
            {"id": "u-old", "username": "old@contoso.com", "status": "deactivated"},
        ],
        "employees": [{"id": "e-ray", "email": "ray.ross@contoso.com",
                       "displayName": "Ray Ross", "givenName": "Ray", "surname": "Ross",
                       "resignationDate": "2027-01-31", "status": "pending"}],
        "calendars": [{"userId": "u-megan", "id": "AAMk/cal=1", "name": "Calendar",
                       "isDefault": True, "enabled": True}],
        "events": [{"userId": "u-megan", "calendarId": "AAMk/cal=1", "id": "ev#1",
                    "subject": "1:1", "start": "2026-12-01T09:00:00",
                    "end": "2026-12-01T09:30:00", "timeZone": "UTC", "showAs": "busy"}],
        "outboundEvents": [{"id": "o-1", "userId": "u-megan", "subject": "Interview",
                            "start": "2026-12-02T10:00:00Z", "end": "2026-12-02T11:00:00Z",
                            "graphId": "AAMk-graph", "status": "created"}],
    }


def ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with each section sorted by entity key (the store's order)."""
    out = dict(doc)
    for kind in ENTITY_KINDS:
        out[kind] = sorted(doc[kind], key=lambda e, k=kind: entity_key(k, e))  # type: ignore[misc]
    return out


def report(run_id: str, started: str, status: str = "succeeded") -> dict[str, Any]:
    return {"runId": run_id, "trigger": "timer", "status": status, "dryRun": False,
            "startedAt": started, "finishedAt": started, "counts": {"create_user": 2},
            "changes": [{"kind": "create_user", "userId": "u1"}],
            "held": [{"kind": "deactivate_user"}], "errors": []}


def test_key_encoding_round_trips() -> None:
    for value in [*ODD_IDS, "%2F", "\x00\x1f\x7f"]:
        key = encode_key(value)
        assert not any(c in key for c in "/\\#?'|") and all(ord(c) >= 0x20 for c in key)
        assert decode_key(key) == value


def test_development_storage_is_expanded() -> None:
    conn = expand_connection_string("UseDevelopmentStorage=true")
    assert "AccountName=devstoreaccount1" in conn
    assert "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1" in conn
    assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1" in conn
    assert expand_connection_string("AccountName=x;AccountKey=y") == "AccountName=x;AccountKey=y"


async def test_empty_store(store: EmplyStore) -> None:
    doc = await store.export_document()
    assert doc == validate_document({})
    assert await store.load_sync_state() is None
    assert await store.last_run() is None
    assert await store.get_run("nope") is None
    await store.ping()


async def test_import_export_round_trip(store: EmplyStore) -> None:
    counts = await store.import_document(document())
    assert counts == {"settings": 1, "roles": 4, "users": 3, "employees": 1,
                      "calendars": 1, "events": 1, "outboundEvents": 1}
    exported = await store.export_document()
    assert ordered(exported) == ordered(validate_document(document()))
    by_id = {u["id"]: u for u in exported["users"]}
    assert by_id["u-old"]["deactivatedBy"] == "emply"
    assert by_id["u-megan"]["history"] == document()["users"][0]["history"]

    await store.import_document(copy.deepcopy(exported), replace=True)
    assert await store.export_document() == exported
    await store.import_document(copy.deepcopy(exported))
    assert await store.export_document() == exported


async def test_malformed_import_writes_nothing(store: EmplyStore) -> None:
    await store.import_document(document())
    before = await store.export_document()
    bad = document()
    bad["users"].append({"id": "u-new", "username": "new@contoso.com"})
    bad["roles"].append({"id": "sales"})
    bad["employees"][0]["status"] = "gone"
    written = store.stats["entities_written"]
    for replace in (False, True):
        with pytest.raises(DocumentError) as info:
            await store.import_document(bad, replace=replace)
        assert info.value.path == 'employees[0] (id "e-ray").status'
    assert store.stats["entities_written"] == written
    assert await store.export_document() == before


async def test_import_checks_references_against_stored_entities(store: EmplyStore) -> None:
    await store.import_document(document())
    # settings alone: roles come from the store
    await store.import_document({"settings": document()["settings"]})
    with pytest.raises(DocumentError) as info:
        await store.import_document({"settings": {
            "tenantId": "t", "groups": [{"groupId": "g", "roleId": "ghost"}],
            "defaultRoleId": "employee"}})
    assert info.value.path == "settings.groups[0].roleId"
    # a roles section adds to the stored roles
    await store.import_document({"roles": [{"id": "hr"}], "settings": {
        "tenantId": "t", "groups": [{"groupId": "g", "roleId": "hr"}],
        "defaultRoleId": "administrator"}})
    # users alone: employees come from the store
    await store.import_document({"users": [{"id": "u2", "username": "x",
                                            "employeeId": "e-ray"}]})
    with pytest.raises(DocumentError, match="unknown employee"):
        await store.import_document({"users": [{"id": "u3", "username": "y",
                                                "employeeId": "e-ghost"}]})
    with pytest.raises(DocumentError, match="unknown user"):
        await store.import_document({"calendars": [{"userId": "u-ghost", "id": "c"}]})
    # replace mode: only the file counts
    with pytest.raises(DocumentError, match="unknown role"):
        await store.import_document({"settings": document()["settings"]}, replace=True)


async def test_replace_keeps_sync_state_and_runs(store: EmplyStore) -> None:
    await store.import_document(document())
    await store.save_sync_state({"deltaLink": "x"})
    await store.save_run(report("r1", "2026-11-26T10:00:00Z"))
    await store.acquire_lease("r2", "timer")
    await store.import_document({"users": [{"id": "u-only", "username": "only"}]},
                                replace=True)
    doc = await store.export_document()
    assert doc["settings"] is None and doc["roles"] == [] and doc["events"] == []
    assert [u["id"] for u in doc["users"]] == ["u-only"]
    assert await store.load_sync_state() == {"deltaLink": "x"}
    assert [r["runId"] for r in await store.list_runs()] == ["r1"]
    with pytest.raises(RunInProgress):
        await store.acquire_lease("r3", "http")


async def test_odd_keys_round_trip(store: EmplyStore) -> None:
    users = [{"id": i, "username": f"{n}@contoso.com"} for n, i in enumerate(ODD_IDS)]
    calendars = [{"userId": i, "id": i + "/cal?#", "isDefault": True,
                  "enabled": True} for i in ODD_IDS]
    await store.import_document({"users": users, "calendars": calendars})
    doc = await store.export_document()
    assert sorted(u["id"] for u in doc["users"]) == sorted(ODD_IDS)
    assert sorted(c["id"] for c in doc["calendars"]) == sorted(i + "/cal?#" for i in ODD_IDS)
    await store.delete_entities("users", [{"id": "a/b"}, {"id": "never-there"}])
    assert "a/b" not in {u["id"] for u in (await store.export_document())["users"]}


def _same_bucket_ids(count: int) -> list[str]:
    """`count` user ids whose entities share one partition (bucket)."""
    target = bucket(encode_key("u0000"))
    ids = (f"u{i:04d}" for i in range(1_000_000))
    return sorted([i for i in ids if bucket(encode_key(i)) == target][:count])


async def test_250_users_of_one_partition_in_three_transactions(store: EmplyStore) -> None:
    ids = _same_bucket_ids(250)
    users = validate_document({"users": [{"id": i, "username": f"{i}@c.com"}
                                         for i in ids]})["users"]
    empty = await store.load_emply()
    before = dict(store.stats)
    await store.write_entities("users", users, loaded=empty)
    assert store.stats["batches"] - before["batches"] == 3
    assert store.stats["marker_writes"] - before["marker_writes"] == 2  # before and after
    assert store.stats["entities_written"] - before["entities_written"] == 250
    assert list(store.batches_by_partition.values()) == [[3, 250]]
    reloaded = await store.load_emply()
    loaded = reloaded.doc["users"]
    assert loaded == users
    # queries follow continuation tokens
    pages = [page async for page in wire.query(
        store.emply, "PartitionKey ge 'user-' and PartitionKey lt 'user.'", page_size=100)]
    assert [len(p) for p in pages] == [100, 100, 50]
    # written back unchanged with ETags: again 3 transactions, no conflict
    before = dict(store.stats)
    await store.write_entities("users", loaded, loaded=reloaded)
    assert store.stats["batches"] - before["batches"] == 3
    assert store.stats["entities_replaced"] - before["entities_replaced"] == 250


async def test_users_spread_over_partitions(store: EmplyStore) -> None:
    """1,000 users land in many hash buckets, one transaction per partition touched
    (each gets fewer than 100), and read back whole, in RowKey order."""
    users = validate_document({"users": [{"id": f"u{i:04d}", "username": f"u{i}@c.com"}
                                         for i in range(1000)]})["users"]
    employees = validate_document({"employees": [{"id": f"e{i:03d}", "email": f"e{i}@c.com"}
                                                 for i in range(300)]})["employees"]
    await store.write_entities("users", users)
    by_partition = dict(store.batches_by_partition)
    assert all(pk.startswith("user-") and len(pk) == 7 for pk in by_partition)
    assert len(by_partition) > 200  # of 256 buckets
    assert all(n < 100 for _tx, n in by_partition.values())
    assert all(tx == 1 for tx, _n in by_partition.values())
    assert store.stats["batches"] == len(by_partition)
    assert sum(n for _tx, n in by_partition.values()) == 1000
    await store.write_entities("employees", employees)
    assert {pk[:9] for pk in store.batches_by_partition if not pk.startswith("user-")} \
        == {"employee-"}
    doc = await store.export_document()
    assert doc["users"] == users
    assert doc["employees"] == employees
    # an entity's partition is its bucket, stable across runs
    rows = [row async for page in wire.query(
        store.emply, f"PartitionKey eq 'user-{bucket('u0001')}'") for row in page]
    assert "u0001" in {row["id"] for row in rows}
    assert all(bucket(row["RowKey"]) == bucket("u0001") for row in rows)
    # deleting covers every bucket
    await store.delete_entities("users", users)
    await store.delete_entities("employees", employees)
    assert store.stats["entities_deleted"] == 1300
    doc = await store.export_document()
    assert doc["users"] == [] and doc["employees"] == []


async def test_etag_conflict_is_detected(azurite: AzuriteProcess, store: EmplyStore,
                                         prefix: str) -> None:
    users = [{"id": f"u{i:03d}", "username": f"u{i}"} for i in range(150)]
    await store.import_document({"users": users})
    loaded = await store.load_emply()
    mine = loaded.doc["users"]
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as other:
        theirs = (await other.export_document())["users"]
        theirs[120]["displayName"] = "changed by the operator"
        await other.write_entities("users", [theirs[120]])
    for user in mine:
        user["displayName"] = "changed by the sync"
    with pytest.raises(ConcurrentChangeError) as info:
        await store.write_entities("users", mine, loaded=loaded)
    assert info.value.entity_id == "u120"
    assert info.value.kind == "users"
    # the operator's edit survived
    again = await store.load_emply()
    reloaded = {u["id"]: u for u in again.doc["users"]}
    assert reloaded["u120"]["displayName"] == "changed by the operator"
    # after reloading, writing works again; new users need no ETag
    new_user = validate_document({"users": [{"id": "u-new", "username": "n"}]})["users"][0]
    fresh = [*reloaded.values(), new_user]
    await store.write_entities("users", fresh, loaded=again)
    # ETags refreshed by the previous write
    await store.write_entities("users", fresh, loaded=again)


async def test_deleted_meanwhile_is_a_conflict(azurite: AzuriteProcess, store: EmplyStore,
                                               prefix: str) -> None:
    await store.import_document({"employees": [{"id": "e1", "email": "e1@c.com"}]})
    loaded = await store.load_emply()
    employees = loaded.doc["employees"]
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as other:
        await other.delete_entities("employees", [{"id": "e1"}])
    employees[0]["status"] = "archived"
    with pytest.raises(ConcurrentChangeError, match="e1"):
        await store.write_entities("employees", employees, loaded=loaded)


async def test_concurrent_lease_has_one_winner(azurite: AzuriteProcess, store: EmplyStore,
                                               prefix: str) -> None:
    others = [open_store(connection_string=azurite.connection_string, prefix=prefix)
              for _ in range(4)]
    stores = [store, *others]
    try:
        results = await asyncio.gather(
            *(s.acquire_lease(f"run-{n}", "timer" if n % 2 else "http")
              for n, s in enumerate(stores)), return_exceptions=True)
        winners = [n for n, r in enumerate(results) if r is None]
        assert len(winners) == 1, results
        winner = f"run-{winners[0]}"
        for result in results:
            if result is not None:
                assert isinstance(result, RunInProgress)
                assert result.running_run_id == winner
                assert result.started_at
        lease = await store.current_lease()
        assert lease is not None and lease["runId"] == winner
        # a loser cannot release it, the winner can
        loser = f"run-{(winners[0] + 1) % 5}"
        await store.release_lease(loser)
        with pytest.raises(RunInProgress) as info:
            await store.acquire_lease("run-late", "http")
        assert info.value.running_run_id == winner
        await store.renew_lease(winner)
        with pytest.raises(LeaseLost):
            await store.renew_lease(loser)
        await store.release_lease(winner)
        await store.acquire_lease("run-next", "http")
    finally:
        for s in others:
            await s.close()


async def test_expired_lease_is_taken_over(azurite: AzuriteProcess, prefix: str) -> None:
    now = [dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)]

    def clock() -> dt.datetime:
        return now[0]

    async with open_store(connection_string=azurite.connection_string, prefix=prefix,
                          clock=clock) as store:
        await store.acquire_lease("run-1", "timer", ttl_seconds=900)
        now[0] += dt.timedelta(seconds=899)
        with pytest.raises(RunInProgress) as info:
            await store.acquire_lease("run-2", "http")
        assert (info.value.running_run_id, info.value.trigger) == ("run-1", "timer")
        assert info.value.started_at.startswith("2026-11-26T10:00:00")
        now[0] += dt.timedelta(seconds=2)
        taken = await store.acquire_lease("run-2", "http")
        # The expired lease it took over: who held it and when it was last renewed.
        assert taken is not None and taken["runId"] == "run-1"
        assert taken["renewedAt"].startswith("2026-11-26T10:00:00")
        with pytest.raises(LeaseLost):
            await store.renew_lease("run-1")
        await store.release_lease("run-1")  # not ours any more: no effect
        lease = await store.current_lease()
        assert lease is not None and lease["runId"] == "run-2"


async def test_run_history(store: EmplyStore) -> None:
    await store.save_run(report("r-old", "2026-11-26T09:00:00Z"))
    await store.save_run(report("r/new", "2026-11-26T10:30:00Z", status="running"))
    await store.save_run(report("r-mid", "2026-11-26T10:00:00.500000+00:00"))
    final = report("r/new", "2026-11-26T10:30:00Z", status="needs_approval")
    await store.save_run(final)  # the same run again: updated, not duplicated
    runs = await store.list_runs()
    assert [r["runId"] for r in runs] == ["r/new", "r-mid", "r-old"]
    assert runs[0] == {"runId": "r/new", "trigger": "timer", "status": "needs_approval",
                       "dryRun": False, "startedAt": "2026-11-26T10:30:00Z",
                       "finishedAt": "2026-11-26T10:30:00Z", "counts": {"create_user": 2},
                       "heldCount": 1, "errorCount": 0}
    assert [r["runId"] for r in await store.list_runs(limit=2)] == ["r/new", "r-mid"]
    assert await store.get_run("r/new") == final
    last = await store.last_run()
    assert last is not None and last["runId"] == "r/new"


async def test_sync_state_round_trip(store: EmplyStore) -> None:
    state = {"deltaLinks": {"users": "https://graph/delta?token=x"},
             "mirror": {f"id-{i}": {"upn": f"user{i}@contoso.com", "groups": ["g1"]}
                        for i in range(5000)},
             "previousMapping": {"g-emp": "employee"}, "ünï": "✓"}
    await store.save_sync_state(state)
    assert await store.load_sync_state() == state
    await store.save_sync_state({"v": 2})
    assert await store.load_sync_state() == {"v": 2}


async def test_a_large_sync_state_goes_up_in_blocks_and_reads_back(
        store: EmplyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.store import blobs

    monkeypatch.setattr(blobs, "BLOCK_BYTES", 1024)
    state = {"users": {f"id-{i}": {"upn": f"user{i}@contoso.com", "n": i * 7919 % 10007}
                       for i in range(20000)}, "head": "ünï ✓"}
    await store.save_sync_state(state)
    blob = store.syncstate.get_blob_client("state.json.gz")
    blocks = await blob.get_block_list("committed")
    assert len(blocks[0]) > 3
    assert await store.load_sync_state() == state
    await store.save_sync_state({"v": 3})  # a small value replaces it in one put
    assert await store.load_sync_state() == {"v": 3}


async def test_an_index_part_reads_back_chunk_by_chunk_into_its_recorded_size(
        store: EmplyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index part is read in the blob's chunks, each decompressed into one buffer of
    the size saved in its metadata; a blob whose content and size disagree is refused
    (the run then reads that side as a whole), one saved without the size still reads."""
    import os
    import zlib

    from shared.store import blobs, syncstate

    monkeypatch.setattr(blobs, "BLOCK_BYTES", 64 * 1024)
    monkeypatch.setattr(syncstate, "_OUT_BYTES", 1000)  # several pieces per chunk
    store.syncstate._config.max_chunk_get_size = 100 * 1024  # several chunks
    store.syncstate._config.max_single_get_size = 100 * 1024
    pieces = [os.urandom(300 * 1024), b"\x00entra" * 50000, memoryview(b"tail")]
    generation = "0123456789abcdef0123456789abcdef"
    await store.save_index(generation, "entra", pieces)
    blob = store.syncstate.get_blob_client(syncstate.index_blob("entra", generation))
    assert len((await blob.get_block_list("committed"))[0]) > 3
    assert (await blob.get_blob_properties()).metadata == {"rawbytes": str(
        sum(len(p) for p in pieces))}
    chunks: list[int] = []
    take = syncstate._Filling.take
    monkeypatch.setattr(syncstate._Filling, "take",
                        lambda self, chunk: (chunks.append(len(chunk)), take(self, chunk))[1])
    assert await store.load_index(generation, "entra") == b"".join(pieces)
    assert len(chunks) > 3 and max(chunks) <= 100 * 1024

    await blob.upload_blob(zlib.compress(b"short"), overwrite=True,
                           metadata={"rawbytes": "6"})
    with pytest.raises(ValueError, match="5 bytes, 6 recorded"):
        await store.load_index(generation, "entra")
    await blob.upload_blob(zlib.compress(b"longer"), overwrite=True,
                           metadata={"rawbytes": "3"})
    with pytest.raises(ValueError, match="longer than its recorded 3 bytes"):
        await store.load_index(generation, "entra")
    await blob.upload_blob(b"not zlib", overwrite=True, metadata={"rawbytes": "3"})
    with pytest.raises(ValueError, match="not zlib data"):
        await store.load_index(generation, "entra")
    await blob.upload_blob(zlib.compress(b"older"), overwrite=True)  # no size kept
    assert await store.load_index(generation, "entra") == b"older"


async def test_a_large_run_report_goes_up_in_blocks_as_plain_json(
        store: EmplyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.store import blobs

    monkeypatch.setattr(blobs, "BLOCK_BYTES", 4096)
    report = {"runId": "r-big", "trigger": "timer", "status": "succeeded",
              "startedAt": "2026-11-26T10:00:00.000Z", "counts": {"create_user": 9000},
              "changes": [{"kind": "create_user", "userId": f"u{i}", "after": {"n": i}}
                          for i in range(9000)], "held": [], "errors": []}
    await store.save_run(report)
    blob = store.runreports.get_blob_client("r-big.json")
    assert len((await blob.get_block_list("committed"))[0]) > 3
    assert await store.get_run("r-big") == report


async def test_read_entities_finds_odd_ids_across_partitions_by_query(store: EmplyStore) -> None:
    users = [{"id": odd, "username": f"user{i}@contoso.com"} for i, odd in enumerate(ODD_IDS)]
    users += [{"id": f"u-{i}", "username": f"bulk{i}@contoso.com"} for i in range(60)]
    await store.import_document(validate_document({"users": users}))
    loaded = await store.load_emply()
    wanted = [*ODD_IDS, *(f"u-{i}" for i in range(60)), "missing", ODD_IDS[0]]
    found = await store.read_entities("users", wanted, loaded=loaded)
    assert set(found) == {*ODD_IDS, *(f"u-{i}" for i in range(60))}
    assert all(found[i]["id"] == i for i in found)


async def test_write_built_skips_only_the_entities_changed_meanwhile(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    """A transaction fails as a whole: it is sent again without the stale entities, which
    are returned; every other entity is written, the other writers' edits stay."""
    users = [{"id": f"u{i:03d}", "username": f"u{i}"} for i in range(600)]
    await store.import_document({"users": users})
    loaded = await store.load_emply()
    mine = {u["id"]: u for u in loaded.doc["users"]}
    stale = ["u007", "u120", "u121", "u599"]
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as other:
        theirs = {u["id"]: u for u in (await other.export_document())["users"]}
        await other.write_entities("users", [{**theirs[i], "displayName": "by Emply"}
                                             for i in stale])
        await other.delete_entities("users", [theirs["u300"]])

    def build(user_id: str) -> dict[str, Any]:
        return {**mine[user_id], "displayName": "by the sync"}

    skipped = await store.write_built("users", sorted(mine), build, loaded=loaded,
                                      skip_conflicts=True)
    assert sorted(skipped) == sorted([*stale, "u300"])
    after = {u["id"]: u for u in (await store.export_document())["users"]}
    assert "u300" not in after
    assert {i for i, u in after.items() if u["displayName"] == "by Emply"} == set(stale)
    assert {i for i, u in after.items() if u["displayName"] == "by the sync"} == (
        set(mine) - {*stale, "u300"})
    assert loaded.cache() is None  # someone else wrote: the loaded copy is not current
