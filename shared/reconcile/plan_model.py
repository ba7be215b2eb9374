"""What a plan is made of: the changes, problems and bookkeeping the planner returns,
and the small state it hands to the next run (`shared.reconcile.model` re-exports every
name here, so callers keep writing `model.Plan`, `model.Change`).

Invariants: records are frozen; a `Change` is the only way the planner asks for
something to happen, and carries the rule (R1..R18) and the reason code behind it.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

RunStatus = Literal["succeeded", "needs_approval", "failed", "disabled"]

ENTRA_USER_PROTECTED = "entra_user_protected"
"""R9: Graph refused a write to this user alone (403 while it accepted other writes): a
privileged administrator the app's User.ReadWrite.All may not change or delete."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outside:
    """What a plan of part of the world (`shared.reconcile.touched`) needs to know of the
    rest: how many users outside the part are linked and active (R7's base, and R9's
    deletion guard), counting what the run has done outside the part already."""

    linked_active: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class SyncState:
    """What the sync remembers between successful runs."""

    previous_mapping: Mapping[str, str | None] | None = None
    """Group → role mapping at the last successful run with role sync on. Since R11 keeps a
    basis per user (`EmplyUser.role_basis`), it only seeds that basis for users linked
    before the basis existed; None when roles have never been synced (no migration)."""
    recent_deactivations: tuple[tuple[dt.datetime, int], ...] = ()
    """(when, how many) deactivations runs applied without approval, within
    `GUARD_WINDOW` of the run that recorded them (R7's rolling window)."""
    held_digest: str | None = None
    """`held_digest` of the deactivations the last run held, if any."""


# --- The plan ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    kind: str
    rule: str
    reason: str
    user_id: str | None
    entra_id: str | None = None
    before: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    after: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    message: str = ""
    employee_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "userId": self.user_id,
            "entraId": self.entra_id,
            "reason": self.reason,
            "rule": self.rule,
            # The plan's own mappings, not copies (133,000 changes in a 100,000-user initial
            # sync); reports are read, never edited.
            "before": self.before if isinstance(self.before, dict) else dict(self.before),
            "after": self.after if isinstance(self.after, dict) else dict(self.after),
            "message": self.message,
        }
        if self.employee_id is not None:
            out["employeeId"] = self.employee_id
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """An error or a skip the run reports; it changes nothing."""

    reason: str
    message: str
    entra_id: str | None = None
    user_id: str | None = None
    rule: str = ""
    candidates: tuple[str, ...] = ()
    """Emply user ids involved (ambiguous_match), so explain can find the problem."""

    def concerns(self, user_id: str, entra_id: str | None) -> bool:
        return (
            self.user_id == user_id
            or user_id in self.candidates
            or (entra_id is not None and self.entra_id == entra_id)
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "message": self.message}
        if self.entra_id is not None:
            out["entraId"] = self.entra_id
        if self.user_id is not None:
            out["userId"] = self.user_id
        if self.candidates:
            out["candidates"] = list(self.candidates)
        if self.rule:
            out["rule"] = self.rule
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Bookkeeping:
    """Not a reported change: what the sync remembers on a user for later runs (the
    configured groups it is in now, its R11 role basis, its R6 link domain); None: not
    changed. Slots, not a dict of fields: an initial sync keeps one for 50,000 users."""

    user_id: str
    sync_groups: list[str] | None = None
    role_basis: Mapping[str, str | None] | None = None
    linked_domain: str | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """The stored fields to set."""
        return {stored: value for stored, attribute in BOOKKEPT.items()
                if (value := getattr(self, attribute)) is not None}


BOOKKEPT = {"syncGroups": "sync_groups", "roleBasis": "role_basis",
            "linkedDomain": "linked_domain"}
"""A user's stored field → the `Bookkeeping` attribute that sets it."""


@dataclasses.dataclass(frozen=True, slots=True)
class EventWrites:
    """R14's entity writes behind a plan's `events_mirror` changes (not reported: a first
    run of 10,000 users mirrors 400,000 events)."""

    upserts: tuple[dict[str, Any], ...] = ()
    deletes: tuple[dict[str, str], ...] = ()
    counts: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    """(user id, calendar id) → events each mirrored calendar holds after the plan."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    held: tuple[Change, ...] = ()
    errors: tuple[Problem, ...] = ()
    skips: Mapping[str, int] = dataclasses.field(default_factory=dict)
    bookkeeping: tuple[Bookkeeping, ...] = ()
    next_state: SyncState = SyncState()
    held_digest: str | None = None
    """`held_digest` of the held deactivations: what an approval of exactly these names."""
    held_deletions_digest: str | None = None
    """`held_digest` of the held Entra deletions (R9 delete, approved on their own)."""
    disabled: bool = False
    """R17: the plan of a run with `enabled: false` (the integration removed)."""
    events: EventWrites | None = None
    """R14: the events to write, when events were read this run."""

    @property
    def status(self) -> RunStatus:
        if self.disabled:
            return "disabled"
        return "needs_approval" if self.held else "succeeded"

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.kind] = counts.get(change.kind, 0) + 1
        return counts

    def for_user(self, user_id: str) -> tuple[Change, ...]:
        return tuple(c for c in (*self.changes, *self.held) if c.user_id == user_id)


@dataclasses.dataclass(frozen=True, slots=True)
class RefusedWrite:
    """R9: a write Graph refused as a privileged user's (`ENTRA_USER_PROTECTED`). The
    planner does not plan the very same write (same digest) for that user again: a
    changed employee profile or Entra user makes another write, which is sent."""

    kind: str
    digest: str
    at: dt.datetime
    """When Graph refused it."""


def write_digest(change: Change) -> str:
    """What identifies a write: its kind, its Entra user, Entra's values and Emply's."""
    text = json.dumps([change.kind, change.entra_id, change.before, change.after],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
