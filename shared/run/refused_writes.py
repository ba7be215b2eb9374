"""R9: the writes Graph refused as a privileged user's, remembered between runs.

App-only User.ReadWrite.All may not change or delete a user who holds a privileged
administrator role (api/user-update.md, api/user-delete.md): Graph answers that user
alone 403 while it accepts the run's other writes (`shared.graph.writer`,
`entra_user_protected`). Sending the same write every 30 minutes would only repeat the
error, so the run that was refused reports it and keeps it in the sync-state part
"refused"::

    state-refused.json.gz  {"format": 1,
                            "users": {entraId: {"kind", "digest", "at"}}}

The planner gets the records as an input (`EntraSnapshot.refused_writes`) and does not
plan a write with the same kind, Entra user and digest (`plan_model.write_digest`: the
Entra values and Emply's) again: it is counted under `skips` instead. A changed
employee profile or Entra user makes another write, which is sent. Graph does not show
when an administrator role is taken away, so a record is also forgotten
`RETRY_AFTER` after the refusal and the write tried once more.

Invariants: ids, kinds and digests only (no values). A part that cannot be read counts
as empty: every write is planned and sent again, which is safe. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from shared.reconcile import model, plan_model
from shared.run.report import Json, iso

STATE_PART = "refused"
FORMAT = 1
RETRY_AFTER = dt.timedelta(days=7)

Refused = Mapping[str, model.RefusedWrite]


def loaded(value: Any, now: dt.datetime) -> dict[str, model.RefusedWrite]:
    """The stored records still in force at `now` (unreadable ones dropped)."""
    if not isinstance(value, dict) or value.get("format") != FORMAT \
            or not isinstance(value.get("users"), dict):
        return {}
    out = {}
    for entra_id, record in value["users"].items():
        found = _record(record)
        if isinstance(entra_id, str) and found is not None and _in_force(found, now):
            out[entra_id] = found
    return dict(sorted(out.items()))


def after(before: Refused, planned: Iterable[model.Change],
          protected: Iterable[model.Change], now: dt.datetime) -> dict[str, model.RefusedWrite]:
    """The records a run at `now` leaves: those of the users it wrote to dropped (the
    write was another, or its record had expired), the writes Graph refused this run
    added, the expired ones forgotten."""
    written = {c.entra_id for c in planned}
    out = {i: r for i, r in before.items() if i not in written and _in_force(r, now)}
    for change in protected:
        if change.entra_id:
            out[change.entra_id] = model.RefusedWrite(
                change.kind, plan_model.write_digest(change), now)
    return dict(sorted(out.items()))


def to_json(records: Refused) -> Json:
    return {"format": FORMAT, "users": {
        i: {"kind": r.kind, "digest": r.digest, "at": iso(r.at)} for i, r in records.items()}}


def _in_force(record: model.RefusedWrite, now: dt.datetime) -> bool:
    return now - record.at < RETRY_AFTER


def _record(value: Any) -> model.RefusedWrite | None:
    if not isinstance(value, dict):
        return None
    kind, digest, at = value.get("kind"), value.get("digest"), value.get("at")
    if kind not in model.ENTRA_KINDS or not isinstance(digest, str) or not isinstance(at, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return model.RefusedWrite(kind, digest, moment) if moment.tzinfo else None
