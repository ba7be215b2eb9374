"""R16's spread: which users' photos a run checks.

Photos are not in Graph's delta, so each run checks a *slice* of the users: a user's
slot is a stable hash of its Emply user id into `slots` slots, and each run checks the
slot of the schedule tick it belongs to. With `R` scheduled runs a UTC day (48 for the
default `0 */30 * * * *`):

    slots = max(1, R // 2)             48 runs a day → 24 slots: each run checks 1/24
    slot of a run = (index of the last scheduled tick at or before it, counted from
                     00:00 UTC) mod slots

So the ticks of a day go round the slots `R // slots ≥ 2` times: every user is checked at
least twice a day, and still at least once when every other run fails. Manual runs
check the slot of the last tick again (harmless). Users linked, created, reactivated or
given other roles in a run are checked by that run whatever their slot
(`shared.reconcile.photos.targets`). A schedule this module cannot count (days, months
or weekdays restricted, or a field it does not read) checks every user every run.

NCRONTAB fields read: `{second} {minute} {hour} * * *`, each `*`, `N`, `A-B`, `*/S`,
`A-B/S` or a comma list of those.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib

_RANGES = ((0, 59), (0, 59), (0, 23))


def _field(text: str, low: int, high: int) -> list[int] | None:
    """The values one NCRONTAB field matches; None when it is not one this module reads."""
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            return None
        step = int(step_text) if step_text else 1
        if step < 1:
            return None
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            if not (first.isdigit() and last.isdigit()):
                return None
            start, end = int(first), int(last)
        elif base.isdigit():
            start = int(base)
            end = high if step_text else start
        else:
            return None
        if not low <= start <= end <= high:
            return None
        values.update(range(start, end + 1, step))
    return sorted(values)


def ticks_per_day(schedule: str) -> list[int] | None:
    """The seconds after 00:00 UTC at which `schedule` runs, every day; None when the
    schedule is not a daily one this module reads."""
    fields = schedule.split()
    if len(fields) != 6 or any(f not in ("*", "?") for f in fields[3:]):
        return None
    parsed = [_field(f, low, high) for f, (low, high) in zip(fields[:3], _RANGES, strict=True)]
    seconds, minutes, hours = parsed
    if seconds is None or minutes is None or hours is None:
        return None
    return sorted(h * 3600 + m * 60 + s for h in hours for m in minutes for s in seconds)


def slots_for(schedule: str) -> int:
    """How many slots the users are spread over (1: everyone every run)."""
    ticks = ticks_per_day(schedule)
    return max(1, len(ticks) // 2) if ticks else 1


def slot_of(user_id: str, slots: int) -> int:
    """A user's slot: stable across runs, processes and machines (not Python's `hash`)."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % slots


def current_slot(schedule: str, now: dt.datetime) -> int:
    """The slot the run at `now` checks."""
    ticks = ticks_per_day(schedule)
    slots = slots_for(schedule)
    if not ticks or slots == 1:
        return 0
    moment = now.astimezone(dt.UTC)
    second = moment.hour * 3600 + moment.minute * 60 + moment.second
    index = bisect.bisect_right(ticks, second) - 1
    if index < 0:  # before the day's first tick: the previous day's last one
        index = len(ticks) - 1
    return index % slots
