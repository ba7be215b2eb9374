"""What the mailbox pass remembers: per mailbox, and per bucket of users (the index).

A mailbox's state (`MailboxState`, one row per Emply user in the `mailboxes` table,
`shared.store.mailbox_state`) is what the pass left: the calendars Emply keeps for the
user, and per mirrored calendar its delta link and what Emply holds of it
(`mailbox_plan.Known`), with the window and the generation of the Emply side they hold
for. A link is used only while both are still current (a new day, or an import, reads
the calendar in full). The index (`BucketIndex`, one row per bucket) is whose calendars
are synced: Emply user id -> Entra id, and since which run (a user linked, created or
reactivated by a run is read from the next run on, as R13 has it). The directory run
writes the index when what it planned changes it; a run that finds nothing changed
reads it (`shared.run.unchanged`) instead of the Emply side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shared.reconcile import mailbox_plan

FORMAT = 1


@dataclasses.dataclass(frozen=True, slots=True)
class CalendarState:
    """One calendar as the pass left it in Emply, and what it knows of its events."""

    name: str | None
    is_default: bool
    enabled: bool
    known: mailbox_plan.Known | None = None
    """For a mirrored calendar: its delta link and Emply's events of it."""

    def to_json(self) -> list[Any]:
        k = self.known
        return [self.name, self.is_default, self.enabled,
                None if k is None else [k.link, k.events, k.digest]]

    @classmethod
    def from_json(cls, value: Any) -> CalendarState | None:
        if not (isinstance(value, list) and len(value) == 4):
            return None
        name, is_default, enabled, known = value
        parsed = None
        if isinstance(known, list) and len(known) == 3 and isinstance(known[1], int):
            link, count, digest = known
            parsed = mailbox_plan.Known(link if isinstance(link, str) else None, count,
                                        digest if isinstance(digest, str) else None)
        return cls(name if isinstance(name, str) else None, is_default is True,
                   enabled is True, parsed)


@dataclasses.dataclass(frozen=True, slots=True)
class MailboxState:
    entra_id: str | None
    window: tuple[str, str] | None = None
    generation: str | None = None
    in_cloud: bool = True
    """False: Graph said the mailbox is not in the cloud (R13 keeps no calendar)."""
    failures: int = 0
    """Reads failed in a row (R7: the next ones back off)."""
    failed_at: str | None = None
    calendars: Mapping[str, CalendarState] = dataclasses.field(default_factory=dict)
    subscription: tuple[str, str] | None = None
    """Graph's subscription on the mailbox's events: its id and expiry (notifications)."""

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "entraId": self.entra_id,
                "window": list(self.window) if self.window else None,
                "generation": self.generation, "inCloud": self.in_cloud,
                "failures": self.failures, "failedAt": self.failed_at,
                "calendars": {c: s.to_json() for c, s in sorted(self.calendars.items())},
                "subscription": list(self.subscription) if self.subscription else None}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> MailboxState | None:
        """The state, or None when it is not one this version wrote (read anew)."""
        if value.get("format") != FORMAT or not isinstance(value.get("calendars"), dict):
            return None
        window = value.get("window")
        calendars = {}
        for calendar_id, raw in value["calendars"].items():
            parsed = CalendarState.from_json(raw)
            if parsed is not None:
                calendars[str(calendar_id)] = parsed
        failures = value.get("failures")
        held = value.get("subscription")
        subscription = (str(held[0]), str(held[1])) if isinstance(held, list) \
            and len(held) == 2 and all(isinstance(h, str) for h in held) else None
        return cls(
            entra_id=_text(value.get("entraId")),
            window=(str(window[0]), str(window[1]))
            if isinstance(window, list) and len(window) == 2 else None,
            generation=_text(value.get("generation")), in_cloud=value.get("inCloud") is not False,
            failures=failures if isinstance(failures, int) else 0,
            failed_at=_text(value.get("failedAt")), calendars=calendars,
            subscription=subscription)

    def known(self, window: tuple[str, str], generation: str
              ) -> dict[str, mailbox_plan.Known]:
        """Per mirrored calendar what the pass knows of Emply's events of it, while that
        still holds (the same generation: an import replaces the events); its delta link
        only while the window is the same (else the calendar is read in full)."""
        if self.generation != generation:
            return {}
        same = self.window == window
        return {c: s.known if same else dataclasses.replace(s.known, link=None)
                for c, s in self.calendars.items() if s.known is not None}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclasses.dataclass(frozen=True, slots=True)
class Synced:
    """A user whose calendars are synced: its Entra id, and the run that made it so
    (that run does not read it; None: synced before)."""

    entra_id: str
    since: str | None = None
    outbound: tuple[str, ...] = ()
    """The ids of its outbound events (R15): the shard reads their Graph ids when it
    works, so R14 leaves the sync's own events out even of a shard that runs after
    this run pushed them."""


BucketIndex = dict[str, Synced]
"""Emply user id -> `Synced`, of one bucket."""


def index_to_json(index: Mapping[str, Synced]) -> dict[str, Any]:
    return {"format": FORMAT,
            "synced": {u: [s.entra_id, s.since, *([list(s.outbound)] if s.outbound else [])]
                       for u, s in sorted(index.items())}}


def index_from_json(value: Any) -> BucketIndex | None:
    if not isinstance(value, dict) or value.get("format") != FORMAT \
            or not isinstance(value.get("synced"), dict):
        return None
    out: BucketIndex = {}
    for user_id, raw in value["synced"].items():
        if isinstance(raw, list) and len(raw) in (2, 3) and isinstance(raw[0], str):
            outbound = raw[2] if len(raw) == 3 and isinstance(raw[2], list) else []
            out[str(user_id)] = Synced(raw[0], raw[1] if isinstance(raw[1], str) else None,
                                       tuple(str(o) for o in outbound))
    return out
