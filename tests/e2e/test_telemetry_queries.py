"""The alerts, the workbook and the documented KQL query the telemetry the code emits.

Real runs (CLI, Azurite, the Graph simulator over HTTP) cover every run status and
the telemetry the queries read: waiting for the first import (`not_configured`), a
dry run, creations, a deactivation, held deactivations (`needs_approval`), a
throttled Graph read, a failed read, the mailbox pass in the run and its shards on the
queue (a run waiting on them, its shards worked by the queue trigger; a shard the host
gave up, reported by the poison queue's trigger) and a removed integration (`disabled`). Their
log records go through the same OpenTelemetry logging handler and Azure Monitor
exporter conversion that send them to Application Insights, so `message` and
`customDimensions` below are exactly what the `traces` table holds. Every message,
customDimensions field and compared value each query names must be one of those.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from shared import config, telemetry
from shared.reconcile import model
from tests.e2e import tenants as t
from tests.e2e.test_http import function
from tests.infra import kql
from tests.support import run_queue as rq

# What this version's planner produces (shared/reconcile/model.py).
CHANGE_KINDS = {model.CREATE_USER, model.LINK_USER, model.DEACTIVATE_USER,
                model.REACTIVATE_USER, model.SET_ROLES, model.EMPLOYEE_STATUS}
DEACTIVATION_REASONS = {model.TENANT_CHANGED, model.DELETED_IN_ENTRA, model.DISABLED_IN_ENTRA,
                        model.DOMAIN_CHANGED, model.GROUP_REMOVED, model.REMOVED_FROM_GROUPS}
NOTIFICATION_MESSAGES = {"emply_sync.subscription", "emply_sync.subscription_failed",
                         "emply_sync.notifications", "emply_sync.notification_dropped"}


@dataclasses.dataclass(frozen=True)
class Trace:
    """One row of Application Insights' `traces` table, as the exporter sends it."""

    message: str
    custom_dimensions: dict[str, str]
    severity_level: int


@contextlib.contextmanager
def exported() -> Iterator[list[Trace]]:
    """The app logger's records, converted as configure_azure_monitor() sends them: the
    same handler on the same logger, the exporter's own conversion (filled in when the
    block ends)."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger(telemetry.LOGGER_NAME)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    traces: list[Trace] = []
    try:
        yield traces
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        provider.force_flush()
        for record in exporter.get_finished_logs():
            data = _convert_log_to_envelope(record).data.base_data
            traces.append(Trace(data.message, dict(data.properties), data.severity_level))
        provider.shutdown()


def run_every_kind_of_run(make_world: Any, monkeypatch: pytest.MonkeyPatch
                          ) -> list[dict[str, Any]]:
    people = t.staff(10)
    tenant = t.tenant(people, {t.G_EMPLOYEE: [p["id"] for p in people], t.G_HR: []})
    world = make_world(tenant)
    reports = [world.sync()]  # nothing imported yet: not_configured
    # Person 9 has an employee profile but no account: an error naming an Entra user.
    employee = {"id": "e-9", "email": people[9]["mail"], "displayName": "Person9 Staff",
                "givenName": "Person9", "surname": "Staff", "jobTitle": None,
                "department": None, "mobilePhone": None, "resignationDate": None,
                "status": "active"}
    world.import_state(t.emply_state(employees=[employee],
                                     deactivationGuard={"maxCount": 1, "maxPercent": 100}))
    reports.append(world.sync("--dry-run"))
    reports.append(world.sync())  # nine creations, employee_without_account

    changed = copy.deepcopy(tenant)
    changed["groups"][0]["members"].remove(people[0]["id"])
    world.sim.put_tenant(changed)
    reports.append(world.sync())  # one deactivation (removed_from_groups)

    for person in changed["users"][1:3]:
        person["accountEnabled"] = False
    world.sim.put_tenant(changed)
    world.sim.set_faults("/users/delta", 429, times=1, retry_after=1)
    reports.append(world.sync())  # two deactivations held (> maxCount 1), one 429

    world.sim.set_faults("/groups/delta", 503, times=-1)
    reports.append(world.sync())  # graph_unavailable (a 5xx after retries)
    world.sim.clear_faults()

    # Calendar sync on, one mailbox hidden by an access policy: a per-user fault (R7);
    # the guard let through, the two held deactivations apply.
    world.sim.set_user_quirks(people[5]["id"], mailbox="accessDenied")
    world.import_state(t.emply_state(employees=[employee], calendarSync=True,
                                     deactivationGuard={"maxCount": 50, "maxPercent": 100}))
    reports.append(world.sync())  # mailbox_unavailable for person 5 (person 9 as before)
    reports += shards_on_the_queue(world, monkeypatch, people[6]["id"])

    world.import_state({"settings": {**t.emply_state()["settings"], "enabled": False}})
    reports.append(world.sync())  # the integration removed (R17): disabled
    return reports


def shards_on_the_queue(world: Any, monkeypatch: pytest.MonkeyPatch, changed: str
                        ) -> list[dict[str, Any]]:
    """The mailbox pass's shards on the queue: a run logs `running` with its shards queued,
    the queue trigger works them (a mailbox hidden by an access policy is that user's
    error), then the run logs its final record; then a run whose shard the host gave up,
    reported failed in its run by the poison queue's trigger."""
    monkeypatch.setenv(config.MAILBOX_SHARDS, "queue")
    world.mode = "queue"
    world.sim.set_user_quirks(changed, mailbox="accessDenied")
    worked = world.sync()  # `World.sync` works the queued shards
    code, out, err = world.cli("sync", "--json")
    waiting = json.loads(out)
    assert code == 0 and waiting["status"] == "running", err
    # A run while those shards still hold their buckets skips them (and says so).
    code, out, err = world.cli("sync", "--json")
    skipped = json.loads(out)
    assert code == 0 and skipped["status"] == "succeeded", err
    storage = world.azurite.connection_string
    given_up = 0
    while (delivery := rq.receive(storage, config.MAILBOX_QUEUE_NAME)) is not None:
        asyncio.run(function("mailbox_shard_poisoned")(delivery.message))
        rq.complete(storage, delivery, config.MAILBOX_QUEUE_NAME)
        given_up += 1
    assert given_up == waiting["mailboxShards"]["queued"] > 0
    monkeypatch.setenv(config.MAILBOX_SHARDS, "inline")
    world.mode = "inline"
    # In the order their first records were logged.
    return [worked, json.loads(world.ok("runs", waiting["runId"], "--json")), skipped]


def emitted(traces: list[Trace]) -> dict[str, list[dict[str, str]]]:
    """message -> the customDimensions of each record with that message."""
    found: dict[str, list[dict[str, str]]] = {}
    for trace in traces:
        found.setdefault(trace.message, []).append(trace.custom_dimensions)
    return found


def problems(query: kql.Query, records: dict[str, list[dict[str, str]]]) -> list[str]:
    """What one query names that the code did not emit."""
    found: list[str] = []
    if not re.search(r"\btraces\b", query.text):
        return found  # the host's own tables (exceptions, requests): nothing of ours
    messages = query.messages
    if not messages:
        found.append("reads no emply_sync message")
    for message in sorted(messages - set(records)):
        found.append(f"message {message!r} is never logged")
    dims = [d for m in messages for d in records.get(m, ())]
    present = {key for d in dims for key in d}
    for field in sorted(query.fields - present):
        found.append(f"customDimensions.{field} is not emitted with {sorted(messages)}")
    for column, values in query.compared.items():
        seen = {d[column] for d in dims if column in d}
        for value in sorted(values - seen):
            found.append(f"{column} == {value!r} never occurs (emitted: {sorted(seen)})")
    return found


def test_every_query_reads_only_what_real_runs_emit(
        make_world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with exported() as traces:
        reports = run_every_kind_of_run(make_world, monkeypatch)

    # The runs cover what the queries look at.
    assert [r["status"] for r in reports] == [
        "failed", "succeeded", "succeeded", "succeeded", "needs_approval", "failed",
        "succeeded", "succeeded", "succeeded", "succeeded", "disabled"]
    assert reports[0]["errors"][0]["reason"] == "not_configured"
    assert reports[1]["dryRun"] is True
    assert {e["reason"] for e in reports[2]["errors"]} == {"employee_without_account"}
    assert reports[4]["entraRead"]["throttled"] == 1
    assert reports[5]["errors"][-1]["reason"] == "graph_unavailable"
    # The mailbox pass reads after the plan: its error follows the plan's.
    assert [(e["reason"], e.get("graphCode")) for e in reports[6]["errors"]] == [
        ("employee_without_account", None), ("mailbox_unavailable", "ErrorAccessDenied")]
    # Shards on the queue: worked (a per-user mailbox error among them), and given up.
    worked, given_up, skipped = reports[7], reports[8], reports[9]
    assert worked["mailboxShards"]["done"] == worked["mailboxShards"]["queued"] > 0
    assert ("mailbox_unavailable", "ErrorAccessDenied") in [
        (e["reason"], e.get("graphCode")) for e in worked["errors"]]
    assert given_up["mailboxShards"]["failed"] == given_up["mailboxShards"]["queued"]
    assert "mailbox_shard_failed" in {e["reason"] for e in given_up["errors"]}
    assert "mailboxShards" not in skipped  # every bucket it touches was still held

    records = emitted(traces)
    runs = records["emply_sync.run"]
    # A run that queued shards logs `running`, then its final record once they ended.
    assert list(dict.fromkeys(r["runId"] for r in runs)) == [r["runId"] for r in reports]
    for report in (worked, given_up):
        logged = [r for r in runs if r["runId"] == report["runId"]]
        assert [r["status"] for r in logged] == ["running", "succeeded"]
        assert {r["mailboxShardsQueued"] for r in logged} == {
            str(report["mailboxShards"]["queued"])}
    shard_outcomes = {(d["runId"], d["outcome"]) for d in records["emply_sync.mailbox_shard"]}
    assert {(worked["runId"], "started"), (worked["runId"], "done"),
            (given_up["runId"], "given_up")} <= shard_outcomes
    (held,) = records["emply_sync.mailbox_buckets_held"]
    assert held["runId"] == skipped["runId"] and int(held["buckets"]) > 0
    assert held["shardsQueued"] == "0"
    # Each error is logged once: the run's own with `running`, its shards' at the end.
    for report in reports:
        logged_errors = [d["reason"] for d in records.get("emply_sync.error", ())
                         if d.get("runId") == report["runId"]]
        assert sorted(logged_errors) == sorted(e["reason"] for e in report["errors"])

    # Queries of Graph change notifications read what subscriptions and notifications
    # emit: tests/e2e/test_notification_telemetry.py checks those against real ones.
    queries = [q for q in kql.all_queries() if not q.messages & NOTIFICATION_MESSAGES]
    assert len(kql.alert_queries()) == 5 and len(kql.workbook_queries()) >= 5
    failures = [f"{q.source}: {p}" for q in queries for p in problems(q, records)]
    assert not failures, "queries name telemetry the code does not emit:\n" + "\n".join(failures)


def test_run_records_carry_the_values_the_workbook_expands(
        make_world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with exported() as traces:
        reports = run_every_kind_of_run(make_world, monkeypatch)
    runs = {r["runId"]: r for r in emitted(traces)["emply_sync.run"]}
    by_status = {report["runId"]: report for report in reports}
    for run_id, dims in runs.items():
        report = by_status[run_id]
        # Strings as the exporter sends them; queries parse them back.
        changes = json.loads(dims["changes"])
        assert changes == report["counts"]
        assert set(changes) <= CHANGE_KINDS
        deactivations = json.loads(dims["deactivations"])
        held = json.loads(dims["heldDeactivations"])
        assert set(deactivations) | set(held) <= DEACTIVATION_REASONS
        assert sum(deactivations.values()) == changes.get("deactivate_user", 0)
        assert sum(held.values()) == int(dims["held"]) == len(report["held"])
        assert dims["dryRun"].lower() == str(report["dryRun"]).lower()
        assert int(dims["graphThrottled"]) == report.get("entraRead", {}).get("throttled", 0)
    applied = [json.loads(d["deactivations"]) for d in runs.values()]
    assert {"removed_from_groups": 1} in applied
    held_runs = [json.loads(d["heldDeactivations"]) for d in runs.values()
                 if d["status"] == "needs_approval"]
    assert held_runs == [{"disabled_in_entra": 2}]


def test_boolean_dimensions_are_compared_case_insensitively() -> None:
    # The exporter sends Python's str(True), "True": a query comparing with "true"
    # as it is would never match.
    for query in kql.all_queries():
        for field in ("dryRun", "fullRead"):
            for match in re.finditer(rf"customDimensions\.{field}\b", query.text):
                before = query.text[max(0, match.start() - 18):match.start()]
                assert before.endswith("tolower(tostring("), f"{query.source}: {field}"


def test_the_workbook_shows_what_operators_asked_for() -> None:
    titles = " | ".join(str(json.loads(p.read_text())["items"]) for p in kql.WORKBOOKS)
    for topic in ("by status", "Changes by kind", "Deactivations by reason",
                  "Held deactivations", "throttled"):
        assert topic in titles, topic
    (workbook,) = kql.WORKBOOKS
    doc = json.loads(workbook.read_text())
    assert doc["version"] == "Notebook/1.0"
    # The Bicep module puts the App Insights resource id in place of this.
    assert doc["fallbackResourceIds"] == ["__APP_INSIGHTS_ID__"]
    module = (kql.ALERTS.parent / "workbook.bicep").read_text()
    assert "__APP_INSIGHTS_ID__" in module and workbook.name in module
