"""The sync's own state between runs, as typed, frozen records.

The run passes these around; dicts exist only at the edges: `load_state` and
`save_state` are the one place the state blob is read and written. The stored shapes::

    state.json.gz   {"format": 4, "mirrorHead": {...}, "index": "<generation>",
                     "indexDelta": "<generation>" | null,
                     "previousMapping": {group: role | null} | null, "lastRunId": str,
                     "guardWindow": [{"at": time, "count": n}], "heldDigest": str | null,
                     "residual": {"runId", "date", "until", "emplyVersion", "tenantId",
                                  "organization", "status", "held", "heldDigest",
                                  "errors", "skips"} | null}
    index-entra-<generation>.bin.z, index-emply-<generation>.bin.z
                    the directory and the Emply side as the sync keeps them
                    (`shared.run.entra_index`, `shared.run.emply_index`), saved whole
    index-entradelta-<generation>.bin.z, index-emplydelta-<generation>.bin.z
                    what changed in them since they were saved whole

Invariants:

- One format version, `FORMAT`. A state without "format" is the shape written before
  it (the same fields) and is read as it is; a state of format 3 (which named a
  snapshot of another shape instead of an index) is read without its snapshot: that
  run reads both sides whole. Any other format, or a state that is not a JSON object,
  raises `StateUnreadable`: the run reports `sync_state_unreadable` and reads Entra in
  full, which is always safe (R7: it deactivates only who is really gone).
- A malformed part of a readable state counts as absent, in the safe direction
  each time: no mirror head is a full read, no residual is a plan made again, a
  malformed `previousMapping` is no role migration (R11 step 2) rather than a
  wrong one.
- Records are frozen and hold the bulky JSON parts (the mirror head's organization,
  the residual's held deactivations and errors) by reference, read-only:
  nothing is copied per user. The directory and the Emply copy are not part of the
  state at all; they live in the indexes the state names.
- A residual is reusable only on the UTC date it was made on and without an
  approval (`Residual.reusable_on`): the planner reads its clock argument only
  through that date, but for the time stamps it writes on new links (see
  `shared.run.unchanged`, and the property in `tests/unit/test_properties.py`) and for
  R7's rolling window. That window matters to an unchanged world only when something
  is held, so such a residual also carries `until`: when the oldest deactivation
  counted in the window leaves it (the guard may then let the held ones through).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.reconcile import model
from shared.run.report import Json, Outcome, parse_iso
from shared.store import protocols

FORMAT = 4
"""4: the state names an index (3: a snapshot of another shape, read as none)."""
_READABLE = frozenset({3, FORMAT})


class StateUnreadable(ValueError):
    """The stored state is not one this code can read (the run reads Entra in full)."""


# --- The residual a run records ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Residual:
    """What a successful run's plan left, with what it was made from."""

    run_id: str
    date: dt.date
    """The UTC date the plan was made on."""
    emply_version: str
    """The Emply version marker after the run's own writes."""
    tenant_id: str
    organization: Mapping[str, Any]
    outcome: Outcome
    until: dt.datetime | None = None
    """When R7's rolling window changes for a residual that holds deactivations."""
    calendar_sync: bool = False
    """R13 was on: calendars change without a trace in the users/groups delta, so such a
    residual is never reused (every run reads the users' calendars and plans)."""

    def reusable_on(self, now: dt.datetime, *, approve: object | None) -> bool:
        """Whether a run at `now` may report this residual again, Graph and Emply being
        unchanged: same UTC day (R8 acts on dates), no approval to act on, the guard's
        window as it was, and no calendars to read."""
        return (approve is None and not self.calendar_sync and utc_date(now) == self.date
                and (self.until is None or now < self.until))

    def to_json(self) -> Json:
        out: Json = {
            "runId": self.run_id,
            "date": self.date.isoformat(),
            "emplyVersion": self.emply_version,
            "tenantId": self.tenant_id,
            "organization": dict(self.organization),
            "status": self.outcome.status,
            "held": list(self.outcome.held),
            "heldDigest": self.outcome.held_digest,
            "errors": list(self.outcome.errors),
            "skips": dict(self.outcome.skips),
            "until": None if self.until is None else _iso(self.until),
        }
        if self.calendar_sync:  # absent otherwise, as states written before R13 have it
            out["calendarSync"] = True
        return out

    @classmethod
    def from_json(cls, value: Any) -> Residual | None:
        """None when `value` is not a residual (a run then plans as usual)."""
        if not isinstance(value, dict):
            return None
        run_id, date, version, tenant, org = (value.get(k) for k in (
            "runId", "date", "emplyVersion", "tenantId", "organization"))
        held, errors, skips = (value.get(k) for k in ("held", "errors", "skips"))
        status = value.get("status", "succeeded")
        digest = value.get("heldDigest")
        try:
            day = dt.date.fromisoformat(date) if isinstance(date, str) else None
        except ValueError:
            day = None
        until = parse_iso(value.get("until"))
        if value.get("until") is not None and until is None:
            return None  # a limit that cannot be read: plan again
        if (day is None or not isinstance(run_id, str) or not isinstance(version, str)
                or not isinstance(tenant, str)
                or not isinstance(org, dict) or not isinstance(status, str)
                or not _json_list(held) or not _json_list(errors)
                or not (skips is None or isinstance(skips, dict))):
            return None
        return cls(run_id=run_id, date=day, emply_version=version, tenant_id=tenant,
                   organization=org, until=until,
                   calendar_sync=value.get("calendarSync") is True,
                   outcome=Outcome(status, tuple(held or ()), tuple(errors or ()),
                                   dict(skips or {}),
                                   digest if isinstance(digest, str) else None))


def utc_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def residual(plan: model.Plan, *, run_id: str, started: dt.datetime, tenant_id: str,
             emply_version: str | None, organization: Mapping[str, Any],
             calendar_sync: bool = False) -> Residual | None:
    """What a successful run records; None when it cannot be reused (another writer
    moved the Emply marker during the run, so its version is not known)."""
    return residual_of(Outcome.of(plan), plan.next_state, run_id=run_id, started=started,
                       tenant_id=tenant_id, emply_version=emply_version,
                       organization=organization, calendar_sync=calendar_sync)


def residual_of(outcome: Outcome, next_state: model.SyncState, *, run_id: str,
                started: dt.datetime, tenant_id: str, emply_version: str | None,
                organization: Mapping[str, Any], calendar_sync: bool = False
                ) -> Residual | None:
    """`residual` of a run whose outcome was made from several plans (`shared.run.indexed`)."""
    if emply_version is None:
        return None
    window = next_state.recent_deactivations
    until = (min(at for at, _ in window) + model.GUARD_WINDOW
             if outcome.held and window else None)
    return Residual(run_id=run_id, date=utc_date(started), emply_version=emply_version,
                    tenant_id=tenant_id, organization=organization, outcome=outcome,
                    until=until, calendar_sync=calendar_sync)


def _json_list(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, dict)
                                                             for v in value))


# --- The sync state -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SyncState:
    """The sync's own small state between runs (`state.json.gz`)."""

    mirror_head: Mapping[str, Any] | None = None
    """The Entra mirror without its users and groups: version, tenant, organization,
    delta links (`shared.graph.reader`)."""
    index: str | None = None
    """The generation of the indexes holding the directory and the Emply copy."""
    index_delta: str | None = None
    """The generation of what changed in them since (None: nothing)."""
    previous_mapping: Mapping[str, str | None] | None = None
    """Group → role mapping of the last run that synced roles (R11 step 2)."""
    recent_deactivations: tuple[tuple[dt.datetime, int], ...] = ()
    """R7's rolling window: deactivations applied without approval, and when."""
    held_digest: str | None = None
    """R7: the digest of what the last run held (a bare count approves only that)."""
    last_run_id: str | None = None
    residual: Residual | None = None
    legacy_mirror: Mapping[str, Any] | None = None
    """A whole mirror, as states written before the snapshot held it ("mirror"). Read,
    never written: the next run's state replaces it."""

    def to_json(self) -> Json:
        return {
            "format": FORMAT,
            "mirrorHead": None if self.mirror_head is None else dict(self.mirror_head),
            "index": self.index,
            "indexDelta": self.index_delta,
            "previousMapping": (None if self.previous_mapping is None
                                else dict(self.previous_mapping)),
            "lastRunId": self.last_run_id,
            "guardWindow": [{"at": _iso(at), "count": n} for at, n in self.recent_deactivations],
            "heldDigest": self.held_digest,
            "residual": None if self.residual is None else self.residual.to_json(),
        }

    @classmethod
    def from_json(cls, value: Any) -> SyncState:
        """Raises `StateUnreadable` for a state of another format or shape; a malformed
        part counts as absent (see the module's invariants)."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise StateUnreadable(f"expected a JSON object, got {type(value).__name__}")
        form = value.get("format", FORMAT)
        if form not in _READABLE:
            raise StateUnreadable(f"state format {form!r}, this code reads {FORMAT}")
        head, generation, legacy = (value.get(k) for k in ("mirrorHead", "index", "mirror"))
        last, digest = value.get("lastRunId"), value.get("heldDigest")
        return cls(
            mirror_head=head if isinstance(head, dict) else None,
            index=generation if isinstance(generation, str) else None,
            index_delta=delta if isinstance(delta := value.get("indexDelta"), str) else None,
            previous_mapping=_mapping(value.get("previousMapping")),
            recent_deactivations=_window(value.get("guardWindow")),
            held_digest=digest if isinstance(digest, str) else None,
            last_run_id=last if isinstance(last, str) else None,
            residual=Residual.from_json(value.get("residual")),
            legacy_mirror=legacy if isinstance(legacy, dict) else None,
        )

    def previous_mirror(self, whole: Mapping[str, Any] | None) -> Json | None:
        """The Entra mirror of the previous run: its head from the state, its users and
        groups from `whole` (`EntraIndex.to_mirror` of the index the state names)."""
        if self.legacy_mirror is not None:
            return dict(self.legacy_mirror)
        if self.mirror_head is None or whole is None:
            return None
        return {**whole, **self.mirror_head}

    def after_unchanged(self, delta_links: Mapping[str, str], run_id: str) -> SyncState:
        """The state after a run that reused the residual: only the delta links move."""
        head = dict(self.mirror_head or {})
        head["deltaLinks"] = dict(delta_links)
        return dataclasses.replace(self, mirror_head=head, last_run_id=run_id)

    def planner_state(self) -> model.SyncState:
        return model.SyncState(previous_mapping=self.previous_mapping,
                               recent_deactivations=self.recent_deactivations,
                               held_digest=self.held_digest)


def _window(value: Any) -> tuple[tuple[dt.datetime, int], ...]:
    """R7's window as stored; entries that cannot be read are dropped (the window is a
    safety margin on top of the per-run guard, which always holds)."""
    if not isinstance(value, list):
        return ()
    out = []
    for entry in value:
        at = parse_iso(entry.get("at")) if isinstance(entry, dict) else None
        count = entry.get("count") if isinstance(entry, dict) else None
        if at is not None and isinstance(count, int) and not isinstance(count, bool):
            out.append((at, count))
    return tuple(out)


def _mapping(value: Any) -> dict[str, str | None] | None:
    # A mapping of the wrong shape is treated as unknown: no migration rather than a wrong one.
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    ):
        return None
    return dict(value)


def after_run(head: Mapping[str, Any], *, generation: str, next_state: model.SyncState,
              run_id: str, residual: Residual | None, delta: str | None = None) -> SyncState:
    """The state a run that applied a plan leaves: the directory's head (version,
    tenant, organization, delta links) and the indexes' generation."""
    return SyncState(
        mirror_head={k: v for k, v in head.items() if k not in ("users", "groups")},
        index=generation,
        index_delta=delta,
        previous_mapping=next_state.previous_mapping,
        recent_deactivations=next_state.recent_deactivations,
        held_digest=next_state.held_digest,
        last_run_id=run_id,
        residual=residual,
    )


def unreadable_warning(exc: BaseException) -> Json:
    """The report's error for a stored state (or snapshot) that could not be read."""
    return {
        "reason": "sync_state_unreadable",
        "message": f"the sync's stored state could not be read ({type(exc).__name__}: "
        f"{exc}); Entra is read in full and the state rewritten. Role mapping changes "
        "made since the last run are not migrated (R11 step 2) this once",
    }


async def load_state(store: protocols.SyncStateStore) -> tuple[SyncState, tuple[Json, ...]]:
    """The stored state; an unreadable one is an empty state and a warning, not a crash
    (what is lost with it is the previous role mapping, so the warning says so)."""
    try:
        return SyncState.from_json(await store.load_sync_state()), ()
    except (OSError, ValueError, EOFError) as exc:  # gzip, JSON, format and shape errors
        return SyncState(), (unreadable_warning(exc),)


async def save_state(store: protocols.SyncStateStore, state: SyncState) -> None:
    await store.save_sync_state(state.to_json())
