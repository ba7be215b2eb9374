"""`emply-sync emply import` end to end (issue 17): every problem of a bad file listed
(exit 2, nothing written), files in the wrong encoding or too deep refused without a
traceback, and no import while a run holds the lease (exit 3)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared.app import boundary
from shared.run import pipeline
from tests.e2e import tenants as t


def _world(make_world: Any, latency_ms: float = 0) -> Any:
    people = t.staff(4)
    world = make_world(t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []}),
                       latency_ms=latency_ms)
    world.import_state(t.emply_state(users=[
        {"id": "u-0", "username": "person0.staff@contoso.com", "roles": ["employee"]}]))
    return world


def _import_bytes(world: Any, data: bytes, *extra: str) -> tuple[int, str, str]:
    path = world.tmp / "state.json"
    path.write_bytes(data)
    result: tuple[int, str, str] = world.cli("emply", "import", str(path), *extra)
    return result


def test_every_problem_is_listed_and_nothing_is_written(make_world: Any) -> None:
    world = _world(make_world)
    before = world.export()
    users = [{"id": f"u-{i}", "username": f"user{i}@contoso.com", "email": "shared@contoso.com",
              "roles": ["employee", "chief"]} for i in range(30)]
    users[1]["username"] = "USER0@contoso.com"
    users[2]["displayName"] = "x" * 100_000  # valid JSON, too big for Table Storage
    bad = t.emply_state(users=users)
    for replace in ((), ("--replace",)):
        code, out, err = _import_bytes(world, json.dumps(bad).encode(), *replace)
        assert code == 2, err
        assert out == ""
        lines = err.splitlines()
        # 30 unknown roles, 1 username differing in case only, and after them 1 property
        # too big for Table Storage (the shared e-mail is no problem: R3)
        assert lines[0].endswith("refused, nothing was written: 32 problems:")
        assert lines[1] == '  users[0] (id "u-0").roles[1]: unknown role "chief"'
        assert '  users[1] (id "u-1").username: "USER0@contoso.com" is also the username of ' \
            'users[0] (id "u-0") (compared ignoring case and surrounding spaces)' in lines
        assert not any(".email" in line for line in lines)
        assert len(lines) == 33
        assert "Traceback" not in err
    assert world.export() == before

    # Once the file is otherwise right, the one left is listed.
    for i, user in enumerate(users):
        user.update({"username": f"user{i}@contoso.com", "email": None, "roles": ["employee"]})
    code, _, err = _import_bytes(world, json.dumps(bad).encode())
    assert code == 2
    assert ('users[2] (id "u-2").displayName: 100,000 characters (200,000 bytes as stored, '
            "UTF-16), more than Table Storage's 64 KiB (65,536 bytes) per property") in err
    assert world.export() == before


def test_files_in_the_wrong_encoding_or_too_deep_are_refused_cleanly(make_world: Any) -> None:
    world = _world(make_world)
    before = world.export()
    text = json.dumps(t.emply_state(), indent=1)
    cases = {
        "utf-16": (text.encode("utf-16"), "is UTF-16 text"),
        "utf-16-le": (text.encode("utf-16-le"), "looks like UTF-16 or UTF-32 text"),
        "latin-1": ('{"users": [{"id": "u-ø", "username": "ø"}]}'.encode("latin-1"),
                    "is not UTF-8: byte 0xF8 at offset 21 (line 1)"),
        "deep": (b"[" * 100_000 + b"]" * 100_000, "is nested deeper than 64 levels"),
        "not json": (b"{users: []}", "is not valid JSON"),
    }
    for name, (data, message) in cases.items():
        code, _, err = _import_bytes(world, data, "--replace")
        assert code == 2, name
        assert message in err, (name, err)
        assert "Traceback" not in err
    assert world.export() == before
    # A UTF-8 byte order mark (Windows editors add one) is fine.
    code, _, err = _import_bytes(world, b"\xef\xbb\xbf" + json.dumps(before).encode(),
                                 "--replace")
    assert code == 0, err
    assert world.export() == before


async def test_no_import_while_a_run_holds_the_lease(make_world: Any) -> None:
    """Before issue 17 the import went through under the run, which then reported links
    as applied that the import had erased."""
    world = _world(make_world, latency_ms=1000)  # three Graph rounds: the run holds the lease 3 s+
    path = world.tmp / "replacement.json"
    path.write_text(json.dumps(t.emply_state()))
    async with boundary.open_deps() as deps:
        run = asyncio.create_task(pipeline.run_sync(deps, trigger="cli"))
        while (await deps.store.current_lease()) is None:
            await asyncio.sleep(0.05)
        code, out, err = await asyncio.to_thread(world.cli, "emply", "import", str(path),
                                                 "--replace")
        report = await run
    assert code == 3, err
    assert out == ""
    assert f"run {report['runId']} (cli, started" in err
    assert "is in progress: nothing was imported; try again when it has finished" in err
    assert report["status"] == "succeeded"
    assert report["counts"] == {"link_user": 1, "create_user": 3}
    users = world.users()
    assert users["person0.staff@contoso.com"]["entraId"] == t.uid(100)  # the link stands
    assert len(users) == 4
    # Afterwards the import goes through, and the next run reads what it wrote.
    assert world.cli("emply", "import", str(path), "--replace")[0] == 0
    assert world.users() == {}
    assert world.sync()["counts"] == {"create_user": 4}


def test_export_then_replace_changes_nothing_links_included(make_world: Any) -> None:
    world = _world(make_world)
    world.sync()
    exported = world.export()
    assert exported["users"][0]["entraId"]
    world.import_state(exported, "--replace")
    assert world.export() == exported
    assert world.sync()["counts"] == {}
