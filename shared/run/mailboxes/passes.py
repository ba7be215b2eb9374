"""The mailbox pass: R13 and R14 for every synced mailbox, a shard of users at a time.

Calendars and events are not in Graph's delta, so a run reads each synced user's
calendars and each mirrored calendar's changes. The pass cuts the users into shards (a
contiguous range of buckets holding about `shard_size` synced users, `plan_shards`) and
runs each on its own (`shard.run_shard`): read, plan, write, remember. In one process
the shards run `shards_at_once` at a time and share one `MailboxGate`, so Outlook's
4 requests per mailbox and the bound on batches in flight hold across them; a shard
holds only its own users' calendars and events.

Who is synced is the pass's index (`state.Synced` per user, a row per bucket): the
directory run computes it from what it planned (`synced_after`) and writes the buckets
that changed (`update_index`); a run that finds the directory unchanged reads it. R17
(the integration removed) empties it, and each shard then removes what Emply keeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
from collections import deque
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping
from typing import Any

from shared.graph import client as graph_client
from shared.graph import middleware
from shared.graph.mailbox_gate import MailboxGate
from shared.reconcile import events, mailbox_sweep, model
from shared.run.mailboxes import job as shard_job
from shared.run.mailboxes import notified
from shared.run.mailboxes import shard as one_shard
from shared.run.mailboxes.settings import PassSettings
from shared.run.mailboxes.state import BucketIndex, Synced, index_from_json, index_to_json
from shared.store import keys, protocols

SETTINGS_ROW = "settings"
"""The index row that keeps the integration settings the last pass ran with."""


@dataclasses.dataclass(frozen=True)
class ShardRange:
    first: str
    last: str
    users: BucketIndex


@dataclasses.dataclass
class PassOutcome(shard_job.ShardOutcome):
    """The pass's outcome: its shards' outcomes added up, and how many shards there were."""

    shards: int = 0

    def add(self, one: shard_job.ShardOutcome) -> None:
        """One shard's outcome (its Graph requests are counted for the whole pass: the
        shards' items share batches)."""
        self.changes += one.changes
        self.errors += one.errors
        self.shards += 1
        self.mailboxes += one.mailboxes
        self.calendars += one.calendars
        self.events_written += one.events_written
        self.events_deleted += one.events_deleted
        self.asked |= one.asked
        self.failed.update(one.failed)
        self.waiting += one.waiting

    def progress(self) -> dict[str, int]:
        return {"mailboxShards": self.shards, "mailboxesRead": self.mailboxes,
                "calendarsRead": self.calendars, "eventsWritten": self.events_written,
                "eventsDeleted": self.events_deleted}


def synced_after(doc: Mapping[str, Any], entra_users: Mapping[str, Any],
                 changes: Iterable[model.Change], settings: model.Settings, run_id: str
                 ) -> dict[str, Synced]:
    """Whose calendars are synced once this run's changes are applied (R13): users
    linked and active with their own calendar sync on, whose Entra user exists; those
    this run deactivates are not, and those it links, creates or reactivates are from
    the next run on (`Synced.since`)."""
    if not (settings.enabled and settings.calendar_sync):
        return {}
    users = {u["id"]: u for u in doc.get("users", ())}
    outbound: dict[str, list[str]] = {}
    for item in doc.get("outboundEvents", ()):
        outbound.setdefault(str(item["userId"]), []).append(str(item["id"]))
    out = {u["id"]: Synced(u["entraId"], outbound=tuple(sorted(outbound.get(u["id"], ()))))
           for u in users.values()
           if u.get("entraId") and u.get("status", "active") == "active"
           and u.get("calendarSync") is not False and u["entraId"] in entra_users}
    for change in changes:
        user_id, entra_id = change.user_id, change.entra_id
        if user_id is None:
            continue
        if change.kind == model.DEACTIVATE_USER:
            out.pop(user_id, None)
        elif change.kind in (model.LINK_USER, model.CREATE_USER, model.REACTIVATE_USER) \
                and entra_id and user_id not in out \
                and users.get(user_id, {}).get("calendarSync") is not False:
            out[user_id] = Synced(entra_id, since=run_id,
                                  outbound=tuple(sorted(outbound.get(user_id, ()))))
    return out


def by_bucket(synced: Mapping[str, Synced]) -> dict[str, BucketIndex]:
    out: dict[str, BucketIndex] = {}
    for user_id, entry in synced.items():
        out.setdefault(keys.user_bucket(user_id), {})[user_id] = entry
    return out


async def read_index(states: protocols.MailboxStates) -> dict[str, BucketIndex]:
    found: dict[str, BucketIndex] = {}
    for bucket, value in (await states.read_index()).items():
        parsed = index_from_json(value)
        if parsed is not None and bucket in keys.ALL_BUCKETS:
            found[bucket] = parsed
    return found


async def update_index(states: protocols.MailboxStates, new: Mapping[str, BucketIndex],
                       old: Mapping[str, BucketIndex]) -> list[str]:
    """Write the buckets whose synced users changed; returns them."""
    changed = sorted(b for b in {*new, *old} if new.get(b, {}) != old.get(b, {}))
    await states.write_index({b: index_to_json(new[b]) if new.get(b) else None
                              for b in changed})
    return changed


async def save_settings(states: protocols.MailboxStates, settings: Mapping[str, Any]
                        ) -> None:
    """Keep the integration settings the pass runs with, for a run that finds the Emply
    side unchanged and so does not load it (written only when they changed)."""
    current = await load_settings(states)
    if current != settings:
        await states.write_index({SETTINGS_ROW: {"settings": dict(settings)}})


async def load_settings(states: protocols.MailboxStates) -> dict[str, Any] | None:
    row = (await states.read_index()).get(SETTINGS_ROW)
    found = row.get("settings") if row else None
    return found if isinstance(found, dict) else None


async def cleared(states: protocols.MailboxStates) -> str | None:
    """The generation of the Emply side in which a pass with nobody synced left no
    calendar (None: none did since the settings changed)."""
    row = (await states.read_index()).get(SETTINGS_ROW)
    found = row.get("cleared") if row else None
    return found if isinstance(found, str) else None


async def seen_generation(states: protocols.MailboxStates) -> str | None:
    """The generation of the Emply side the last notified pass read (an import since
    makes the next one read every mailbox)."""
    row = (await states.read_index()).get(SETTINGS_ROW)
    found = row.get("generation") if row else None
    return found if isinstance(found, str) else None


async def record_generation(states: protocols.MailboxStates, generation: str) -> None:
    row = (await states.read_index()).get(SETTINGS_ROW) or {}
    if row.get("generation") != generation:
        await states.write_index({SETTINGS_ROW: {**row, "generation": generation}})


async def mark_cleared(states: protocols.MailboxStates, generation: str) -> None:
    row = (await states.read_index()).get(SETTINGS_ROW) or {}
    await states.write_index({SETTINGS_ROW: {**row, "cleared": generation}})


def plan_shards(index: Mapping[str, BucketIndex], shard_size: int, *,
                skip: Collection[str] = ()) -> list[ShardRange]:
    """Contiguous bucket ranges covering every bucket but those in `skip`, each with
    about `shard_size` synced users (a bucket is never split: its users' calendars are
    one query)."""
    out: list[ShardRange] = []
    first: str | None = None
    previous = keys.ALL_BUCKETS[0]
    users: BucketIndex = {}
    for bucket in keys.ALL_BUCKETS:
        if bucket in skip:
            if first is not None:
                out.append(ShardRange(first, previous, users))
            first, users = None, {}
            continue
        first = first or bucket
        users = {**users, **index.get(bucket, {})}
        previous = bucket
        if len(users) >= shard_size:
            out.append(ShardRange(first, bucket, users))
            first, users = None, {}
    if first is not None:
        out.append(ShardRange(first, previous, users))
    return out


MANUAL_TRIGGERS = frozenset({"cli", "http"})
"""A run someone asked for reads every mailbox, as without notifications."""


@dataclasses.dataclass(frozen=True)
class PassWork:
    """What a run's pass does: the buckets it reads in full (`swept`) and the others it
    looks at (`touched`: a mailbox there is read when notified, new, or changed in Emply);
    the dirty marks, and what subscriptions need (notifications on)."""

    swept: frozenset[str]
    touched: frozenset[str]
    dirty: notified.Dirty = dataclasses.field(default_factory=dict)
    notify: notified.Notify | None = None
    stale: tuple[str, ...] = ()
    """Dirty marks of mailboxes not synced: cleared by a pass that applies."""
    generation: str | None = None
    """The Emply side's generation the pass reads (recorded once it applied)."""


async def plan_work(store: protocols.SyncStore, config: PassSettings, *, trigger: str,
                    schedule: str, now: dt.datetime, index: Mapping[str, BucketIndex],
                    changed: Collection[str] = ()) -> PassWork:
    """Without notifications every run reads every mailbox. With them: the mailboxes
    Graph said changed (dirty), the buckets whose synced users this run changed, and the
    sweep (a scheduled run's slot; a run someone asked for sweeps everything)."""
    states = store.mailbox_states()
    marks = await notified.dirty(states)
    everything = frozenset(keys.ALL_BUCKETS)
    if not config.notified or config.notification_url is None:
        return PassWork(everything, everything, marks)
    notify = notified.Notify(config.notification_url, await notified.secret(states))
    if trigger in MANUAL_TRIGGERS:
        swept = everything
    elif trigger == "timer":
        swept = mailbox_sweep.swept(schedule, config.sweep_hours, now)
    else:
        swept = frozenset()
    where = {s.entra_id.casefold(): b for b, users in index.items() for s in users.values()}
    # Users synced since a recent run are read once (they are new to the pass); after an
    # import (a new generation of the Emply side) every mailbox is.
    waiting = {b for b, users in index.items() if any(s.since for s in users.values())}
    generation = await store.mailbox_side().generation()
    if await seen_generation(states) != generation:
        waiting = set(everything)
    touched = swept | set(changed) | waiting | {where[e] for e in marks if e in where}
    return PassWork(swept, frozenset(touched), marks, notify,
                    stale=tuple(e for e in marks if e not in where), generation=generation)


async def run_pass(store: protocols.SyncStore, graph: graph_client.GraphClient, *,
                   run_id: str, settings: model.Settings, now: dt.datetime,
                   index: Mapping[str, BucketIndex], apply: bool,
                   config: PassSettings | None = None, work: PassWork | None = None,
                   only: frozenset[str] | None = None,
                   waiting: frozenset[str] | None = None) -> PassOutcome:
    """Every shard of the buckets `work` touches (all of them by default),
    `shards_at_once` at a time, in this process; with `only` (Emply user ids: one user
    now), those users alone; `waiting`: see `ShardJob.waiting`."""
    config = config or PassSettings()
    everything = frozenset(keys.ALL_BUCKETS)
    work = work or PassWork(everything, everything)
    start, end = events.window(now, settings)
    window = (events.iso(start), events.iso(end))
    deps = shard_job.ShardDeps(store, graph, MailboxGate(batches=config.batches))
    outcome = PassOutcome()

    async def one(part: ShardRange) -> None:
        async with deps.gate.working():
            outcome.add(await one_shard.run_shard(deps, shard_job.ShardJob(
                run_id, part.first, part.last, part.users, settings, window, now, apply,
                swept=work.swept, dirty=work.dirty, notify=work.notify, only=only,
                waiting=waiting)))

    parts = plan_shards(index, config.shard_size, skip=everything - work.touched)
    if apply and work.stale:  # marks of mailboxes not synced: nothing to read
        await notified.clear(store.mailbox_states(), work.dirty, work.stale)
    if apply and work.generation is not None:
        await record_generation(store.mailbox_states(), work.generation)
    with middleware.track() as stats:  # the gate packs the shards' items into batches
        await _run_all([functools.partial(one, p) for p in parts], deps.gate,
                       config.shards_at_once)
    outcome.requests, outcome.throttled = stats.total_requests, \
        stats.throttled + deps.gate.throttled
    outcome.changes.sort(key=_order)
    outcome.errors.sort(key=lambda e: (str(e.get("userId")), str(e.get("reason"))))
    return outcome


async def _run_all(shards: list[Callable[[], Coroutine[Any, Any, None]]], gate: MailboxGate,
                   at_once: int) -> None:
    """Run the shards `at_once` at a time; one more when the gate is starved (a batch
    that is not full waits only for a shard still to start), so batches stay full."""
    todo = deque(shards)
    running: set[asyncio.Task[None]] = set()
    try:
        while todo or running:
            gate.more_coming = bool(todo)
            while todo and (len(running) < at_once or gate.starved.is_set()):
                gate.starved.clear()
                running.add(asyncio.create_task(todo.popleft()()))
            gate.more_coming = bool(todo)
            if not todo:
                gate.starved.clear()  # nothing left to start: the gate sends what it has
            starved = asyncio.create_task(gate.starved.wait())
            done, _ = await asyncio.wait({*running, starved},
                                         return_when=asyncio.FIRST_COMPLETED)
            starved.cancel()
            for task in done - {starved}:
                running.discard(task)
                task.result()
    finally:
        gate.more_coming = False
        for task in running:
            task.cancel()


def _order(change: model.Change) -> tuple[int, str, str]:
    """R13's changes first, then R14's, each by user and calendar (the one plan's order)."""
    calendar = change.after.get("id") or change.before.get("calendarId") or ""
    return (change.kind == model.EVENTS_MIRROR, str(change.user_id), str(calendar))
