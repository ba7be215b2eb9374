"""Storage of the Graph change-notification state, in the lease table (`synclease`).

Two kinds of entity, each in its own partition of the table that already holds the
run lease and the manual-run marker:

- `graphsubscription` / resource (`users`, `groups`): the subscription Graph gave us,
  its secret `clientState`, its expiry and a digest of the notification URL it calls
  (a changed URL or key means: create it again). The clientState never leaves storage
  but for Graph and a constant-time comparison.
- `notifydebounce` / `current`: when the last notification-triggered run was
  scheduled for; every change is a conditional write (ETag), so two notification
  requests at once cannot both schedule a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

SUBSCRIPTION_PK = "graphsubscription"
DEBOUNCE_PK, DEBOUNCE_RK = "notifydebounce", "current"


@dataclasses.dataclass(frozen=True)
class SubscriptionRecord:
    resource: str
    subscription_id: str
    client_state: str
    expires_at: str
    url_digest: str
    created_at: str
    renewed_at: str | None = None

    def to_entity(self) -> dict[str, Any]:
        return {"PartitionKey": SUBSCRIPTION_PK, "RowKey": self.resource,
                "subscriptionId": self.subscription_id, "clientState": self.client_state,
                "expiresAt": self.expires_at, "urlDigest": self.url_digest,
                "createdAt": self.created_at, "renewedAt": self.renewed_at or ""}

    @classmethod
    def from_entity(cls, row: Any) -> SubscriptionRecord:
        return cls(resource=str(row["RowKey"]), subscription_id=str(row["subscriptionId"]),
                   client_state=str(row["clientState"]), expires_at=str(row["expiresAt"]),
                   url_digest=str(row.get("urlDigest") or ""),
                   created_at=str(row.get("createdAt") or ""),
                   renewed_at=str(row.get("renewedAt") or "") or None)


async def subscriptions(table: TableClient) -> dict[str, SubscriptionRecord]:
    """resource -> its stored subscription."""
    found: dict[str, SubscriptionRecord] = {}
    async for row in table.query_entities(f"PartitionKey eq '{SUBSCRIPTION_PK}'"):
        record = SubscriptionRecord.from_entity(row)
        found[record.resource] = record
    return found


async def put_subscription(table: TableClient, record: SubscriptionRecord) -> None:
    await table.upsert_entity(record.to_entity(), mode=UpdateMode.REPLACE)


async def delete_subscription(table: TableClient, resource: str) -> None:
    with contextlib.suppress(ResourceNotFoundError):
        await table.delete_entity(SUBSCRIPTION_PK, resource)


@dataclasses.dataclass(frozen=True)
class Debounce:
    scheduled_at: str | None
    """ISO time the last notification-triggered run was scheduled for (None: never)."""
    etag: str | None


async def read_debounce(table: TableClient) -> Debounce:
    try:
        entity = await table.get_entity(DEBOUNCE_PK, DEBOUNCE_RK)
    except ResourceNotFoundError:
        return Debounce(None, None)
    return Debounce(str(entity.get("scheduledAt") or "") or None, entity.metadata["etag"])


async def write_debounce(table: TableClient, seen: Debounce, scheduled_at: str) -> bool:
    """Move the schedule to `scheduled_at` if nobody moved it since `seen` was read;
    False when someone did (read again and decide again)."""
    entity = {"PartitionKey": DEBOUNCE_PK, "RowKey": DEBOUNCE_RK, "scheduledAt": scheduled_at}
    try:
        if seen.etag is None:
            await table.create_entity(entity)
        else:
            await table.update_entity(entity, mode=UpdateMode.REPLACE, etag=seen.etag,
                                      match_condition=MatchConditions.IfNotModified)
    except (ResourceExistsError, ResourceModifiedError):
        return False
    return True


def table_of(store: Any) -> TableClient:
    """The lease table of the Azure store (`EmplyStore.lease`), where this state lives.
    Graph notifications run against Azure Storage only (no in-memory fake of this)."""
    table = getattr(store, "lease", None)
    if not isinstance(table, TableClient):
        raise TypeError("Graph notification state needs the Azure Table Storage store")
    return table
