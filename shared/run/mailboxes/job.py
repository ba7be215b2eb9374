"""What one shard of the mailbox pass is given and gives back (`shared.run.mailboxes.shard`
does the work; its reads, writes and subscriptions take the job as it is described here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.graph import client as graph_client
from shared.graph import failures
from shared.graph.mailbox_gate import MailboxGate
from shared.reconcile import model
from shared.run.mailboxes import notified
from shared.run.mailboxes.state import Synced
from shared.store import protocols

Json = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """What one shard does: a range of buckets, and for whom."""

    run_id: str
    first: str
    last: str
    users: Mapping[str, Synced]
    """The synced users of these buckets (the index), by Emply user id."""
    settings: model.Settings
    window: tuple[str, str]
    now: dt.datetime
    apply: bool = True
    swept: frozenset[str] | None = None
    """The buckets whose synced mailboxes are all read (None: every one); in the others
    a mailbox is read when dirty, new, or changed in Emply."""
    dirty: notified.Dirty = dataclasses.field(default_factory=dict)
    notify: notified.Notify | None = None
    """Set with notifications on: subscriptions are kept."""
    only: frozenset[str] | None = None
    """One user now: the Emply users the shard acts on (None: every one of its buckets)."""
    waiting: frozenset[str] | None = None
    """The run's per-user faults (`shared.run.steps.user_faults`, R7): the mailboxes
    (casefolded Entra ids) whose next try is still to come. Set, it replaces the pass's
    own back-off (None: a queued shard, which has no run's book)."""


@dataclasses.dataclass(frozen=True)
class ShardDeps:
    store: protocols.SyncStore
    graph: graph_client.GraphClient
    gate: MailboxGate


@dataclasses.dataclass
class ShardOutcome:
    changes: list[model.Change] = dataclasses.field(default_factory=list)
    errors: list[Json] = dataclasses.field(default_factory=list)
    mailboxes: int = 0
    """Mailboxes whose calendars were read from Graph."""
    calendars: int = 0
    """Calendars whose events were read."""
    events_written: int = 0
    events_deleted: int = 0
    requests: int = 0
    throttled: int = 0
    asked: set[str] = dataclasses.field(default_factory=set)
    """The mailboxes (Entra ids) read from Graph."""
    failed: dict[str, failures.UserReadFailure] = dataclasses.field(default_factory=dict)
    """Entra id -> why its mailbox could not be read."""
    waiting: int = 0
    """Mailboxes left alone: their next try (`ShardJob.waiting`) is still to come."""
