"""What the entry points call: storage and Graph opened as the app settings say, with
the first contact bounded in time; a run; health.

The CLI, the HTTP handlers and the timer go through here (import-linter keeps them out
of the run and the adapters): the names they catch and pass are below. Whatever fails is
named by `shared.errors`; a failure before a run could start is still a recorded run
(`pipeline.record_unstarted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from shared import config, errors, telemetry
from shared import store as store_mod
from shared.app import run_queue
from shared.graph import client as graph_client
from shared.reconcile import model
from shared.run import context, on_demand, pipeline
from shared.run import explain as run_explain
from shared.run import report as run_report
from shared.run.mailboxes import settings as mailbox_settings
from shared.store import errors as store_errors

# What the entry points catch and pass, named here so they need not reach further in.
RunInProgress = store_errors.RunInProgress
NotConfigured = errors.NotConfigured
UserNotFound = run_explain.UserNotFound
AmbiguousUser = run_explain.AmbiguousUser
ReadsTooSlow = on_demand.ReadsTooSlow
ON_DEMAND = on_demand.TRIGGER
Approval = model.Approval
Deps = context.Deps
explain_user = run_explain.explain_user
new_run_id = run_report.new_run_id
utcnow = run_report.utcnow

# How long the first contact with storage (and health's Graph check) may take before
# it is given up as unavailable: azure-core would retry a dead endpoint for minutes.
STORAGE_CONNECT_TIMEOUT_SECONDS = 20


async def sync(
    *,
    trigger: str,
    dry_run: bool = False,
    approve_deactivations: Approval | int | None = None,
    approve_deletions: Approval | None = None,
    storage: str | None = None,
    graph_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    run_id: str | None = None,
    queued_at: str | None = None,
) -> dict[str, Any]:
    """The entry points' one call for a run: open storage and Graph as the app settings
    say, run, close. Returns the report; a failure before the run could start (storage
    unreachable or refusing, a bad app setting) is a failed report too, recorded where
    storage takes it and always in telemetry. Raises `RunInProgress` (another run holds
    the lease) and bugs."""
    return await _with_deps(
        lambda deps: pipeline.run_sync(deps, trigger=trigger, dry_run=dry_run,
                                       approve_deactivations=approve_deactivations,
                                       approve_deletions=approve_deletions,
                                       run_id=run_id, queued_at=queued_at),
        trigger=trigger, dry_run=dry_run, storage=storage, graph_url=graph_url,
        environ=environ, run_id=run_id, queued_at=queued_at)


async def sync_user(
    key: str,
    *,
    dry_run: bool = False,
    storage: str | None = None,
    graph_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    run_id: str | None = None,
    queued_at: str | None = None,
    read_within: float | None = None,
) -> dict[str, Any]:
    """One user now (`shared.run.on_demand`), opened and closed like `sync`. Raises
    `RunInProgress`, `UserNotFound`, `AmbiguousUser` and, with `read_within`,
    `ReadsTooSlow`."""
    return await _with_deps(
        lambda deps: on_demand.sync_user(deps, key, dry_run=dry_run, run_id=run_id,
                                         queued_at=queued_at, read_within=read_within),
        trigger=on_demand.TRIGGER, dry_run=dry_run, storage=storage, graph_url=graph_url,
        environ=environ, run_id=run_id, queued_at=queued_at)


async def _with_deps(
    body: Callable[[Deps], Awaitable[dict[str, Any]]], *, trigger: str, dry_run: bool,
    storage: str | None, graph_url: str | None, environ: Mapping[str, str] | None,
    run_id: str | None, queued_at: str | None,
) -> dict[str, Any]:
    """`body` with storage and Graph opened; a failure to open them is a failed run."""
    env = os.environ if environ is None else environ
    telemetry.configure(env)
    clock0 = time.monotonic()
    store: store_mod.EmplyStore | None = None
    entered = False
    try:
        mailboxes = _mailbox_settings(env)
        store = _open_store(env, storage)
        await _enter(store)
        entered = True
        graph = _open_graph(graph_url, env)
    except Exception as exc:
        report = run_report.new_report(trigger, dry_run, utcnow(), run_id=run_id,
                                       queued_at=queued_at).to_json()
        try:
            await pipeline.record_unstarted(report, exc, clock0, utcnow,
                                           store if entered else None)
        finally:
            if store is not None:
                await _close_quietly(store.close())
        return report
    shard_queue = (run_queue.open_run_queue(env, queue_name=config.MAILBOX_QUEUE_NAME)
                   if mailboxes.queued else None)
    try:
        return await body(Deps(store=store, graph=graph, schedule=_schedule(env),
                               photos=store.photo_store(), mailboxes=mailboxes,
                               shard_queue=shard_queue.send if shard_queue else None))
    finally:
        if shard_queue is not None:
            await _close_quietly(shard_queue.close())
        await _close_quietly(graph.aclose())
        await _close_quietly(store.close())


def _open_store(env: Mapping[str, str], storage: str | None) -> store_mod.EmplyStore:
    try:
        return store_mod.open_store_from_environment(env, connection_string=storage)
    except ValueError as exc:
        raise errors.PermanentFailure("bad_configuration",
                                      f"the storage settings are invalid: {exc}") from exc


def _open_graph(graph_url: str | None, env: Mapping[str, str]) -> graph_client.GraphClient:
    try:
        return graph_client.create_graph_client(graph_url, env=env)
    except ValueError as exc:
        raise errors.PermanentFailure("bad_configuration",
                                      f"the Graph settings are invalid: {exc}") from exc


async def _enter(store: store_mod.EmplyStore) -> None:
    """The store's first contact (it creates its tables), bounded in time."""
    await _bounded(store.__aenter__())


async def _bounded(awaitable: Awaitable[Any]) -> Any:
    try:
        return await asyncio.wait_for(awaitable, STORAGE_CONNECT_TIMEOUT_SECONDS)
    except TimeoutError as exc:
        raise errors.TemporaryFailure(
            "storage_unavailable",
            f"Table/Blob Storage did not answer within {STORAGE_CONNECT_TIMEOUT_SECONDS} s",
        ) from exc


async def health(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Storage and Graph reachability and the last run's summary; never raises for a
    dependency that is down (that is what it reports), and names what is down, not
    where (no hosts or ports: the answer goes out over HTTP)."""
    env = os.environ if environ is None else environ
    telemetry.configure(env)
    checks: dict[str, Any] = {}
    last = None
    store: store_mod.EmplyStore | None = None
    try:
        store = _open_store(env, None)
        await _enter(store)
        await _bounded(store.ping())
        checks["storage"] = {"ok": True}
        try:
            last = await _bounded(store.last_run())
        except Exception as exc_last:  # the last run is informative only
            telemetry.log.warning("emply_sync.health_last_run_failed",
                                  extra={"error": type(exc_last).__name__})
    except Exception as exc:
        checks["storage"] = _down(exc)
    finally:
        if store is not None:
            await _close_quietly(store.close())
    try:
        graph = _open_graph(None, env)
    except Exception as exc:
        checks["graph"] = _down(exc)
    else:
        try:
            try:
                await asyncio.wait_for(graph.get_json("organization?$select=id"),
                                       STORAGE_CONNECT_TIMEOUT_SECONDS)
            except TimeoutError as exc:  # health answers in bounded time, Graph or not
                raise errors.TemporaryFailure(
                    "graph_unavailable",
                    f"Graph did not answer within {STORAGE_CONNECT_TIMEOUT_SECONDS} s",
                ) from exc
            checks["graph"] = {"ok": True}
        except Exception as exc:
            checks["graph"] = _down(exc)
        finally:
            await _close_quietly(graph.aclose())
    healthy = all(check["ok"] for check in checks.values())
    return {"status": "healthy" if healthy else "unhealthy", "checks": checks, "lastRun": last}


def _down(exc: BaseException) -> dict[str, Any]:
    classified = errors.classify(exc)
    if classified is None:
        telemetry.log.exception("emply_sync.health_check_bug")
        return {"ok": False, "reason": errors.BUG_REASON, "error": "unexpected error (logged)"}
    telemetry.log.warning("emply_sync.health_check_failed", extra={
        "reason": classified.reason, "error": type(exc).__name__,
        "detail": classified.message})  # what is down, never where: no traceback
    return {"ok": False, "reason": classified.reason, "error": classified.message}


async def _close_quietly(closing: Any) -> None:
    try:
        await closing
    except Exception as exc:  # closing a dead connection must not hide the run's outcome
        telemetry.log.warning("emply_sync.close_failed", extra={"error": type(exc).__name__})


@contextlib.asynccontextmanager
async def open_deps(
    *,
    storage: str | None = None,
    graph_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[Deps]:
    """Store and Graph client as the app settings (or explicit arguments) describe, for
    everything but a run (`sync`). Raises a `shared.errors.SyncFailure` when storage
    cannot be reached within STORAGE_CONNECT_TIMEOUT_SECONDS or a setting is invalid."""
    env = os.environ if environ is None else environ
    telemetry.configure(env)
    store = _open_store(env, storage)
    try:
        await _enter(store)
    except BaseException:
        await _close_quietly(store.close())
        raise
    try:
        graph = _open_graph(graph_url, env)
    except BaseException:
        await _close_quietly(store.close())
        raise
    try:
        yield Deps(store=store, graph=graph, schedule=_schedule(env),
                   photos=store.photo_store(), mailboxes=_mailbox_settings(env))
    finally:
        await _close_quietly(graph.aclose())
        await _close_quietly(store.close())


def _mailbox_settings(env: Mapping[str, str]) -> mailbox_settings.PassSettings:
    try:
        return mailbox_settings.PassSettings.from_env(env)
    except ValueError as exc:
        raise errors.PermanentFailure("bad_configuration", str(exc)) from exc


def _schedule(env: Mapping[str, str]) -> str:
    """The timer's schedule (R16 spreads photo checks over its runs)."""
    return env.get(config.SYNC_SCHEDULE) or config.DEFAULT_SYNC_SCHEDULE
