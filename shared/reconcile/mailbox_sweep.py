"""The mailbox pass's slow sweep: which buckets of users a run reads in full.

With change notifications on, a run reads the mailboxes Graph said changed (and those
whose Emply side or directory changed); the sweep is the safety net, every mailbox read
at least once per `hours` (the setting `EMPLY_SYNC_MAILBOX_SWEEP_HOURS`, default 24).
Bucket b's slot is `int(b, 16) mod slots`, and each scheduled tick sweeps the slot of
its index counted from 1970-01-01 00:00 UTC, with

    slots = max(1, (ticks in `hours`) // 2)     48 ticks a day, 24 hours: 24 slots

so the ticks of a sweep period go round the slots twice: every bucket is swept twice
per period, and still once when every other run fails. A schedule this module cannot
count (`photo_slices.ticks_per_day`), or `hours` 0, sweeps everything every run.
"""

from __future__ import annotations

import bisect
import datetime as dt

from shared.reconcile import photo_slices

BUCKETS = tuple(f"{n:02x}" for n in range(256))


def slots_for(schedule: str, hours: int) -> int:
    ticks = photo_slices.ticks_per_day(schedule)
    if not ticks or hours <= 0:
        return 1
    return max(1, (len(ticks) * hours // 24) // 2)


def swept(schedule: str, hours: int, now: dt.datetime) -> frozenset[str]:
    """The buckets the scheduled run at `now` sweeps (the last tick at or before it)."""
    ticks = photo_slices.ticks_per_day(schedule)
    slots = slots_for(schedule, hours)
    if not ticks or slots == 1:
        return frozenset(BUCKETS)
    moment = now.astimezone(dt.UTC)
    second = moment.hour * 3600 + moment.minute * 60 + moment.second
    index = bisect.bisect_right(ticks, second) - 1
    day = (moment.date() - dt.date(1970, 1, 1)).days
    if index < 0:  # before the day's first tick: the previous day's last one
        day, index = day - 1, len(ticks) - 1
    slot = (day * len(ticks) + index) % slots
    return frozenset(b for b in BUCKETS if int(b, 16) % slots == slot)
