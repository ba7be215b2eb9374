"""What the service needs of storage, as a few small protocols.

Each protocol is a handful of storage primitives with one Azure implementation
(`lease`, `runlog`, `syncstate`, `emply_tables`; `EmplyStore` puts them together) and
an in-memory fake for tests (`tests/support/memory_store.py`); one contract suite
(`tests/store/test_protocol_contract.py`) runs the same cases against both.

- `RunLease`: the one-run-at-a-time lease (R1).
- `RunMarker`: the marker naming the queued manual run (`shared.app.manual_runs`).
- `RunLog`: run reports and their newest-first index.
- `SyncStateStore`: the sync state and the index parts of a generation.
- `EmplyTables`: the Emply side as the sync reads and writes it: a load that gives
  a value (`LoadedEmply`), and writes guarded by that value.
- `EmplyGenerations`: the Emply side as a whole: import, export, stale tables.
- `ChangeFeed`: where the change feed's chunks live (`FeedChunks`).
- `Mailboxes`: R13's calendars and R14's events a range of users at a time
  (`MailboxSide`) and the mailbox pass's own state (`MailboxStates`).
- `NotificationRecords`: Graph subscriptions (with their secret clientState), the
  notification debounce, and which lifecycle events were acted on (`shared.notify`).
- `CursorKeys`: the key page cursors are sealed with (`shared.emply.gate.seal`).

Invariants:
- The loaded Emply copy is a value: `load_emply` returns a `LoadedEmply`, and the
  caller passes it to the reads and writes that must be guarded by it. A store keeps
  nothing of a load; dropping the value drops the copy, its ETags and its compact
  cache (about 100 MB at 100,000 users).
- A write given a `LoadedEmply` is conditional on the ETags of what that load read
  (`ConcurrentChangeError` when another writer changed an entity since), and records
  what it wrote in the value's ledger, so `LoadedEmply.cache()` and `.version()` stay
  the Emply side as this run left it, or None once another writer moved the marker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Protocol

from shared.store.feed_chunks import Chunk

EMPLY_KINDS: tuple[str, ...] = ("settings", "roles", "users", "employees", "calendars",
                                "events", "outboundEvents")
DIRECTORY_KINDS: tuple[str, ...] = tuple(k for k in EMPLY_KINDS
                                         if k not in ("calendars", "events"))
"""What a run loads of the Emply side (`EmplyTables.load_emply`)."""

LEASE_TTL_SECONDS = 300
"""The single-run lease's length (R1); a live run renews it every third of it, so a
killed run's lease is free again at most this long after its last renewal."""


class Ledger(Protocol):
    """What a backend keeps of one load and the writes made with it."""

    def cache(self) -> dict[str, Any] | None:
        """A compact copy of the Emply side (JSON, for `load_emply(cache=...)`) tagged with the
        version marker; None when another writer moved the marker since the load."""

    def version(self) -> str | None:
        """The marker value the load and this value's writes left; None when another
        writer moved it since."""

    def entries(self, kind: str, ids: Iterable[str] | None = None
                ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """(ETag, compact entity) of the entities of `kind` the load read or this
        value's writes wrote (`ids`: only those, by id), as they are now; a compact
        entity lacks the users' `lastChange` and `history`."""


@dataclasses.dataclass(frozen=True, slots=True)
class LoadedEmply:
    """The Emply side as one load read it.

    `doc` is normalised like `emply_doc.validate_document` (treat it as read-only: its
    entities are shared). `served_from_cache`: it came from the compact copy given to
    the load (users then lack a non-empty `lastChange` and `history`: read whole ones
    with `read_entities` before rewriting them). `ledger`: the backend's record of the
    load's ETags and of the writes made with this value (see the module docstring).
    """

    doc: dict[str, Any]
    served_from_cache: bool
    ledger: Ledger
    whole: frozenset[str] = frozenset()
    """Users served from the copy that are whole there (their `lastChange` and `history`
    were empty when read): rewritten without being read first."""

    def cache(self) -> dict[str, Any] | None:
        return self.ledger.cache()

    def version(self) -> str | None:
        return self.ledger.version()


class RunLease(Protocol):
    async def acquire_lease(self, run_id: str, trigger: str, *,
                            ttl_seconds: int = LEASE_TTL_SECONDS) -> dict[str, Any] | None:
        """Take the lease or raise `RunInProgress`; returns the expired lease of another
        run this one took over (`runId`, `trigger`, `startedAt`, `expiresAt`,
        `renewedAt`), else None."""

    async def renew_lease(self, run_id: str, *, ttl_seconds: int = LEASE_TTL_SECONDS) -> None:
        """Push the lease's expiry out; `LeaseLost` when it is no longer `run_id`'s."""

    async def release_lease(self, run_id: str) -> None:
        """Give the lease up, only if it is still `run_id`'s."""

    async def current_lease(self) -> dict[str, Any] | None:
        """The lease (runId, trigger, startedAt, expiresAt, renewedAt) or None."""


class RunMarker(Protocol):
    async def create_marker(self, run_id: str, queued_at: str) -> bool:
        """Name the queued manual run, only if no marker exists: False when one does."""

    async def read_marker(self) -> dict[str, Any] | None:
        """The marker (runId, queuedAt, etag) or None."""

    async def delete_marker(self, etag: str) -> None:
        """Remove the marker if it is still the one read with `etag`."""


class RunLog(Protocol):
    async def save_run(self, report: Mapping[str, Any]) -> None:
        """Store a run report (by its runId; replaces an earlier one)."""

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The full report, or None."""

    async def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Run summaries, newest first (by queuedAt, else startedAt)."""

    async def last_run(self) -> dict[str, Any] | None:
        """The newest summary, or None."""


class SyncStateStore(Protocol):
    async def load_sync_state(self) -> dict[str, Any] | None: ...

    async def save_sync_state(self, state: Mapping[str, Any]) -> None: ...

    async def load_index(self, generation: str, part: str) -> bytes | bytearray | None:
        """The index `part` ("entra", "emply") saved as `generation`, or None."""

    async def save_index(self, generation: str, part: str,
                         data: Sequence[bytes | bytearray | memoryview]) -> None:
        """Write an index part of `generation`: the pieces, one after the other (its own
        blob: the current one is never overwritten by a run that then fails)."""

    async def delete_index(self, generation: str) -> None:
        """Remove the index parts of `generation` (missing ones are fine)."""

    async def load_state_part(self, name: str) -> Any:
        """A named part of the sync's own state (e.g. "events"), or None."""

    async def save_state_part(self, name: str, value: Any) -> None:
        """Replace a named part of the sync's own state."""


class EmplyTables(Protocol):
    async def load_emply(self, cache: Mapping[str, Any] | None = None, *,
                         sparse: bool = False,
                         kinds: Collection[str] = EMPLY_KINDS) -> LoadedEmply:
        """The Emply side's `kinds` (the others empty); from `cache` (an earlier
        `LoadedEmply.cache()`) when the version marker says it is still current and it
        holds these kinds. With `sparse`, users and employees may lack the fields they
        do not hold. The run loads `DIRECTORY_KINDS`: calendars and events are the
        mailbox pass's (`MailboxSide`), read a range of users at a time."""

    async def read_entities(self, kind: str, ids: Iterable[str], *,
                            loaded: LoadedEmply | None = None,
                            skip_conflicts: bool = False) -> dict[str, dict[str, Any]]:
        """Whole entities by id (missing ones left out); `ConcurrentChangeError` when one
        changed since `loaded` read it, or with `skip_conflicts` that one left out too (a
        conditional write of it then finds the conflict and leaves it out as well)."""

    async def write_built(self, kind: str, ids: Iterable[str],
                          build: Callable[[str], Mapping[str, Any]], *,
                          loaded: LoadedEmply | None = None,
                          skip_conflicts: bool = False) -> list[str]:
        """Write users or employees with these ids, each made by `build(id)` just before
        it is written (so a big write never holds them all). With `skip_conflicts`, the
        entities changed by someone else since `loaded` read them are left out (the rest
        written) instead of raising `ConcurrentChangeError`; returns their ids."""

    async def write_entities(self, kind: str, items: Sequence[Mapping[str, Any]], *,
                             loaded: LoadedEmply | None = None) -> None:
        """Write whole entities of a section."""

    async def delete_entities(self, kind: str, items: Iterable[Mapping[str, Any]], *,
                              loaded: LoadedEmply | None = None) -> None:
        """Delete entities (each given by its key fields); missing ones are fine."""

    async def current_version(self) -> str | None:
        """The version marker's value now (None when there is none)."""

    async def scan(self, take: Callable[[str, str | None, dict[str, Any], bool], None]
                   ) -> str | None:
        """Every entity of the Emply side, a page at a time: `take(kind, ETag, compact
        entity, whole)` (a user without `lastChange` and `history`; `whole`: it had
        none, so the compact entity is all of it), for a caller that keeps its
        own copy (the whole side is never held at once). Returns the version marker's
        value read before (None when there is none): the copy is the Emply side while
        the marker has that value."""

    def write_unit(self, kind: str, entity_id: str) -> str:
        """The unit entities are written in (entities of one unit go in one transaction,
        up to its size): a caller that writes in parts keeps a unit's entities in one."""

    async def loaded_from(self, version: str,
                          entries: Mapping[str, Iterable[tuple[str | None, dict[str, Any]]]],
                          *, whole: Collection[str] = ()) -> LoadedEmply:
        """The value a load at marker `version` would have given for these entities (kind
        -> (ETag, compact entity), from the caller's own copy of the Emply side; `whole`:
        the users whose compact entity is all of them, `LoadedEmply.whole`), served
        from the copy: writes made with it are guarded by those ETags (an entity another
        writer changed is a conflict). When the marker has moved from `version` already,
        its `version()` is None, as for a load another writer followed. Its `cache()` is
        None: it holds only the entities given."""


class EmplyGenerations(Protocol):
    async def export_document(self) -> dict[str, Any]:
        """The whole Emply side, as `emply-sync emply export` prints it."""

    async def import_document(self, doc: object, *, replace: bool = False,
                              before_switch: Callable[[], Awaitable[None]] | None = None,
                              ) -> dict[str, int]:
        """Validate, then make `doc` the Emply side (all or nothing); counts per section."""

    async def remove_stale_generations(self) -> int:
        """Drop what failed imports left; returns how many."""


class ChangeFeed(Protocol):
    def feed_chunks(self) -> FeedChunks:
        """Where the change feed's chunks live."""


class FeedChunks(Protocol):
    """Where the feed's chunks live, ordered by key."""

    async def put(self, chunks: Sequence[Chunk]) -> None:
        """Write these chunks (a rewrite of a key replaces it)."""

    def from_key(self, key: str) -> AsyncIterator[Chunk]:
        """The chunks whose key is `key` or after, in key order."""

    async def delete_before(self, key: str) -> int:
        """Delete the chunks whose key sorts before `key`; how many were deleted."""


class MailboxSide(Protocol):
    """The Emply side's calendars and events, by bucket of their user (two hex digits,
    `shared.store.codec.user_bucket`). Not in any copy a run keeps, so writes here do not
    move the version marker; they go to the current generation (`generation`)."""

    async def generation(self) -> str:
        """The generation of the Emply side now ("" before the first import): an import
        makes a new one, with calendars and events of its own."""

    async def read_calendars(self, first: str, last: str) -> list[tuple[dict[str, Any], str]]:
        """The calendars of the users in buckets `first`..`last`, each with its ETag."""

    async def read_events(self, first: str, last: str) -> list[dict[str, Any]]:
        """The events of the users in buckets `first`..`last`."""

    async def read_calendar_events(self, user_id: str, calendar_id: str
                                   ) -> list[dict[str, Any]]:
        """The events of one calendar."""

    async def write_calendars(self, items: Sequence[tuple[Mapping[str, Any], str | None]]
                              ) -> set[str]:
        """Write calendars, each conditional on its ETag when given; the users whose
        calendars changed meanwhile are left out (all of theirs) and returned."""

    async def write_events(self, items: Iterable[Mapping[str, Any]]) -> None: ...

    async def delete(self, kind: str, keys: Iterable[Mapping[str, Any]]) -> None:
        """Delete calendars or events (each given by its key fields); missing ones are
        fine."""


class MailboxStates(Protocol):
    """The mailbox pass's own state: one JSON value per mailbox (by Emply user id)."""

    async def read_states(self, first: str, last: str) -> dict[str, dict[str, Any]]:
        """User id -> state, of the users in buckets `first`..`last`."""

    async def write_states(self, states: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Replace these users' states (None: delete it)."""

    async def read_index(self) -> dict[str, dict[str, Any]]:
        """Bucket -> the pass's index of it (whose calendars are synced)."""

    async def write_index(self, rows: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Replace these buckets' index (None: delete it)."""

    async def read_records(self, partition_key: str) -> dict[str, tuple[dict[str, Any], str]]:
        """Key -> (value, ETag) of the pass's records in one partition (the shards of a
        run, the claims on buckets)."""

    async def put_record(self, partition_key: str, key: str, value: Mapping[str, Any], *,
                         etag: str | None = None, create: bool = False) -> str | None:
        """Write a record: unconditionally, only if its ETag is still `etag`, or
        (`create`) only if there is none; its new ETag, None when the condition failed."""

    async def delete_record(self, partition_key: str, key: str, *,
                            etag: str | None = None) -> bool:
        """Delete a record (only if its ETag is still `etag`, when given); False when it
        had changed (a record already gone is fine)."""


class Mailboxes(Protocol):
    def mailbox_side(self) -> MailboxSide: ...

    def mailbox_states(self) -> MailboxStates: ...


@dataclasses.dataclass(frozen=True)
class SubscriptionRecord:
    """A Graph subscription as stored: its id, its secret clientState (never logged, never
    sent anywhere but to Graph), when it expires, a digest of the notification URL it
    calls (a changed URL or key: create it again). `etag`: the stored record's, when
    read (conditional writes name it)."""

    resource: str
    subscription_id: str
    client_state: str
    expires_at: str
    url_digest: str
    created_at: str
    renewed_at: str | None = None
    etag: str | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class Debounce:
    scheduled_at: str | None
    """ISO time the last notification-triggered run was scheduled for (None: never)."""
    etag: str | None


class NotificationRecords(Protocol):
    async def subscriptions(self) -> dict[str, SubscriptionRecord]:
        """resource -> its stored subscription (with its `etag`)."""

    async def save_subscription(self, record: SubscriptionRecord, *,
                                expected: SubscriptionRecord | None) -> bool:
        """Store `record` for its resource only if the stored one is still `expected`
        (by ETag; None: there must be none). False when it changed meanwhile."""

    async def delete_subscription(self, record: SubscriptionRecord) -> None:
        """Remove the stored record if it is still `record` (by ETag); else leave it."""

    async def read_debounce(self) -> Debounce: ...

    async def write_debounce(self, seen: Debounce, scheduled_at: str) -> bool:
        """Move the schedule to `scheduled_at` if nobody moved it since `seen` was read;
        False when someone did (read again and decide again)."""

    async def claim_lifecycle(self, subscription_id: str, event: str, now: str, *,
                              ttl_seconds: int | None = None) -> bool:
        """Record that `event` of `subscription_id` is being acted on: True for the first
        caller, False for a repeat (also a concurrent one). With `ttl_seconds`, a claim
        older than that no longer counts (an event Graph sends again later)."""

    async def release_lifecycle(self, subscription_id: str, event: str) -> None:
        """Forget a claim whose action failed, so a retry of the notification may act."""


class CursorKeys(Protocol):
    async def cursor_key(self) -> bytes:
        """The key page cursors are sealed with: 32 random bytes made once per store by
        whichever caller comes first, the same for every instance of the app."""


class SyncStore(RunLease, RunMarker, RunLog, SyncStateStore, EmplyTables, EmplyGenerations,
                ChangeFeed, Mailboxes, NotificationRecords, CursorKeys, Protocol):
    """All of the sync's storage, as the service and the entry points hold it."""

    async def ping(self) -> None:
        """Raise if storage cannot be reached."""

    async def close(self) -> None: ...
