"""The two sides every run (and every explanation) starts from: the Emply side and the
Entra directory, with the sync's state.

The Emply side comes from the store (with `use_cache`, an unchanged Emply side from the
previous run's snapshot: users without `lastChange`/`history`; the store's version
marker says whether it is still current), without its calendars and events: those are
the mailbox pass's (`shared.run.mailboxes`), read a shard of users at a time. The
directory (users, groups, organization) is read from Graph through delta, all or
nothing (R7): a read that fails raises, and nothing is planned or applied. A removed
integration (R17) reads nothing from Graph when `read_when_disabled` is off.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared import errors
from shared.graph import reader
from shared.reconcile import convert
from shared.run import disabled
from shared.run import state as sync_state
from shared.run.context import Deps, Run
from shared.run.report import Json
from shared.store import protocols


async def prepare(
    deps: Deps,
    *,
    started: dt.datetime,
    run_id: str,
    trigger: str,
    applying: bool,
    use_cache: bool = False,
    loaded: tuple[sync_state.SyncState, tuple[Json, ...]] | None = None,
    changes: reader.Changes | None = None,
    read_when_disabled: bool = True,
    only_user: str | None = None,
) -> Run:
    """Read both sides into a `Run`. `loaded`: the sync state when the caller has read it
    already; `changes`: what Graph reported since the previous mirror, when the caller
    has read that (`shared.run.unchanged.check`)."""
    state, warnings = loaded if loaded is not None else await sync_state.load_state(
        deps.store)
    snapshot, state, more = await sync_state.load_snapshot(deps.store, state)
    cache = snapshot.get("emply") if snapshot and use_cache else None
    # Calendars and events are the mailbox pass's, read a shard of users at a time.
    emply = await deps.store.load_emply(cache, sparse=True, kinds=protocols.DIRECTORY_KINDS)
    doc: dict[str, Any] = emply.doc
    if not doc.get("settings"):
        raise errors.NotConfigured(
            "the integration has no settings: import an Emply state file with a 'settings' "
            "section first (emply-sync emply import FILE)"
        )
    settings = convert.settings(doc["settings"])
    if not settings.enabled and not read_when_disabled:
        directory = disabled.not_read(settings.tenant_id)
    else:
        directory = await reader.read_entra(
            deps.graph, state.previous_mirror(snapshot), tenant_id=settings.tenant_id,
            changes=changes)
    return Run(deps=deps, started=started, run_id=run_id, trigger=trigger, applying=applying,
               loaded=emply, settings=settings, state=state, directory=directory,
               snapshot=snapshot, warnings=(*warnings, *more), only_user=only_user)
