"""`protocols.NotificationRecords` and `protocols.CursorKeys` in the lease table
(`synclease`), beside the run lease and the manual-run marker:

- `graphsubscription` / resource (`users`, `groups`): the subscription Graph gave us,
  its secret `clientState`, its expiry and a digest of the notification URL it calls.
  Every write is conditional on the ETag the writer read, so two workers acting on one
  lifecycle event cannot both store a subscription (the loser deletes its own at Graph).
- `notifydebounce` / `current`: when the last notification-triggered run was scheduled
  for; every change is a conditional write.
- `lifecycle` / `<subscriptionId>|<event>`: a lifecycle event being acted on, created
  conditionally: the first of any number of deliveries acts, the others see it.
- `cursorkey` / `current`: the key page cursors are sealed with, created once.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import secrets
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.store import codec, keys, wire
from shared.store.protocols import Debounce, SubscriptionRecord
from shared.store.tally import Ensure

SUBSCRIPTION_PK = "graphsubscription"
DEBOUNCE_PK, DEBOUNCE_RK = "notifydebounce", "current"
LIFECYCLE_PK = "lifecycle"
CURSOR_KEY_PK, CURSOR_KEY_RK = "cursorkey", "current"
CURSOR_KEY_BYTES = 32
_CONFLICTS = (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError)


def to_entity(record: SubscriptionRecord) -> dict[str, Any]:
    return {"PartitionKey": SUBSCRIPTION_PK, "RowKey": record.resource,
            "subscriptionId": record.subscription_id, "clientState": record.client_state,
            "expiresAt": record.expires_at, "urlDigest": record.url_digest,
            "createdAt": record.created_at, "renewedAt": record.renewed_at or ""}


def from_entity(row: Any) -> SubscriptionRecord:
    return SubscriptionRecord(
        resource=str(row["RowKey"]), subscription_id=str(row["subscriptionId"]),
        client_state=str(row["clientState"]), expires_at=str(row["expiresAt"]),
        url_digest=str(row.get("urlDigest") or ""), created_at=str(row.get("createdAt") or ""),
        renewed_at=str(row.get("renewedAt") or "") or None,
        etag=row.metadata["etag"] if hasattr(row, "metadata") else None)


class AzureNotificationRecords:
    """`protocols.NotificationRecords` and `protocols.CursorKeys` over `synclease`."""

    def __init__(self, table: TableClient, *, ensure: Ensure) -> None:
        self._table = table
        self._ensure = ensure
        self._cursor_key: bytes | None = None

    async def subscriptions(self) -> dict[str, SubscriptionRecord]:
        await self._ensure()
        found: dict[str, SubscriptionRecord] = {}
        async for row in self._table.query_entities(f"PartitionKey eq '{SUBSCRIPTION_PK}'"):
            record = from_entity(row)
            found[record.resource] = record
        return found

    async def save_subscription(self, record: SubscriptionRecord, *,
                                expected: SubscriptionRecord | None) -> bool:
        await self._ensure()
        entity = to_entity(record)
        try:
            if expected is None:
                await self._table.create_entity(entity)
            else:
                await self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=expected.etag,
                    match_condition=MatchConditions.IfNotModified)
        except _CONFLICTS:
            return False
        return True

    async def delete_subscription(self, record: SubscriptionRecord) -> None:
        await self._ensure()
        with contextlib.suppress(*_CONFLICTS):
            await self._table.delete_entity(
                SUBSCRIPTION_PK, record.resource, etag=record.etag,
                match_condition=MatchConditions.IfNotModified)

    async def read_debounce(self) -> Debounce:
        await self._ensure()
        try:
            entity = await self._table.get_entity(DEBOUNCE_PK, DEBOUNCE_RK)
        except ResourceNotFoundError:
            return Debounce(None, None)
        return Debounce(str(entity.get("scheduledAt") or "") or None, entity.metadata["etag"])

    async def write_debounce(self, seen: Debounce, scheduled_at: str) -> bool:
        await self._ensure()
        entity = {"PartitionKey": DEBOUNCE_PK, "RowKey": DEBOUNCE_RK,
                  "scheduledAt": scheduled_at}
        try:
            if seen.etag is None:
                await self._table.create_entity(entity)
            else:
                await self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=seen.etag,
                                                match_condition=MatchConditions.IfNotModified)
        except _CONFLICTS:
            return False
        return True

    async def claim_lifecycle(self, subscription_id: str, event: str, now: str, *,
                              ttl_seconds: int | None = None) -> bool:
        await self._ensure()
        row_key = keys.encode_key(f"{subscription_id}|{event}")
        entity = {"PartitionKey": LIFECYCLE_PK, "RowKey": row_key, "claimedAt": now}
        try:
            await self._table.create_entity(entity)
            return True
        except ResourceExistsError:
            pass
        if ttl_seconds is None:
            return False
        current = await codec.get_row(self._table, LIFECYCLE_PK, row_key)
        claimed = codec.parse_time(current.get("claimedAt")) if current else None
        moment = codec.parse_time(now)
        if current is None or claimed is None or moment is None \
                or moment - claimed < dt.timedelta(seconds=ttl_seconds):
            return False
        try:  # an old claim: the first to replace it acts
            await self._table.update_entity(entity, mode=UpdateMode.REPLACE,
                                            etag=current[wire.ETAG],
                                            match_condition=MatchConditions.IfNotModified)
        except _CONFLICTS:
            return False
        return True

    async def release_lifecycle(self, subscription_id: str, event: str) -> None:
        await self._ensure()
        with contextlib.suppress(ResourceNotFoundError):
            await self._table.delete_entity(LIFECYCLE_PK,
                                            keys.encode_key(f"{subscription_id}|{event}"))

    async def cursor_key(self) -> bytes:
        if self._cursor_key is not None:
            return self._cursor_key
        await self._ensure()
        made = base64.b64encode(secrets.token_bytes(CURSOR_KEY_BYTES)).decode()
        with contextlib.suppress(ResourceExistsError):  # another instance made it first
            await self._table.create_entity({"PartitionKey": CURSOR_KEY_PK,
                                             "RowKey": CURSOR_KEY_RK, "key": made})
        row = await self._table.get_entity(CURSOR_KEY_PK, CURSOR_KEY_RK)
        self._cursor_key = base64.b64decode(str(row["key"]))
        return self._cursor_key
