"""R18: why a user is in its state, and what the next run would do (changes nothing).

The same pipeline as a run, with apply off: both sides are read, every step reads what
it needs (the photo of this one user only), and the one pure plan is made; then
`shared.reconcile.explain` answers from it. The run's load leaves calendars and events
out (they are the mailbox pass's), so this user's are read on their own.
"""

from __future__ import annotations

from typing import Any

from shared.reconcile import convert, explain
from shared.run import pipeline, prepare
from shared.run import report as run_report
from shared.run.context import Deps
from shared.run.steps import photos, user_faults
from shared.store import keys, protocols

UserNotFound = explain.NotFound
AmbiguousUser = explain.AmbiguousUser


async def explain_user(deps: Deps, key: str) -> dict[str, Any]:
    """R18 for a user id, username or e-mail (or an employee's e-mail; or an Entra user's
    object id, UPN or mail). Raises `UserNotFound` / `AmbiguousUser`."""
    with pipeline.paused_gc():
        return await _explain(deps, key)


async def _explain(deps: Deps, key: str) -> dict[str, Any]:
    now = deps.clock()
    run = await prepare.prepare(deps, started=now, run_id=run_report.new_run_id(now),
                                trigger="explain", applying=False)
    user_docs = {u["id"]: u for u in run.doc.get("users", ())}
    doc = explain.find_user(key, user_docs, convert.emply_snapshot(run.doc).employees)
    run.only_user = None if doc is None else str(doc["id"])
    if doc is not None:
        await _with_mailbox(deps.store, run.doc, str(doc["id"]))
    steps = pipeline.steps_for(run.settings)
    await pipeline.read_all(run, steps)
    plan = pipeline.make_plan(run, steps)
    entra, emply = pipeline.snapshots(run, steps)
    result = explain.explain(key, entra, emply, user_docs, run.settings, plan, now)
    if doc is None or result.get("user", {}).get("id") != doc["id"]:
        return result
    return user_faults.explained(photos.explained(result, doc, run.settings, run), doc, run)


async def _with_mailbox(store: protocols.SyncStore, doc: dict[str, Any], user_id: str
                        ) -> None:
    """The user's calendars and events put in `doc` (a load of this explanation's own)."""
    side, bucket = store.mailbox_side(), keys.user_bucket(user_id)
    doc["calendars"] = [c for c, _etag in await side.read_calendars(bucket, bucket)
                        if c["userId"] == user_id]
    doc["events"] = [e for e in await side.read_events(bucket, bucket)
                     if e["userId"] == user_id]
