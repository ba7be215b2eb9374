"""The service boundary: one error taxonomy for CLI, HTTP and timer; honest run records.

Real Azurite and the real Graph simulator; where a failure cannot be provoked from
outside (storage refusing only the lease, a planner bug), the project's own store or
planner function is replaced, never the HTTP library.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import azure.functions.timer
import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpTransport
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient

from shared import config, telemetry
from shared import store as store_mod
from shared.app import boundary
from shared.reconcile import planner
from shared.run import report as run_report
from tests.e2e import tenants as t
from tests.e2e.test_http import function, request
from tests.e2e.test_http import world_with_staff as staff_world


def down_storage(world: Any) -> str:
    """The world's connection string pointed at a port nothing listens on."""
    conn: str = world.azurite.connection_string
    return conn.replace(str(world.azurite.table_port), "1").replace(
        str(world.azurite.blob_port), "1")


class Records(logging.Handler):
    """Collects the `emply_sync` records and notes when it was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.flushed_after: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flushed_after.append(len(self.records))

    def named(self, message: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage() == message]


@pytest.fixture
def records() -> Any:
    handler = Records()
    logger = logging.getLogger(telemetry.LOGGER_NAME)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


# --- reason codes ---------------------------------------------------------------


def test_a_graph_403_is_a_permanent_graph_read_failed(make_world: Any) -> None:
    world = staff_world(make_world)
    world.sim.set_faults("/groups/delta", 403, times=-1)
    report = world.sync()
    assert report["status"] == "failed"
    [error] = report["errors"]
    assert error["reason"] == "graph_read_failed" and error["temporary"] is False
    assert world.users() == {}


def test_graph_throttling_past_the_retries_is_graph_throttled(make_world: Any) -> None:
    world = staff_world(make_world)
    world.sim.set_faults("/groups/delta", 429, times=-1, retry_after=0)
    report = world.sync()
    [error] = report["errors"]
    assert (error["reason"], error["temporary"]) == ("graph_throttled", True)


async def test_a_planner_bug_is_raised_logged_and_recorded_not_a_run_failure(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, records: Records
) -> None:
    world = staff_world(make_world)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(planner, "plan", broken)
    with pytest.raises(KeyError, match="a bug"):
        await boundary.sync(trigger="cli")
    [bug] = records.named("emply_sync.bug")
    assert bug.exc_info is not None and bug.exc_info[0] is KeyError
    [run] = json.loads(world.ok("runs", "--json"))
    report = json.loads(world.ok("runs", run["runId"], "--json"))
    assert report["status"] == "failed"
    assert [e["reason"] for e in report["errors"]] == ["internal_error"]
    assert world.users() == {}


# --- failures before the run starts ------------------------------------------------


async def test_storage_refusing_the_lease_still_writes_a_failed_record_and_event(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, records: Records
) -> None:
    world = staff_world(make_world)

    async def refused(self: store_mod.EmplyStore, run_id: str, trigger: str, *,
                      ttl_seconds: int = 900) -> None:
        error = HttpResponseError(message="This request is not authorized")
        error.status_code, error.error_code = 403, "AuthorizationPermissionMismatch"
        raise error

    monkeypatch.setattr(store_mod.EmplyStore, "acquire_lease", refused)
    report = await boundary.sync(trigger="timer")
    assert report["status"] == "failed" and report["failedBeforeStart"] is True
    [error] = report["errors"]
    assert error["reason"] == "storage_forbidden" and error["temporary"] is False
    assert "AuthorizationPermissionMismatch" in error["message"]
    [event] = records.named("emply_sync.run")
    assert (event.status, event.runId) == ("failed", report["runId"])  # type: ignore[attr-defined]
    monkeypatch.undo()
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, world.azurite.connection_string)
    stored = json.loads(world.ok("runs", report["runId"], "--json"))
    assert stored["status"] == "failed" and stored["errors"] == [error]


async def test_a_bad_app_setting_is_a_recorded_failed_run(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, records: Records
) -> None:
    world = staff_world(make_world)
    monkeypatch.setenv(config.GRAPH_URL, "http://graph.example.com/v1.0")  # not https
    report = await boundary.sync(trigger="timer")
    [error] = report["errors"]
    assert error["reason"] == "bad_configuration" and "https" in error["message"]
    assert [r.status for r in records.named("emply_sync.run")] == ["failed"]  # type: ignore[attr-defined]
    monkeypatch.setenv(config.GRAPH_URL, world.sim.url)
    [run] = json.loads(world.ok("runs", "--json"))
    assert run["runId"] == report["runId"] and run["status"] == "failed"


def test_cli_sync_with_storage_down_is_one_line(make_world: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    world = staff_world(make_world)
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, down_storage(world))
    code, out, err = world.cli("sync")
    assert code == 1 and out == ""
    assert err.startswith("emply-sync: storage_unavailable: ")
    assert err.count("\n") == 1 and "Traceback" not in err and ":1" not in err


# --- HTTP ---------------------------------------------------------------------------


async def test_manual_sync_with_storage_down_is_a_503_naming_what_not_where(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = staff_world(make_world)
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, down_storage(world))
    response = await function("manual_sync")(request("POST", "/api/sync", {}))
    assert response.status_code == 503
    body = response.get_body().decode()
    problem = json.loads(body)
    assert problem["reason"] == "storage_unavailable" and problem["temporary"] is True
    # Nothing was queued: no run id to poll (the request could not be recorded at all).
    assert "runId" not in problem
    assert "127.0.0.1" not in body and ":1" not in body


class GoingDown(AsyncHttpTransport):  # type: ignore[type-arg]
    """azure-core's real aiohttp transport; after `after` Table transactions every request
    goes to a port nothing listens on, so storage "goes down" with the real error text
    (which names the host and the port)."""

    def __init__(self, after: int, dead_port: int) -> None:
        self._inner = AioHttpTransport()
        self.after, self.dead_port, self.batches = after, dead_port, 0

    async def send(self, request: Any, **kwargs: Any) -> Any:
        if self.batches >= self.after:
            parts = urlsplit(request.url)
            request.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.dead_port}"))
        elif request.url.endswith("/$batch"):
            self.batches += 1
        return await self._inner.send(request, **kwargs)

    async def open(self) -> None:
        await self._inner.open()

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> GoingDown:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self._inner.__aexit__(*args)


async def test_storage_going_down_during_put_emply_names_what_never_where(
        make_world: Any, monkeypatch: pytest.MonkeyPatch, records: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 24: a 503 during PUT /api/emply with storage down said "Cannot connect to
    host 127.0.0.1:…"; the body and the logs name the dependency, never its address. The
    answer also says the import may have taken effect and how to check."""
    world = staff_world(make_world)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    conn = world.azurite.connection_string

    def store_going_down(env: Any, storage: str | None) -> store_mod.EmplyStore:
        return store_mod.EmplyStore(
            TableServiceClient.from_connection_string(conn, transport=GoingDown(2, dead_port)),
            BlobServiceClient.from_connection_string(conn))

    monkeypatch.setattr(boundary, "_open_store", store_going_down)
    doc = t.emply_state([{"id": f"u-{i}", "username": f"u{i}@contoso.com"}
                         for i in range(400)])
    response = await function("import_emply")(request("PUT", "/api/emply", doc))
    assert response.status_code == 503
    body = response.get_body().decode()
    problem = json.loads(body)
    assert problem["reason"] == "storage_unavailable"
    assert "emply-sync emply export" in problem["detail"]  # may have: how to check
    logged = " ".join(str(r.__dict__) for r in records.records) + " ".join(
        r.getMessage() + str(r.exc_text or "") for r in caplog.records
        if r.name.startswith("emply_sync"))
    for text in (body, logged):
        assert "127.0.0.1" not in text and str(dead_port) not in text
        assert str(world.azurite.table_port) not in text


def test_cli_sync_with_graph_down_says_why_on_stderr(make_world: Any) -> None:
    """Issue 24: with Graph down `emply-sync sync` printed its reason on stdout only."""
    world = staff_world(make_world)
    world.sim.set_faults("/users/delta", 503, times=-1)
    code, out, err = world.cli("sync")
    assert code == 1 and "FAILED" in out
    assert err.startswith("emply-sync: graph_unavailable: ") and err.count("\n") == 1
    code, out, err = world.cli("sync", "--json")
    assert code == 1 and json.loads(out)["status"] == "failed"
    assert err.startswith("emply-sync: graph_unavailable: ")


async def test_health_with_storage_down_is_a_503_not_a_crash(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = staff_world(make_world)
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, down_storage(world))
    probe = await function("health")(request("GET", "/api/health"))
    assert probe.status_code == 503 and json.loads(probe.get_body()) == {"status": "down"}
    response = await function("health_details")(request("GET", "/api/health/details"))
    assert response.status_code == 503
    body = response.get_body().decode()
    status = json.loads(body)
    assert status["status"] == "unhealthy" and status["lastRun"] is None
    assert status["checks"]["storage"]["ok"] is False
    assert status["checks"]["storage"]["reason"] == "storage_unavailable"
    assert status["checks"]["graph"] == {"ok": True}
    assert "127.0.0.1" not in body and str(world.azurite.table_port) not in body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[" * 2040 + b"]" * 2040, "body"),
        (b'{"dryRun": ' + b"[" * 1900 + b"]" * 1900 + b"}", "body"),
        (b'{"dryRun": ' + b"[" * 900 + b"]" * 900 + b"}", "body"),  # refused unparsed
        (b'{"dryRun": true, "dryRun": false}', "dryRun"),
        (b'{"approveDeactivations": 1, "approveDeactivations": 2}', "approveDeactivations"),
    ],
    ids=["deep array", "deep value", "nested value", "duplicate flag", "duplicate count"],
)
async def test_deep_and_duplicate_bodies_are_400_and_change_nothing(
    make_world: Any, body: bytes, field: str
) -> None:
    world = staff_world(make_world)
    assert len(body) < 4096
    before = world.export()
    response = await function("manual_sync")(request("POST", "/api/sync", body))
    assert response.status_code == 400
    problem = json.loads(response.get_body())
    assert problem["field"] == field and problem["detail"]
    assert world.export() == before
    assert json.loads(world.ok("runs", "--json")) == []


# --- honest run records ---------------------------------------------------------------


async def test_a_killed_run_is_marked_abandoned_by_the_next_one(make_world: Any) -> None:
    world = staff_world(make_world)
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
        # What a killed run leaves: its lease (expired by now) and a record `running`.
        await st.acquire_lease("20261201T000000Z-dead0001", "timer", ttl_seconds=0)
        lease = await st.current_lease()
        assert lease is not None
        await st.save_run({"runId": "20261201T000000Z-dead0001", "trigger": "timer",
                           "status": "running", "dryRun": False,
                           "startedAt": lease["startedAt"], "finishedAt": None,
                           "counts": {}, "changes": [], "held": [], "errors": []})
    report = world.sync()
    assert report["status"] == "succeeded"
    dead = json.loads(world.ok("runs", "20261201T000000Z-dead0001", "--json"))
    assert dead["status"] == "abandoned"
    assert dead["lastSeenAt"] == lease["renewedAt"]
    assert dead["abandonedBy"] == report["runId"]
    assert [e["reason"] for e in dead["errors"]] == ["run_abandoned"]
    runs = {r["runId"]: r for r in json.loads(world.ok("runs", "--json"))}
    assert runs["20261201T000000Z-dead0001"]["status"] == "abandoned"
    assert runs["20261201T000000Z-dead0001"]["lastSeenAt"] == lease["renewedAt"]


async def test_a_dead_run_whose_lease_another_took_is_marked_by_the_next_run(
        make_world: Any) -> None:
    """Found by kill -9: run A dies, run B takes A's expired lease and dies before marking
    A; run C takes B's lease. Both A and B are dead: C marks both (it holds the lease, so
    no other real run can be going)."""
    world = staff_world(make_world)
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
        await st.acquire_lease("20261201T000000Z-deadb002", "timer", ttl_seconds=0)
        for run_id in ("20261201T000000Z-deada001", "20261201T000000Z-deadb002"):
            await st.save_run({"runId": run_id, "trigger": "timer", "status": "running",
                               "dryRun": False, "startedAt": "2026-12-01T00:00:00.000Z",
                               "finishedAt": None, "counts": {}, "changes": [], "held": [],
                               "errors": []})
    report = world.sync()
    records = [json.loads(world.ok("runs", run_id, "--json")) for run_id in (
        "20261201T000000Z-deada001", "20261201T000000Z-deadb002")]
    assert [(r["status"], r["abandonedBy"]) for r in records] == [
        ("abandoned", report["runId"])] * 2
    assert report["status"] == "succeeded"


async def test_a_killed_dry_run_is_marked_abandoned_once_no_run_could_still_be_going(
    make_world: Any,
) -> None:
    """A dry run takes no lease: only its age tells that it was killed."""
    world = staff_world(make_world)
    old = "2026-11-30T00:00:00.000Z"  # far older than DRY_RUN_GIVEN_UP_AFTER
    recent = run_report.iso(run_report.utcnow())
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
        for run_id, started in (("20261130T000000Z-dryold01", old),
                                ("20261202T000000Z-dryhot01", recent)):
            await st.save_run({"runId": run_id, "trigger": "http", "status": "running",
                               "dryRun": True, "startedAt": started, "finishedAt": None,
                               "counts": {}, "changes": [], "held": [], "errors": []})
    report = world.sync()
    dead = json.loads(world.ok("runs", "20261130T000000Z-dryold01", "--json"))
    assert (dead["status"], dead["lastSeenAt"], dead["abandonedBy"]) == (
        "abandoned", old, report["runId"])
    alive = json.loads(world.ok("runs", "20261202T000000Z-dryhot01", "--json"))
    assert alive["status"] == "running"  # it may still be going


async def test_a_finished_run_whose_lease_was_not_released_stays_as_it_was(
    make_world: Any,
) -> None:
    world = staff_world(make_world)
    first = world.sync()
    async with store_mod.open_store(connection_string=world.azurite.connection_string) as st:
        await st.acquire_lease(first["runId"], "cli", ttl_seconds=0)  # as if never released
    world.sync()
    again = json.loads(world.ok("runs", first["runId"], "--json"))
    assert again["status"] == "succeeded" and "lastSeenAt" not in again


async def test_timer_configures_logging_first_and_flushes_after_the_run_record(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, records: Records
) -> None:
    staff_world(make_world)
    configured_before: list[int] = []
    original = telemetry.configure

    def configure(environ: Any = None) -> None:
        configured_before.append(len(records.records))
        original(environ)

    monkeypatch.setattr(telemetry, "configure", configure)
    before = len(records.records)  # what the set-up (an import) logged
    await function("scheduled_sync")(azure.functions.timer.TimerRequest(past_due=True))
    messages = [r.getMessage() for r in records.records]
    assert messages[before] == "emply_sync.timer_past_due"
    assert configured_before[0] == before  # before the past-due line
    run_at = messages.index("emply_sync.run") + 1
    assert records.flushed_after and records.flushed_after[-1] >= run_at


async def test_a_bug_before_the_run_starts_is_recorded_and_raised(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, records: Records
) -> None:
    world = staff_world(make_world)

    async def broken(self: store_mod.EmplyStore, run_id: str, trigger: str, *,
                     ttl_seconds: int = 900) -> None:
        raise TypeError("a bug at the lease")

    monkeypatch.setattr(store_mod.EmplyStore, "acquire_lease", broken)
    with pytest.raises(TypeError, match="a bug at the lease"):
        await boundary.sync(trigger="timer")
    [bug] = records.named("emply_sync.bug")
    assert bug.exc_info is not None and bug.exc_info[0] is TypeError
    [event] = records.named("emply_sync.run")
    assert event.status == "failed"  # type: ignore[attr-defined]
    monkeypatch.undo()
    monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, world.azurite.connection_string)
    monkeypatch.setenv(config.GRAPH_URL, world.sim.url)
    [run] = json.loads(world.ok("runs", "--json"))
    report = json.loads(world.ok("runs", run["runId"], "--json"))
    assert report["failedBeforeStart"] is True
    assert [e["reason"] for e in report["errors"]] == ["internal_error"]


def test_storage_that_never_answers_is_given_up_after_the_bound(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage endpoint that accepts connections and never answers (a hung host, a
    black-holing firewall): the first contact is bounded, then one line."""
    world = staff_world(make_world)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts into its backlog, never reads or answers
    port = silent.getsockname()[1]
    try:
        monkeypatch.setattr(boundary, "STORAGE_CONNECT_TIMEOUT_SECONDS", 1)
        conn: str = world.azurite.connection_string
        monkeypatch.setenv(config.STORAGE_CONNECTION_STRING, conn.replace(
            str(world.azurite.table_port), str(port)).replace(
            str(world.azurite.blob_port), str(port)))
        code, out, err = world.cli("sync")
    finally:
        silent.close()
    assert code == 1 and out == ""
    assert err == ("emply-sync: storage_unavailable: Table/Blob Storage did not answer "
                   "within 1 s\n")


async def test_health_answers_in_bounded_time_when_graph_hangs(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = staff_world(make_world)
    world.sim.set_latency(3000)
    monkeypatch.setattr(boundary, "STORAGE_CONNECT_TIMEOUT_SECONDS", 1)
    response = await function("health_details")(request("GET", "/api/health/details"))
    assert response.status_code == 503
    checks = json.loads(response.get_body())["checks"]
    assert checks["storage"] == {"ok": True}
    assert checks["graph"] == {"ok": False, "reason": "graph_unavailable",
                               "error": "Graph did not answer within 1 s"}


async def test_graph_unreachable_is_a_503_naming_what_not_where(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff_world(make_world)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    monkeypatch.setenv(config.GRAPH_URL, f"http://127.0.0.1:{port}/v1.0")
    response = await function("explain_user")(
        request("GET", "/x", route_params={"user": "person1.staff@contoso.com"}))
    assert response.status_code == 503
    body = response.get_body().decode()
    problem = json.loads(body)
    assert problem["reason"] == "graph_unavailable" and problem["temporary"] is True
    assert "127.0.0.1" not in body and str(port) not in body
