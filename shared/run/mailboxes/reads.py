"""What a shard reads of the Emply side and of its own state, and which events to ask
Graph for (`shared.run.mailboxes.shard`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from shared.graph import events as graph_events
from shared.reconcile import convert, events, mailbox_plan, model
from shared.run.mailboxes.job import ShardJob
from shared.run.mailboxes.state import MailboxState
from shared.store import protocols

RANGE_READ_AT = 16
"""Calendars whose stored events a shard needs, from which it reads all of its users'
events in one range query instead of one query per calendar (a first run, a new day
with many changes)."""


@dataclasses.dataclass
class Found:
    """The shard's users as Emply and the pass's state have them."""

    users: dict[str, model.EmplyUser]
    calendars: dict[str, dict[str, tuple[model.EmplyCalendar, str]]]
    """User id -> calendar id -> (the calendar Emply keeps, its ETag)."""
    states: dict[str, MailboxState]
    raw_states: dict[str, dict[str, Any]]

    def snapshot(self) -> model.EmplySnapshot:
        return model.EmplySnapshot(
            users=tuple(self.users.values()),
            calendars=tuple(c for mine in self.calendars.values() for c, _e in mine.values()))


async def emply_side(store: protocols.SyncStore, job: ShardJob) -> Found:
    """The calendars Emply keeps for the shard's users, the pass's state of them, and
    the users themselves: the synced ones as the index has them, the others (whose
    calendars may have to go, and why) as Emply has them."""
    side = store.mailbox_side()
    rows, raw = await asyncio.gather(side.read_calendars(job.first, job.last),
                                     store.mailbox_states().read_states(job.first, job.last))
    if job.only is not None:
        rows = [(item, etag) for item, etag in rows if item["userId"] in job.only]
        raw = {u: v for u, v in raw.items() if u in job.only}
    kept: dict[str, dict[str, tuple[model.EmplyCalendar, str]]] = {}
    for item, etag in rows:
        calendar = model.EmplyCalendar(str(item["userId"]), str(item["id"]), item.get("name"),
                                       bool(item.get("isDefault")), bool(item.get("enabled")))
        kept.setdefault(calendar.user_id, {})[calendar.id] = (calendar, etag)
    states = {u: s for u, v in raw.items() if (s := MailboxState.from_json(v)) is not None}
    users = {u: synced_user(u, s.entra_id) for u, s in job.users.items()}
    others = sorted(u for u in {*kept, *states} if u not in users)
    if others:
        found = await store.read_entities("users", others)
        users.update({u: convert.emply_user(found[u]) for u in others if u in found})
    return Found(users, kept, states, raw)


def synced_user(user_id: str, entra_id: str) -> model.EmplyUser:
    """A user whose calendars are synced, as R13 sees one: linked, active, on."""
    return model.EmplyUser(id=user_id, username="", email=None, entra_id=entra_id)


def wanted_events(snapshot: model.EmplySnapshot,
                  mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None],
                  known: Mapping[tuple[str, str], mailbox_plan.Known],
                  r13: list[model.Change], by_entra: Mapping[str, str]
                  ) -> list[graph_events.Wanted]:
    """The calendars whose events this shard reads: each calendar R13 keeps enabled
    after this run (`r13`: its changes) among those just listed (the default one, others
    the user enabled), with its delta link when the pass still holds one."""
    with_calendars = {e.casefold(): e for e, found in mailboxes.items() if found is not None}
    entra_of = {u: with_calendars.get(e) for e, u in by_entra.items()}
    out = []
    for (user_id, calendar_id), enabled in sorted(
            events.mirrored_after(snapshot.calendars, r13).items()):
        entra_id = entra_of.get(user_id)
        if not enabled or entra_id is None:
            continue
        was = known.get((user_id, calendar_id))
        out.append(graph_events.Wanted(entra_id, calendar_id,
                                       was.link if was is not None else None))
    return out


async def stored_events(side: protocols.MailboxSide, job: ShardJob,
                        need: Iterable[tuple[str, str]], *, everything: bool = False
                        ) -> tuple[model.EmplyEvent, ...]:
    """Emply's events of the calendars that need them: one range query when there are
    many, else one query per calendar; with `everything`, all of the shard's (R17: also
    events whose calendar Emply does not keep)."""
    wanted = set(need)
    if not wanted and not everything:
        return ()
    if everything or len(wanted) >= RANGE_READ_AT:
        rows = [e for e in await side.read_events(job.first, job.last)
                if (e["userId"], e["calendarId"]) in wanted or (
                    everything and (job.only is None or e["userId"] in job.only))]
    else:
        found = await asyncio.gather(*(side.read_calendar_events(u, c)
                                       for u, c in sorted(wanted)))
        rows = [e for part in found for e in part]
    return tuple(model.EmplyEvent(e["userId"], e["calendarId"], e["id"],
                                  e.get("sensitivity") == "private", e) for e in rows)


async def own_events(store: protocols.SyncStore, job: ShardJob, readable: Mapping[str, str]
                     ) -> dict[str, frozenset[str]]:
    """Entra id → the Graph ids of the events the sync created in that mailbox (R15's
    outbound events), for the mailboxes read: read when the shard works, so a push made
    after the run indexed them counts too."""
    wanted = {o: u for u in readable for o in job.users[u].outbound}
    if not wanted:
        return {}
    found = await store.read_entities("outboundEvents", sorted(wanted))
    out: dict[str, set[str]] = {}
    for outbound_id, user_id in wanted.items():
        graph_id = (found.get(outbound_id) or {}).get("graphId")
        if graph_id:
            out.setdefault(readable[user_id], set()).add(str(graph_id))
    return {e: frozenset(ids) for e, ids in out.items()}

