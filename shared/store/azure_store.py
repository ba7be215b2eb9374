"""EmplyStore: the Emply side and the sync's own state in Azure Storage.

One object for the service to hold (`protocols.SyncStore`), made of one Azure
implementation per protocol; it owns the clients, creates the tables and containers
once, and forwards each call to its part:

- `emply_tables.AzureEmplyTables` (`EmplyTables`, `EmplyGenerations`): table
  `emply<generation>` (32 hex digits; before the first import, `emply` itself): one
  entity per Emply object. PartitionKey is the kind (settings, role, calendar, event,
  outbound), RowKey the encoded id (`keys.encode_key`). Users and employees, the kinds
  that grow with the tenant, are spread over `BUCKETS` partitions instead:
  `user-XX` / `employee-XX`, XX two hex digits of a stable hash of the RowKey
  (`bucket`), so that a partition holds a few hundred entities even at 100,000 users;
  calendars and events likewise, `calendar-XX` / `event-XX` by their user's id.
  Each field is a property; lists and objects are JSON text; null fields are absent.
  The version marker (`meta`/`version` in table `emply`) names the current generation;
  each generation has a uniqueness index table of its own, `emplyidx<generation>`
  (`unique_index`: usernames and Entra ids unique under concurrency).
- `runlog.AzureRunLog` (`RunLog`): table `runs` (the index, newest first) and
  container `runreports` (`<runId>.json`, the whole report).
- `lease.AzureRunLease` (`RunLease`, `RunMarker`): table `synclease`, the lease of the
  running run and the queued manual run's marker (ETag guarded).
- `syncstate.AzureSyncState` (`SyncStateStore`): container `syncstate`.
- `photo_blobs.AzurePhotoBlobs` (`PhotoBlobs`, R16): container `photos`, one blob per
  user, its profile photo (`photo_store`).
- `mailbox_tables.AzureMailboxSide` (`MailboxSide`): the calendars and events in the
  Emply generation tables, a range of users at a time (`mailbox_side`), and
  `mailbox_state.AzureMailboxStates` (`MailboxStates`): table `mailboxes`, the mailbox
  pass's own state (`mailbox_states`).
- `subscription_table.AzureNotificationRecords` (`NotificationRecords`, `CursorKeys`):
  table `synclease` too: Graph subscriptions, the notification debounce, lifecycle
  events acted on, the cursor key.

Every name carries the store's optional `prefix`. The store keeps no state of a run:
what a load read is the `LoadedEmply` value it returned (`protocols`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from shared.store import change_feed, codec, mailbox_state, mailbox_tables, photo_blobs
from shared.store.codec import BUCKETED, BUCKETS, HEAVY_FIELDS, PARTITIONS, Clock, bucket
from shared.store.emply_tables import AzureEmplyTables
from shared.store.lease import AzureRunLease
from shared.store.protocols import (
    EMPLY_KINDS,
    LEASE_TTL_SECONDS,
    Debounce,
    LoadedEmply,
    SubscriptionRecord,
)
from shared.store.runlog import AzureRunLog
from shared.store.subscription_table import AzureNotificationRecords
from shared.store.syncstate import AzureSyncState
from shared.store.tally import Tally

__all__ = ["BUCKETED", "BUCKETS", "HEAVY_FIELDS", "LEASE_TTL_SECONDS", "PARTITIONS", "Clock",
           "EmplyStore", "bucket"]

_PREFIX = re.compile(r"[a-z0-9]{0,20}")


class EmplyStore:
    """Async adapter over Table + Blob Storage (`protocols.SyncStore`). Use as `async with`."""

    def __init__(self, tables: TableServiceClient, blobs: BlobServiceClient, *,
                 prefix: str = "", clock: Clock | None = None,
                 credential: Any = None) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError("prefix must be at most 20 lowercase letters and digits")
        self._tables = tables
        self._blobs = blobs
        self._credential = credential
        clock = clock or codec.utcnow
        self.prefix = prefix
        self._meta: TableClient = tables.get_table_client(prefix + "emply")
        self.runs: TableClient = tables.get_table_client(prefix + "runs")
        self.lease: TableClient = tables.get_table_client(prefix + "synclease")
        self.syncstate: ContainerClient = blobs.get_container_client(prefix + "syncstate")
        self.runreports: ContainerClient = blobs.get_container_client(prefix + "runreports")
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self.tally = Tally()
        self.stats = self.tally.stats
        self.batches_by_partition = self.tally.batches_by_partition
        self.emply_tables = AzureEmplyTables(tables, self._meta, ensure=self._ensure,
                                             tally=self.tally, clock=clock)
        self.run_lease = AzureRunLease(self.lease, clock=clock, ensure=self._ensure,
                                       tally=self.tally)
        self.run_log = AzureRunLog(self.runs, self.runreports, clock=clock,
                                   ensure=self._ensure, tally=self.tally)
        self.sync_state = AzureSyncState(self.syncstate, ensure=self._ensure)
        self._mailbox_side = mailbox_tables.AzureMailboxSide(self.emply_tables, self.tally)
        self._mailbox_states = mailbox_state.AzureMailboxStates(
            tables.get_table_client(prefix + mailbox_state.TABLE), self.tally)
        self.notifications = AzureNotificationRecords(self.lease, ensure=self._ensure)

    @property
    def emply(self) -> TableClient:
        """The table of the current generation of the Emply side."""
        return self.emply_tables.emply

    # --- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._ensure()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._tables.close()
        await self._blobs.close()
        if self._credential is not None and hasattr(self._credential, "close"):
            await self._credential.close()

    async def _ensure(self) -> None:
        """Create the tables and containers once per store instance."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            names = [self._meta.table_name, self.runs.table_name, self.lease.table_name]
            await asyncio.gather(*(self._tables.create_table_if_not_exists(n) for n in names),
                                 *(self._create_container(c)
                                   for c in (self.syncstate, self.runreports)))
            self._ready = True

    @staticmethod
    async def _create_container(container: ContainerClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            await container.create_container()

    def feed_chunks(self) -> change_feed.TableChunks:
        """The change feed's chunks: table `changefeed` (`shared.store.change_feed`)."""
        return change_feed.TableChunks(self._tables.get_table_client(
            self.prefix + change_feed.TABLE))

    def mailbox_side(self) -> mailbox_tables.AzureMailboxSide:
        """R13's calendars and R14's events a range of users at a time
        (`shared.store.mailbox_tables`)."""
        return self._mailbox_side

    def mailbox_states(self) -> mailbox_state.AzureMailboxStates:
        """The mailbox pass's own state: table `mailboxes` (`shared.store.mailbox_state`)."""
        return self._mailbox_states

    def photo_store(self) -> photo_blobs.AzurePhotoBlobs:
        """R16: the `photos` container, one blob per user (`shared.store.photo_blobs`)."""
        return photo_blobs.AzurePhotoBlobs(
            self._blobs.get_container_client(self.prefix + photo_blobs.CONTAINER))

    async def ping(self) -> None:
        """Raise if Table or Blob Storage cannot be reached."""
        await self._ensure()
        await asyncio.gather(self.run_lease.current_lease(),
                             self.syncstate.get_container_properties())

    # --- EmplyTables, EmplyGenerations ---------------------------------------

    async def load_emply(self, cache: Mapping[str, Any] | None = None, *,
                         sparse: bool = False,
                         kinds: Collection[str] = EMPLY_KINDS) -> LoadedEmply:
        return await self.emply_tables.load_emply(cache, sparse=sparse, kinds=kinds)

    async def read_entities(self, kind: str, ids: Iterable[str], *,
                            loaded: LoadedEmply | None = None,
                            skip_conflicts: bool = False) -> dict[str, dict[str, Any]]:
        return await self.emply_tables.read_entities(kind, ids, loaded=loaded,
                                                     skip_conflicts=skip_conflicts)

    async def write_built(self, kind: str, ids: Iterable[str],
                          build: Callable[[str], Mapping[str, Any]], *,
                          loaded: LoadedEmply | None = None,
                          skip_conflicts: bool = False) -> list[str]:
        return await self.emply_tables.write_built(kind, ids, build, loaded=loaded,
                                                   skip_conflicts=skip_conflicts)

    async def write_entities(self, kind: str, items: Sequence[Mapping[str, Any]], *,
                             loaded: LoadedEmply | None = None) -> None:
        await self.emply_tables.write_entities(kind, items, loaded=loaded)

    async def delete_entities(self, kind: str, items: Iterable[Mapping[str, Any]], *,
                              loaded: LoadedEmply | None = None) -> None:
        await self.emply_tables.delete_entities(kind, items, loaded=loaded)

    async def current_version(self) -> str | None:
        return await self.emply_tables.current_version()

    async def scan(self, take: Callable[[str, str | None, dict[str, Any], bool], None]
                   ) -> str | None:
        return await self.emply_tables.scan(take)

    def write_unit(self, kind: str, entity_id: str) -> str:
        return self.emply_tables.write_unit(kind, entity_id)

    async def loaded_from(self, version: str,
                          entries: Mapping[str, Iterable[tuple[str | None, dict[str, Any]]]],
                          *, whole: Collection[str] = ()) -> LoadedEmply:
        return await self.emply_tables.loaded_from(version, entries, whole=whole)

    async def export_document(self) -> dict[str, Any]:
        return await self.emply_tables.export_document()

    async def import_document(self, doc: object, *, replace: bool = False,
                              before_switch: Callable[[], Awaitable[None]] | None = None,
                              ) -> dict[str, int]:
        return await self.emply_tables.import_document(doc, replace=replace,
                                                 before_switch=before_switch)

    async def remove_stale_generations(self) -> int:
        return await self.emply_tables.remove_stale_generations()

    # --- RunLease, RunMarker -------------------------------------------------

    async def acquire_lease(self, run_id: str, trigger: str, *,
                            ttl_seconds: int = LEASE_TTL_SECONDS) -> dict[str, Any] | None:
        return await self.run_lease.acquire_lease(run_id, trigger, ttl_seconds=ttl_seconds)

    async def renew_lease(self, run_id: str, *, ttl_seconds: int = LEASE_TTL_SECONDS) -> None:
        await self.run_lease.renew_lease(run_id, ttl_seconds=ttl_seconds)

    async def release_lease(self, run_id: str) -> None:
        await self.run_lease.release_lease(run_id)

    async def current_lease(self) -> dict[str, Any] | None:
        return await self.run_lease.current_lease()

    async def create_marker(self, run_id: str, queued_at: str) -> bool:
        return await self.run_lease.create_marker(run_id, queued_at)

    async def read_marker(self) -> dict[str, Any] | None:
        return await self.run_lease.read_marker()

    async def delete_marker(self, etag: str) -> None:
        await self.run_lease.delete_marker(etag)

    # --- RunLog --------------------------------------------------------------

    async def save_run(self, report: Mapping[str, Any]) -> None:
        await self.run_log.save_run(report)

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        return await self.run_log.get_run(run_id)

    async def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return await self.run_log.list_runs(limit)

    async def last_run(self) -> dict[str, Any] | None:
        return await self.run_log.last_run()

    # --- SyncStateStore ------------------------------------------------------

    async def load_sync_state(self) -> dict[str, Any] | None:
        return await self.sync_state.load_sync_state()

    async def save_sync_state(self, state: Mapping[str, Any]) -> None:
        await self.sync_state.save_sync_state(state)

    async def load_state_part(self, name: str) -> Any:
        return await self.sync_state.load_state_part(name)

    async def save_state_part(self, name: str, value: Any) -> None:
        await self.sync_state.save_state_part(name, value)

    async def load_index(self, generation: str, part: str) -> bytes | bytearray | None:
        return await self.sync_state.load_index(generation, part)

    async def save_index(self, generation: str, part: str,
                         data: Sequence[bytes | bytearray | memoryview]) -> None:
        await self.sync_state.save_index(generation, part, data)

    async def delete_index(self, generation: str) -> None:
        await self.sync_state.delete_index(generation)

    # --- NotificationRecords, CursorKeys --------------------------------------

    async def subscriptions(self) -> dict[str, SubscriptionRecord]:
        return await self.notifications.subscriptions()

    async def save_subscription(self, record: SubscriptionRecord, *,
                                expected: SubscriptionRecord | None) -> bool:
        return await self.notifications.save_subscription(record, expected=expected)

    async def delete_subscription(self, record: SubscriptionRecord) -> None:
        await self.notifications.delete_subscription(record)

    async def read_debounce(self) -> Debounce:
        return await self.notifications.read_debounce()

    async def write_debounce(self, seen: Debounce, scheduled_at: str) -> bool:
        return await self.notifications.write_debounce(seen, scheduled_at)

    async def claim_lifecycle(self, subscription_id: str, event: str, now: str, *,
                              ttl_seconds: int | None = None) -> bool:
        return await self.notifications.claim_lifecycle(subscription_id, event, now,
                                                        ttl_seconds=ttl_seconds)

    async def release_lifecycle(self, subscription_id: str, event: str) -> None:
        await self.notifications.release_lifecycle(subscription_id, event)

    async def cursor_key(self) -> bytes:
        return await self.notifications.cursor_key()
