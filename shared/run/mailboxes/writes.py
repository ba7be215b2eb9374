"""What a shard writes: its plan to the Emply side, then the pass's new state of its users
(`shared.run.mailboxes.shard`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from shared.reconcile import mailbox_plan, model, removal
from shared.run import report as run_report
from shared.run.mailboxes.job import ShardJob, ShardOutcome
from shared.run.mailboxes.reads import Found
from shared.run.mailboxes.state import CalendarState, MailboxState
from shared.store import protocols

Key = tuple[str, str]


async def write_plan(side: protocols.MailboxSide, plan: mailbox_plan.GroupPlan,
                     found: Found, stored: tuple[model.EmplyEvent, ...],
                     outcome: ShardOutcome) -> set[str]:
    """The plan's writes in the calendars step's order: the events of calendars that go,
    and those R14 removes, then those calendars; then the calendars added or changed
    (conditional on the ETag read: the users whose calendars Emply changed meanwhile are
    returned and written no further), then R14's events. A shard stopped half-way leaves
    what is left for the next run to plan again."""
    gone, events_gone = removal.deletions(plan.changes, (e.stored or {} for e in stored))
    deletes = {(e["userId"], e["calendarId"], e["id"]): e
               for e in (*events_gone, *plan.writes.deletes)}
    await side.delete("events", deletes.values())
    await side.delete("calendars", gone)
    added = []
    for change in plan.changes:
        if change.kind == model.CALENDAR_ADD:
            user_id, calendar_id = str(change.after["userId"]), str(change.after["id"])
            have = found.calendars.get(user_id, {}).get(calendar_id)
            added.append((dict(change.after), have[1] if have else None))
    conflicts = await side.write_calendars(added)
    upserts = [e for e in plan.writes.upserts if e["userId"] not in conflicts]
    await side.write_events(upserts)
    outcome.events_written += len(upserts)
    outcome.events_deleted += len(deletes)
    return conflicts


def calendars_after(found: Found, plan: mailbox_plan.GroupPlan
                    ) -> dict[str, dict[str, model.EmplyCalendar]]:
    """Each user's calendars in Emply once the plan's R13 changes are written."""
    after = {u: {c: cal for c, (cal, _e) in mine.items()}
             for u, mine in found.calendars.items()}
    for change in plan.changes:
        if change.kind == model.CALENDAR_REMOVE:
            after.get(str(change.before["userId"]), {}).pop(
                str(change.before["calendarId"]), None)
        elif change.kind == model.CALENDAR_ADD:
            a = change.after
            after.setdefault(str(a["userId"]), {})[str(a["id"])] = model.EmplyCalendar(
                str(a["userId"]), str(a["id"]), a.get("name"), bool(a.get("isDefault")),
                bool(a.get("enabled")))
    return after


@dataclasses.dataclass(frozen=True)
class Read:
    """What Graph answered this run, for the new states."""

    listed: Mapping[str, Any]
    """Entra id -> calendars (None: no mailbox in the cloud), of the mailboxes read."""
    links: Mapping[Key, str | None]
    """The calendars whose events were read: each round's delta link (None: the calendar
    was not found)."""
    failed: Collection[str]
    """Users whose mailbox (or one of its calendars) could not be read."""
    failed_calendars: Collection[Key] = ()


def new_states(found: Found, job: ShardJob, generation: str, read: Read,
               plan: mailbox_plan.GroupPlan, conflicts: Collection[str],
               subscribed: Mapping[str, tuple[str, str] | None] | None = None,
               ) -> dict[str, dict[str, Any] | None]:
    """The states to write: each user's that changed (None: the row goes).
    `subscribed`: the users whose subscription changed, and to what."""
    after = calendars_after(found, plan)
    subscribed = subscribed or {}
    changed = {c.user_id for c in plan.changes} | set(subscribed)
    out: dict[str, dict[str, Any] | None] = {}
    for user_id in sorted({*found.users, *found.states}):
        if user_id in conflicts:
            continue  # planned again by the next run, from the state it had
        if user_id not in changed and _same(found.states.get(user_id), user_id, job,
                                            generation, read, after.get(user_id, {})):
            continue
        state = _state(user_id, found, job, generation, read, plan, after.get(user_id, {}))
        if state is not None and user_id in subscribed:
            state = dataclasses.replace(state, subscription=subscribed[user_id])
        value = None if state is None else state.to_json()
        if value != found.raw_states.get(user_id):
            out[user_id] = value
    return out


def _same(old: MailboxState | None, user_id: str, job: ShardJob, generation: str,
          read: Read, calendars: Mapping[str, model.EmplyCalendar]) -> bool:
    """Whether a user's state stays as it is (the common case: a mailbox read with no
    change gets the same links back), told without building it anew."""
    if old is None or old.failures or user_id in read.failed \
            or old.window != job.window or old.generation != generation \
            or old.entra_id is None or old.entra_id not in read.listed \
            or old.in_cloud != (read.listed[old.entra_id] is not None) \
            or old.calendars.keys() != calendars.keys():
        return False
    for calendar_id, calendar in calendars.items():
        was = old.calendars[calendar_id]
        if (was.name, was.is_default, was.enabled) != (
                calendar.name, calendar.is_default, calendar.enabled):
            return False
        link = read.links.get((user_id, calendar_id))
        if calendar.enabled and (was.known is None or link != was.known.link):
            return False
    return True


def _state(user_id: str, found: Found, job: ShardJob, generation: str, read: Read,
           plan: mailbox_plan.GroupPlan, calendars: Mapping[str, model.EmplyCalendar]
           ) -> MailboxState | None:
    old = found.states.get(user_id)
    synced = job.users.get(user_id)
    if synced is None and not calendars:
        return None
    entra_id = synced.entra_id if synced else (old.entra_id if old else None)
    at = run_report.iso(job.now)
    if user_id in read.failed and entra_id not in read.listed:
        base = old or MailboxState(entra_id)
        return dataclasses.replace(base, failures=base.failures + 1, failed_at=at)
    if entra_id is None or entra_id not in read.listed:
        # Not read this run: what Emply keeps now (R13 may have removed calendars).
        if old is None:
            return None  # nothing to remember yet (a user synced from the next run on)
        kept = {c: s for c, s in old.calendars.items() if c in calendars}
        return dataclasses.replace(old, entra_id=entra_id, calendars=kept)
    failed = user_id in read.failed
    return MailboxState(
        entra_id=entra_id, window=job.window, generation=generation,
        subscription=old.subscription if old else None,
        in_cloud=read.listed[entra_id] is not None,
        failures=(old.failures + 1) if failed and old else int(failed),
        failed_at=at if failed else None,
        calendars={c: CalendarState(cal.name, cal.is_default, cal.enabled,
                                    _known(user_id, cal, old, job, generation, read, plan))
                   for c, cal in sorted(calendars.items())})


def _known(user_id: str, calendar: model.EmplyCalendar, old: MailboxState | None,
           job: ShardJob, generation: str, read: Read, plan: mailbox_plan.GroupPlan
           ) -> mailbox_plan.Known | None:
    """What the pass knows of a calendar's events once this run is written: a calendar
    whose read failed is known no more (the next read is a full one, with Emply's events
    read)."""
    key = (user_id, calendar.id)
    if key in read.failed_calendars:
        return None
    was = (old.known(job.window, generation) if old else {}).get(calendar.id)
    link = read.links.get(key)
    if key in plan.known:  # a disabled calendar's too: Emply holds none of its events
        return dataclasses.replace(plan.known[key], link=link if calendar.enabled else None)
    if not calendar.enabled:
        return was
    if link is not None:
        return dataclasses.replace(was, link=link) if was else None
    return was
