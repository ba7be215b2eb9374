"""The two sides every whole-world run (and every explanation) starts from: the Emply
side and the Entra directory, with the sync's state.

The Emply side comes from the store (with `use_cache`, an unchanged Emply side from the
index the last run saved: users without `lastChange`/`history`; the store's version
marker says whether it is still current), without its calendars and events: those are
the mailbox pass's (`shared.run.mailboxes`), read a shard of users at a time. The
directory (users, groups, organization) is read from Graph through delta, all or
nothing (R7): a read that fails raises, and nothing is planned or applied. A removed
integration (R17) reads nothing from Graph when `read_when_disabled` is off.

A run that plans only what changed (`shared.run.indexed`) reads both sides through the
indexes instead; this is the whole-world read, for the runs that index does not cover.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared import errors
from shared.graph import reader
from shared.reconcile import convert
from shared.run import disabled, indexes
from shared.run import state as sync_state
from shared.run.context import Deps, Run
from shared.run.emply_index import EmplyIndex
from shared.run.entra_index import EntraIndex
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
    saved: tuple[EntraIndex | None, EmplyIndex | None] | None = None,
) -> Run:
    """Read both sides into a `Run`. `loaded`: the sync state when the caller has read it
    already; `changes`: what Graph reported since the previous mirror, when the caller
    has read that (`shared.run.unchanged.check`); `saved`: the indexes, when the caller
    has read them (the Emply one current)."""
    state, warnings = loaded if loaded is not None else await sync_state.load_state(
        deps.store)
    more: tuple[Json, ...] = ()
    if saved is None:
        entra_index, emply_index, more = await indexes.load(deps.store, state)
    else:
        entra_index, emply_index = saved
    emply = None
    # Calendars and events are the mailbox pass's, read a shard of users at a time.
    if use_cache and emply_index is not None and emply_index.version is not None:
        emply = await deps.store.loaded_from(
            emply_index.version, {k: emply_index.entries(k) for k in indexes.ALL_KINDS
                                  if k in protocols.DIRECTORY_KINDS})
    if emply is None:
        emply = await deps.store.load_emply(None, sparse=True,
                                            kinds=protocols.DIRECTORY_KINDS)
    del emply_index
    doc: dict[str, Any] = emply.doc
    if not doc.get("settings"):
        raise errors.NotConfigured(
            "the integration has no settings: import an Emply state file with a 'settings' "
            "section first (emply-sync emply import FILE)"
        )
    settings = convert.settings(doc["settings"])
    previous = None
    if not settings.enabled and not read_when_disabled:
        directory = disabled.not_read(settings.tenant_id)
    else:
        # An index that kept only the ids of users outside the configured groups cannot
        # say what the whole directory holds (R9 create, R18 for any Entra user): read it.
        whole = (entra_index.to_mirror() if entra_index is not None
                 and (entra_index.keeps_all() or not _needs_everyone(settings, trigger))
                 else None)
        previous = state.previous_mirror(whole)
        directory = await reader.read_entra(
            deps.graph, previous, tenant_id=settings.tenant_id, changes=changes)
    return Run(deps=deps, started=started, run_id=run_id, trigger=trigger, applying=applying,
               loaded=emply, settings=settings, state=state, directory=directory,
               previous_mirror=previous, warnings=(*warnings, *more), only_user=only_user)


def _needs_everyone(settings: Any, trigger: str) -> bool:
    """Whether this run looks at Entra users outside the configured groups."""
    return trigger == "explain" or "create" in settings.write_back
