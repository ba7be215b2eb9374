"""What one run is made of: its dependencies (`Deps`) and what it has read (`Run`).

A `Run` is filled in by the pipeline (`shared.run.pipeline`) and its steps, in this
order: the state and the Emply side (`shared.run.prepare`), the Entra directory, each
step's own read (`Run.reads`, by step name), then one pure plan. Steps read from it and
add their read; they never edit the report (they return a `StepOutcome`). `applying`
is what tells a real run from a dry run or an explanation: the same pipeline, with
apply on or off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shared import config
from shared.graph import client as graph_client
from shared.graph import reader
from shared.reconcile import model
from shared.run import report as run_report
from shared.run import state as sync_state
from shared.run.mailboxes.settings import PassSettings
from shared.store import photo_blobs, protocols

Clock = Callable[[], dt.datetime]


@dataclasses.dataclass
class Deps:
    store: protocols.SyncStore
    graph: graph_client.GraphClient
    clock: Clock = run_report.utcnow
    schedule: str = config.DEFAULT_SYNC_SCHEDULE
    """The timer's NCRONTAB schedule: R16 spreads the photo checks over its runs."""
    photos: photo_blobs.PhotoBlobs | None = None
    """R16's blobs (`shared.app.boundary` gives the store's `photos` container); None: no
    photo can be copied (a run that would copy one fails before writing its user)."""
    mailboxes: PassSettings = dataclasses.field(default_factory=lambda: PassSettings())
    """The mailbox pass's app settings (R13, R14)."""
    shard_queue: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None
    """Puts a mailbox shard on the queue (`mailboxes.queued`: the app's queue); None: the
    shards run in the run's own process whatever the settings say."""


@dataclasses.dataclass
class Run:
    """One run under way (or one explanation): what it read, and for whom."""

    deps: Deps
    started: dt.datetime
    run_id: str
    trigger: str
    applying: bool
    """A real run (it holds the lease and applies); False for a dry run or `explain`."""
    loaded: protocols.LoadedEmply
    """The Emply side as loaded: the value every Emply write of the run is guarded by."""
    settings: model.Settings
    state: sync_state.SyncState
    directory: reader.EntraRead
    """The Entra directory (users, groups, organization): all or nothing (R7)."""
    previous_mirror: dict[str, Any] | None = None
    """The previous run's whole directory, when this run folded a delta round into it
    (a mirror: `shared.graph.mirror`)."""
    warnings: tuple[run_report.Json, ...] = ()
    """Problems found while reading that the run recovered from (reported as errors); a
    step's read adds its per-user faults here, so dry runs report them too."""
    skips: dict[str, int] = dataclasses.field(default_factory=dict)
    """Counted by the steps' reads: users not read this run, by reason (report `skips`)."""
    only_user: str | None = None
    """`explain`: the one Emply user whose per-user reads (photos) are wanted."""
    try_waiting: bool = False
    """An on-demand run: its user's per-user reads are tried now, whatever their back-off
    (`shared.run.steps.user_faults`)."""
    reads: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Each step's own read, by step name (see the step modules)."""

    @property
    def doc(self) -> dict[str, Any]:
        return self.loaded.doc

    @property
    def at(self) -> str:
        """The run's time stamp, as its writes record it."""
        return run_report.iso(self.started)
