"""Per-user read faults between runs: who could not be read, why, and when to try again.

R7: "Per-user faults never stop the run". A mailbox (calendars, events) or a photo that
Graph would not give us for one user is an error on that user (`shared.graph.failures`)
and what Emply holds for that user stays as it is. So that a mailbox an access policy
hides is not asked for again every 30 minutes, each failing user has a small record in
the sync-state part "faults"::

    state-faults.json.gz  {"format": 1,
                           "reads": {"mailbox" | "photo": {entraId: {
                               "reason", "status", "code", "temporary", "calendarId",
                               "attempts", "firstAt", "lastAt", "nextTry"}}}}

and its mailbox (or photo) is not read again before `nextTry`: `FIRST_BACKOFF` after
the first failure, doubled with each failure in a row, at most `MAX_BACKOFF` (30 min,
1 h, 2 h … 1 day). A run that starts up to `EARLY` before a user's next try reads it
(the timer's runs drift by seconds; 30 minutes after a failure is the next timer run).
A successful read clears the record. A record of a user no run asked about for
`MAX_BACKOFF` after its next try (it left calendar sync, was deactivated) is dropped.

Invariants: records hold ids and Graph's codes only. A part that cannot be read counts
as empty, in the safe direction: every user is read again. Pure: no I/O (the step
`shared.run.steps.user_faults` loads and saves the part).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.graph import failures
from shared.run.report import Json, iso, parse_iso

STATE_PART = "faults"
FORMAT = 1
MAILBOX = "mailbox"
PHOTO = "photo"
KINDS = (MAILBOX, PHOTO)

FIRST_BACKOFF = dt.timedelta(minutes=30)
MAX_BACKOFF = dt.timedelta(days=1)
EARLY = dt.timedelta(minutes=5)
"""A run this much before a user's next try reads it already."""

RETRY_LATER = {MAILBOX: "mailbox_retry_later", PHOTO: "photo_retry_later"}
"""Skip reasons (counted in a report's `skips`): users not read this run because their
last read failed and their next try is still to come."""
READ_FORBIDDEN = "graph_read_forbidden"
"""Error reason: every user read answered 403 alike (a missing permission)."""
FORBIDDEN_AT_LEAST = 2
"""Users read before "every one refused" is taken for a missing permission."""
PERMISSIONS = {
    "calendars": "Calendars.ReadWrite (deploy with enableCalendarSync=true)",
    "events": "Calendars.ReadWrite (deploy with enableCalendarSync=true)",
    "photos": "ProfilePhoto.Read.All (deploy with enablePhotoSync=true)",
}


def backoff(attempts: int) -> dt.timedelta:
    """How long a user is left alone after `attempts` failed reads in a row."""
    doublings = max(0, min(attempts, 32) - 1)
    return min(FIRST_BACKOFF * float(2 ** doublings), MAX_BACKOFF)


@dataclasses.dataclass(frozen=True)
class Fault:
    """One user's failing read (of its mailbox, or of its photo)."""

    reason: str
    status: int | None
    code: str | None
    temporary: bool
    attempts: int
    first_at: dt.datetime
    last_at: dt.datetime
    next_try: dt.datetime
    calendar_id: str | None = None

    def to_json(self) -> Json:
        return {"reason": self.reason, "status": self.status, "code": self.code,
                "temporary": self.temporary, "calendarId": self.calendar_id,
                "attempts": self.attempts, "firstAt": iso(self.first_at),
                "lastAt": iso(self.last_at), "nextTry": iso(self.next_try)}

    @classmethod
    def from_json(cls, value: Any) -> Fault | None:
        """None when `value` is not a record this code wrote (the user is read again)."""
        if not isinstance(value, dict):
            return None
        times = [parse_iso(value.get(k)) for k in ("firstAt", "lastAt", "nextTry")]
        status, code, calendar = value.get("status"), value.get("code"), value.get("calendarId")
        attempts = value.get("attempts")
        if (not isinstance(value.get("reason"), str) or None in times
                or type(attempts) is not int or attempts < 1
                or not (status is None or type(status) is int)
                or not (code is None or isinstance(code, str))
                or not (calendar is None or isinstance(calendar, str))):
            return None
        first, last, next_try = (t for t in times if t is not None)
        return cls(value["reason"], status, code, value.get("temporary") is True, attempts,
                   first, last, next_try, calendar)


def next_fault(previous: Fault | None, failure: failures.UserReadFailure,
               now: dt.datetime) -> Fault:
    """The record after `failure` at `now`, one attempt more than `previous`."""
    attempts = (previous.attempts if previous else 0) + 1
    return Fault(failure.reason, failure.status, failure.code, failure.temporary, attempts,
                 previous.first_at if previous else now, now, now + backoff(attempts),
                 failure.calendar_id)


@dataclasses.dataclass(frozen=True)
class Faults:
    """The stored records: kind (`MAILBOX`, `PHOTO`) → Entra id → its fault."""

    reads: Mapping[str, Mapping[str, Fault]] = dataclasses.field(default_factory=dict)

    def of(self, kind: str) -> Mapping[str, Fault]:
        return self.reads.get(kind, {})

    def waiting(self, kind: str, now: dt.datetime) -> dict[str, Fault]:
        """The users of `kind` a run at `now` leaves alone (their next try is to come)."""
        return {i: f for i, f in self.of(kind).items() if now + EARLY < f.next_try}

    def after(self, kind: str, asked: Iterable[str],
              failed: Mapping[str, failures.UserReadFailure], now: dt.datetime) -> Faults:
        """The records once a run at `now` asked for `asked` and `failed` failed: a
        failure is one attempt more, a user read is cleared, the others are kept unless
        stale (see the module's docstring)."""
        asked_ids = frozenset(asked) | frozenset(failed)
        mine = self.of(kind)
        kept = {i: f for i, f in mine.items()
                if i not in asked_ids and now <= f.next_try + MAX_BACKOFF}
        kept.update({i: next_fault(mine.get(i), f, now) for i, f in failed.items()})
        # A kind with no records is left out, as `from_json` reads it back: a run that
        # changed nothing compares equal to what it read, and writes nothing.
        reads = {k: v for k, v in self.reads.items() if k != kind}
        if kept:
            reads[kind] = dict(sorted(kept.items()))
        return dataclasses.replace(self, reads=reads)

    def to_json(self) -> Json:
        return {"format": FORMAT, "reads": {
            kind: {i: f.to_json() for i, f in self.of(kind).items()}
            for kind in KINDS if self.of(kind)}}

    @classmethod
    def from_json(cls, value: Any) -> Faults:
        """The stored part; anything unreadable in it counts as absent."""
        if not isinstance(value, dict) or value.get("format") != FORMAT \
                or not isinstance(value.get("reads"), dict):
            return cls()
        reads: dict[str, dict[str, Fault]] = {}
        for kind in KINDS:
            found = value["reads"].get(kind)
            if not isinstance(found, dict):
                continue
            records = {i: Fault.from_json(f) for i, f in found.items() if isinstance(i, str)}
            reads[kind] = {i: f for i, f in records.items() if f is not None}
        return cls(reads)


def errors(read: str, asked: int, failed: Sequence[failures.UserReadFailure],
           records: Mapping[str, Fault]) -> list[Json]:
    """A report's errors for one read (`calendars`, `events`, `photos`) of `asked` items:
    one per failed item (with its attempts and next try), or, when at least
    `FORBIDDEN_AT_LEAST` were asked and Graph refused every one with the same 403,
    one error for the run naming the permission (a user at a time would hide the cause)."""
    if not failed:
        return []
    codes = {(f.status, f.code) for f in failed}
    if asked >= FORBIDDEN_AT_LEAST and len(failed) == asked and len(codes) == 1 \
            and failed[0].status == 403:
        return [forbidden(read, asked, failed[0])]
    out = []
    for failure in failed:
        entry = failure.as_error()
        record = records.get(failure.entra_id)
        if record is not None:
            entry.update(attempts=record.attempts, nextTry=iso(record.next_try))
            entry["message"] += (f"; tried again from {iso(record.next_try)} (failed "
                                 f"{record.attempts} time{'s' if record.attempts > 1 else ''} "
                                 "in a row)")
        out.append(entry)
    return out


def forbidden(read: str, asked: int, failure: failures.UserReadFailure) -> Json:
    what = "mailbox" if read != "photos" else "photo"
    items = "calendars" if read == "events" else "users"
    return {
        "reason": READ_FORBIDDEN, "temporary": False, "rule": "R7", "read": read,
        "count": asked, "graphStatus": failure.status, "graphCode": failure.code,
        "message": f"Graph refused the {read} of every one of the {asked} {items} read "
                   f"(GET {failure.endpoint}: HTTP 403, error code {failure.code or 'unknown'})"
                   f": the app registration lacks {PERMISSIONS.get(read, 'the permission')}"
                   + (", or an Exchange application access policy keeps it out of every "
                      "mailbox" if what == "mailbox" else "")
                   + f"; what Emply holds for each {what} is kept, and each user is tried "
                   "again with back-off",
    }


def explain_words(kind: str, fault: Fault) -> str:
    """R18: why a user's calendars (or photo) are not synced now."""
    what = "calendars and events are kept as they were" if kind == MAILBOX \
        else "photo is kept as it was"
    where = f" (calendar {fault.calendar_id})" if fault.calendar_id else ""
    status = f"HTTP {fault.status}" if fault.status is not None else "no HTTP answer"
    return (f"{what} ({fault.reason}): Graph could not be read for this "
            f"user{where} ({status}, error code {fault.code or 'unknown'}) "
            f"{fault.attempts} time{'s' if fault.attempts > 1 else ''} in a row since "
            f"{iso(fault.first_at)}; the next run from {iso(fault.next_try)} tries again "
            f"({'temporary' if fault.temporary else _ACT})")


_ACT = "someone must act: an Exchange application access policy, a licence or a permission"


