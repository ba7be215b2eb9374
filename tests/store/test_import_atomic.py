"""Imports are all or nothing (issue 17): refused before writing, or failing midway
without touching what readers see, against a real Azurite."""

from __future__ import annotations

import asyncio
import copy
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.app import emply_import
from shared.emply.document import DocumentError
from shared.store import EmplyStore, RunInProgress, open_store
from shared.store.errors import EmplyReplaced, ImportFailed, LeaseLost
from tests.support.azurite import ROOT, AzuriteProcess
from tests.support.faulty_storage import FaultyTransport, faulty_store


def state(users: int, tag: str) -> dict[str, Any]:
    """An Emply side of `users` users (spread over most of the 256 partitions)."""
    return {
        "settings": {"tenantId": "t-1", "groups": [{"groupId": "g", "roleId": "employee"}],
                     "defaultRoleId": "employee"},
        "roles": [{"id": "employee", "name": f"Employee {tag}"}],
        "users": [{"id": f"u{i:04d}", "username": f"user{i}@contoso.com",
                   "email": f"user{i}@contoso.com", "displayName": f"User {i} {tag}",
                   "roles": ["employee"], "entraId": f"entra-{i}" if i % 2 else None}
                  for i in range(users)],
        "employees": [{"id": f"e{i}", "email": f"emp{i}@contoso.com"} for i in range(20)],
    }


async def tables_of(azurite: AzuriteProcess, prefix: str) -> list[str]:
    async with TableServiceClient.from_connection_string(azurite.connection_string) as svc:
        return sorted([t.name async for t in svc.list_tables() if t.name.startswith(prefix)])


async def seen(azurite: AzuriteProcess, prefix: str) -> tuple[dict[str, Any], str | None]:
    """What a fresh reader sees: the whole Emply side and the version marker."""
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as s:
        return await s.export_document(), await s.current_version()


@pytest.mark.parametrize("replace", [False, True], ids=["upsert", "replace"])
async def test_a_storage_failure_midway_leaves_the_previous_state_whole(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str, replace: bool) -> None:
    await store.import_document(state(600, "before"))
    before, version = await seen(azurite, prefix)
    tables = await tables_of(azurite, prefix)
    transport = FaultyTransport(fail_batch=100)  # of about 260 transactions
    async with faulty_store(azurite.connection_string, prefix, transport) as broken:
        with pytest.raises(ImportFailed, match="nothing was imported") as info:
            await broken.import_document(state(600, "after"), replace=replace)
    assert not info.value.outcome_unknown
    assert transport.batches >= 100
    # Readers see the previous state whole, under the same marker (caches stay valid),
    # and the unfinished generation is gone.
    assert await seen(azurite, prefix) == (before, version)
    assert await tables_of(azurite, prefix) == tables
    # The same import then goes through.
    await store.import_document(state(600, "after"), replace=replace)
    after, _ = await seen(azurite, prefix)
    assert {u["displayName"] for u in after["users"]} == {f"User {i} after" for i in range(600)}


@pytest.mark.slow
async def test_a_crash_midway_changes_nothing_and_the_next_import_clears_up(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    """Storage unreachable from the failed transaction on: the store can neither finish
    nor clean up, as after kill -9. What readers see is still the previous state."""
    await store.import_document(state(300, "before"))
    before, version = await seen(azurite, prefix)
    tables = await tables_of(azurite, prefix)
    transport = FaultyTransport(fail_batch=50, then_down=True)
    async with faulty_store(azurite.connection_string, prefix, transport) as broken:
        with pytest.raises(ImportFailed) as info:
            await broken.import_document(state(300, "after"), replace=True)
    assert info.value.outcome_unknown  # it could not even read the marker back
    assert await seen(azurite, prefix) == (before, version)
    leftover = set(await tables_of(azurite, prefix)) - set(tables)
    assert len(leftover) == 2  # the half-written generation and its uniqueness index
    counts = await emply_import.import_emply(store, state(300, "after"), replace=True)
    assert counts["users"] == 300
    assert not leftover & set(await tables_of(azurite, prefix))
    assert len(await tables_of(azurite, prefix)) == len(tables)


async def test_a_switch_whose_answer_is_lost_still_counts(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    """The switch was made but its answer lost (azure-core then sends the PUT again,
    whose If-Match now fails): the import took effect, and its table is kept."""
    await store.import_document(state(50, "before"))
    tables = await tables_of(azurite, prefix)
    transport = FaultyTransport(lose_marker_answer=True)
    async with faulty_store(azurite.connection_string, prefix, transport) as importer:
        counts = await importer.import_document(state(50, "after"), replace=True)
    assert not transport.lose_marker_answer  # the answer was lost
    assert counts["users"] == 50
    after, _ = await seen(azurite, prefix)
    assert {u["displayName"] for u in after["users"]} == {f"User {i} after" for i in range(50)}
    assert len(await tables_of(azurite, prefix)) == len(tables)  # the old one dropped


async def test_a_write_by_another_store_during_an_import_wins(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    """The switch is conditional on the marker the import started from: an edit made
    meanwhile is never silently overwritten; the import changes nothing."""
    await store.import_document(state(300, "before"))
    transport = FaultyTransport(pause_batch=20)
    async with faulty_store(azurite.connection_string, prefix, transport) as importer:
        task = asyncio.create_task(importer.import_document(state(300, "after")))
        await transport.paused.wait()
        loaded = await store.load_emply()
        edited = copy.deepcopy(loaded.doc["users"][0])
        edited["displayName"] = "edited meanwhile"
        await store.write_entities("users", [edited], loaded=loaded)
        transport.resume.set()
        with pytest.raises(EmplyReplaced, match="nothing was imported"):
            await task
    after, _ = await seen(azurite, prefix)
    names = {u["id"]: u["displayName"] for u in after["users"]}
    assert names["u0000"] == "edited meanwhile"
    assert names["u0001"] == "User 1 before"


async def test_the_import_holds_the_sync_lease(azurite: AzuriteProcess, store: EmplyStore,
                                               prefix: str) -> None:
    await store.import_document(state(50, "before"))
    await store.acquire_lease("run-1", "timer")
    with pytest.raises(RunInProgress) as info:
        await emply_import.import_emply(store, state(50, "after"))
    assert info.value.running_run_id == "run-1"
    assert {u["displayName"] for u in (await seen(azurite, prefix))[0]["users"]} \
        == {f"User {i} before" for i in range(50)}
    await store.release_lease("run-1")

    transport = FaultyTransport(pause_batch=5)
    async with faulty_store(azurite.connection_string, prefix, transport) as importer:
        task = asyncio.create_task(emply_import.import_emply(importer, state(50, "after")))
        await transport.paused.wait()
        with pytest.raises(RunInProgress) as running:
            await store.acquire_lease("run-2", "timer")
        assert running.value.trigger == "import"
        assert running.value.running_run_id.startswith("import-")
        transport.resume.set()
        await task
    assert await store.current_lease() is None  # released
    # also when the import is refused
    with pytest.raises(DocumentError):
        await emply_import.import_emply(store, b'{"users": [{"id": "u"}]}')
    assert await store.current_lease() is None
    await store.acquire_lease("run-3", "timer")


async def test_a_lost_lease_stops_the_switch(azurite: AzuriteProcess, store: EmplyStore,
                                             prefix: str) -> None:
    await store.import_document(state(30, "before"))
    before = await seen(azurite, prefix)
    tables = await tables_of(azurite, prefix)

    async def lost() -> None:
        raise LeaseLost("import-x")

    with pytest.raises(LeaseLost):
        await store.import_document(state(30, "after"), replace=True, before_switch=lost)
    assert await seen(azurite, prefix) == before
    assert await tables_of(azurite, prefix) == tables


async def test_what_table_storage_refuses_is_refused_before_anything_is_written(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    await store.import_document(state(3, "before"))
    before = await seen(azurite, prefix)
    written = store.stats["entities_written"]
    bad = state(3, "after")
    bad["users"][0]["displayName"] = "x" * 100_000
    bad["users"][1]["history"] = [{"note": "y" * 30_000} for _ in range(40)]
    bad["users"][2]["displayName"] = "broken \ud800 text"
    bad["employees"][0] = {"id": "/" * 200, "email": "new@contoso.com"}  # 600 once encoded
    # Each field within 64 KiB, the whole entity over 1 MiB as the JSON Azurite is sent
    # (a control character is six bytes there).
    bad["employees"][1].update({name: "\x01" * 30_000 for name in (
        "displayName", "givenName", "surname", "jobTitle", "department", "mobilePhone")})
    bad["employees"][2]["status"] = "gone"  # listed with them: every problem at once
    for replace in (False, True):
        with pytest.raises(DocumentError) as info:
            await store.import_document(bad, replace=replace)
        paths = [path for path, _ in info.value.errors]
        assert paths.pop(0) == 'employees[2] (id "e2").status'
        assert paths == ['users[0] (id "u0000").displayName',
                         'users[1] (id "u0001").history',
                         'users[1] (id "u0001")',
                         'users[2] (id "u0002").displayName',
                         f'employees[0] (id "{"/" * 56}...).id',
                         'employees[1] (id "e1")'], info.value.report()
        details = dict(info.value.errors[1:])
        assert details[paths[0]] == ("100,000 characters (200,000 bytes as stored, UTF-16), "
                                     "more than Table Storage's 64 KiB (65,536 bytes) per "
                                     "property")
        assert "1 MiB per entity (largest field: history" in details[paths[2]]
        assert "unpaired UTF-16 surrogate" in details[paths[3]]
        assert "too long for a Table Storage key" in details[paths[4]]
        assert "1 MiB per entity" in details[paths[5]]
    assert store.stats["entities_written"] == written
    assert await seen(azurite, prefix) == before


async def test_a_plain_import_checks_uniqueness_against_the_stored_entities(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    await store.import_document(state(5, "before"))
    with pytest.raises(DocumentError) as info:
        await store.import_document({"users": [
            {"id": "u-new", "username": "USER1@contoso.com ", "email": "user2@Contoso.com",
             "entraId": "ENTRA-3"}],
            "employees": [{"id": "e-new", "email": "Emp4@contoso.com"}]})
    assert info.value.errors == [
        ('users[0] (id "u-new").username', '"USER1@contoso.com " is also the username of '
         'stored user "u0001" (compared ignoring case and surrounding spaces)'),
        ('users[0] (id "u-new").entraId', '"ENTRA-3" is also the entraId of stored user '
         '"u0003" (compared ignoring case and surrounding spaces)'),
        ('employees[0] (id "e-new").email', '"Emp4@contoso.com" is also the e-mail address '
         'of stored employee "e4" (compared ignoring case and surrounding spaces)'),
    ]
    # (Its e-mail address, user u0002's too, is no problem: users may share one, R3.)
    # The stored user itself may change its username; a replace checks the file alone.
    await store.import_document({"users": [{"id": "u0001", "username": "renamed@contoso.com",
                                            "roles": ["employee"]}]})
    await store.import_document({"users": [{"id": "u-new", "username": "user1@contoso.com"}]},
                                replace=True)


async def test_a_plain_import_keeps_what_the_file_does_not_name_and_drops_old_tables(
        azurite: AzuriteProcess, store: EmplyStore, prefix: str) -> None:
    """The first import moves the Emply side out of the marker's table (where a store
    that never imported writes it); later ones replace one generation table by the next."""
    seed = {"id": "u-seed", "username": "seed@contoso.com"}
    from shared.emply.document import validate_document
    await store.write_entities("users", validate_document({"users": [seed]})["users"],
                               loaded=await store.load_emply())
    await store.import_document(state(10, "one"))
    first, _ = await seen(azurite, prefix)
    assert "u-seed" in {u["id"] for u in first["users"]}
    await store.import_document({"users": [{"id": "u0003", "username": "user3@contoso.com",
                                            "displayName": "changed", "roles": ["employee"]}]})
    second, _ = await seen(azurite, prefix)
    assert len(second["users"]) == 11
    assert {u["id"]: u["displayName"] for u in second["users"]}["u0003"] == "changed"
    assert second["settings"] == first["settings"]
    assert second["employees"] == first["employees"]
    # Only the marker's table (the marker alone in it now) and the current generation.
    names = await tables_of(azurite, prefix)
    # (and the current generation's uniqueness index: shared.store.unique_index)
    assert len([n for n in names if n.startswith(prefix + "emply")]) == 3
    async with TableServiceClient.from_connection_string(azurite.connection_string) as svc:
        rows = [r async for r in svc.get_table_client(prefix + "emply").list_entities()]
    # (and which generation's uniqueness index is whole: shared.store.unique_index)
    assert [(r["PartitionKey"], r["RowKey"]) for r in rows] == [("meta", "uniqueindex"),
                                                               ("meta", "version")]


@pytest.mark.slow
def test_kill_9_midway_changes_nothing(azurite: AzuriteProcess, prefix: str) -> None:
    """A real crash: an import in its own process, killed with SIGKILL while its
    transactions are under way (one held by the transport so the kill lands midway)."""
    script = textwrap.dedent(f"""
        import asyncio
        from tests.store.test_import_atomic import state
        from tests.support.faulty_storage import FaultyTransport, faulty_store

        async def main() -> None:
            transport = FaultyTransport(pause_batch=60)
            async with faulty_store({azurite.connection_string!r}, {prefix!r},
                                    transport) as store:
                task = asyncio.create_task(
                    store.import_document(state(600, "after"), replace=True))
                await transport.paused.wait()
                print("paused", flush=True)
                await task

        asyncio.run(main())
    """)

    async def setup() -> tuple[tuple[dict[str, Any], str | None], list[str]]:
        async with open_store(connection_string=azurite.connection_string,
                              prefix=prefix) as store:
            await store.import_document(state(600, "before"))
        return await seen(azurite, prefix), await tables_of(azurite, prefix)

    before, tables = asyncio.run(setup())
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"paused\n", child.stderr.read() if child.stderr else ""
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    async def after() -> None:
        assert await seen(azurite, prefix) == before
        # The half-written generation and its (empty) uniqueness index table.
        assert len(set(await tables_of(azurite, prefix)) - set(tables)) == 2
        async with open_store(connection_string=azurite.connection_string,
                              prefix=prefix) as store:
            await emply_import.import_emply(store, state(600, "after"), replace=True)
        assert len(await tables_of(azurite, prefix)) == len(tables)
        assert {u["displayName"] for u in (await seen(azurite, prefix))[0]["users"]} \
            == {f"User {i} after" for i in range(600)}

    asyncio.run(after())
