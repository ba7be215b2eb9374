"""One Emply entity at a time, with its ETag: what the Emply API (`shared.app.emply_api`) reads
and writes, beside the whole-document import and the run's batched writes.

Each entity's ETag is its Table Storage row's: a write here is conditional on the ETag
the caller names (`If-Match`), so Emply never overwrites what the sync wrote after Emply
read it, and the run's own writes (conditional on the ETags it loaded) never overwrite
what was written here during the run. Writes go through the store's own path
(`AzureEmplyTables.write`), so the version marker moves and a run's cached copy of the
Emply side is known stale.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
from collections.abc import Mapping
from typing import Any

from shared.emply import checks as emply_checks
from shared.emply import gate
from shared.store import errors, protocols, wire
from shared.store.azure_store import EmplyStore
from shared.store.codec import CODECS as _CODECS
from shared.store.codec import identities as _identities
from shared.store.codec import import_rows as _import_rows
from shared.store.emply_tables import AzureEmplyTables
from shared.store.ledger import AzureLedger

ANY = "*"
"""`If-Match: *`: the entity must exist, whatever its ETag."""


class PreconditionFailed(errors.StoreError):
    """The entity's ETag is not the one the write was conditional on (or it is missing)."""


class BadCursor(ValueError):
    """A `next` cursor this service did not hand out."""


def _tables(store: protocols.SyncStore) -> AzureEmplyTables:
    """The Emply API's entities are Table Storage rows with their ETags: this module works
    on the Azure store only (the sync's protocols do not include one-entity access)."""
    if not isinstance(store, EmplyStore):
        raise TypeError(f"the Emply API needs the Table Storage store, not {type(store)}")
    return store.emply_tables


async def read(store: protocols.SyncStore, kind: str,
               key: str | Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The entity of `kind` ("settings" takes any key) and its ETag, or None. `key`: the
    id, or the key fields of a kind with more than one (a calendar's userId and id)."""
    await _tables(store).resolve()
    codec = _CODECS[kind]
    fields = key if isinstance(key, Mapping) else {"id": key}
    rk = codec.row_key(fields) if kind != "settings" else codec.row_key({})
    row = await wire.get(_tables(store).emply, codec.pk(rk), rk)
    if row is None:
        return None
    return codec.from_row(row), str(row[wire.ETAG])


UNCONDITIONAL_ATTEMPTS = 10
"""A write without If-Match reads, then writes conditionally on what it read, and does
so again when someone wrote in between (last writer wins, as an import does); past
these attempts it is a `ConcurrentChangeError` (409: nothing written, retry)."""


async def write(store: protocols.SyncStore, kind: str, item: Mapping[str, Any],
                if_match: str | None) -> tuple[str, bool]:
    """Write one whole, validated entity; conditional on `if_match` (an ETag or `ANY`).
    Returns the new ETag and whether this write created the entity (of concurrent
    writes creating one id, exactly one did). Raises `PreconditionFailed` (nothing
    written) when the stored entity's ETag differs or, with a condition, it does not
    exist; `UniqueTaken` when another user holds its username or Entra id."""
    codec = _CODECS[kind]
    rk = codec.row_key(item)
    pk = codec.pk(rk)
    for attempt in range(UNCONDITIONAL_ATTEMPTS):
        current = await read(store, kind, item)
        if if_match is not None and current is None:
            raise PreconditionFailed(f"{kind} entity does not exist")
        if if_match is not None and current is not None and if_match not in (ANY, current[1]):
            # Refused before any write: not even the version marker moves (a run's
            # cached copy of the Emply side stays current).
            raise PreconditionFailed(f"{kind} entity changed since it was read")
        ledger = AzureLedger()
        if current is not None:
            # Conditional on what was read: a change between this read and the write is
            # refused by Table Storage, not lost; a new entity is inserted, not upserted.
            ledger.etags[(pk, rk)] = current[1]
        try:
            await _tables(store).write(kind, [item], ledger, create=current is None)
        except errors.UniqueTaken:
            raise
        except errors.ConcurrentChangeError as exc:
            if if_match is not None:
                raise PreconditionFailed(f"{kind} entity changed since it was read") from exc
            # Written (or created) meanwhile: read it again and write over it, after a
            # random pause so writers racing for one entity do not keep colliding.
            await asyncio.sleep(random.uniform(0, 0.05 * (attempt + 1)))
            continue
        return ledger.etags[(pk, rk)], current is None
    raise errors.ConcurrentChangeError(kind, str(item.get("id")))


async def identities(store: protocols.SyncStore) -> tuple[emply_checks.Stored, dict[str, set[str]]]:
    """The stored ids per kind and the users' and employees' unique values: what one
    entity is validated against (as a plain import is). A projection, not the document."""
    await _tables(store).resolve()
    rows: list[dict[str, Any]] = []
    for kind, fields in (("roles", ["id"]), ("users", ["id", "username", "email", "entraId"]),
                         ("employees", ["id", "email"])):
        rows += await _tables(store).query(kind, select=["PartitionKey", "RowKey", *fields])
    return _identities(rows)


def table_problems(clean: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What Table Storage would refuse of a validated document (sizes, key characters)."""
    return _import_rows(clean)[2]


def encode_cursor(pk: str, rk: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([pk, rk]).encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[str, str]:
    """The table position a cursor of `encode_cursor` names (callers over HTTP get it
    sealed: `shared.app.cursors`); strict JSON through the input gate all the same."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        pk, rk = gate.parse_json(raw)
    except (binascii.Error, ValueError, TypeError):  # gate.GateError is a ValueError
        raise BadCursor("next is not a cursor this service handed out") from None
    if not (isinstance(pk, str) and isinstance(rk, str)
            and pk.startswith(_CODECS[kind].partition)):
        raise BadCursor("next is not a cursor this service handed out")
    return pk, rk


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def page(store: protocols.SyncStore, kind: str, *, page_size: int, after: str | None,
               equals: Mapping[str, str], linked: bool | None
               ) -> tuple[list[tuple[dict[str, Any], str]], str | None]:
    """Up to `page_size` entities of `kind` (with their ETags) after the cursor, in
    (PartitionKey, RowKey) order, the order Table Storage returns them in, so a page is
    one bounded query; and the cursor of the next page (None at the end). `equals`:
    fields compared in the query (values quoted as OData literals); `linked`: whether
    a user has an `entraId`, tested here (a missing column cannot be queried for)."""
    await _tables(store).resolve()
    codec = _CODECS[kind]
    where = [f"({codec.filter})"]
    if after is not None:
        pk, rk = decode_cursor(kind, after)
        where.append(f"(PartitionKey gt {_literal(pk)} or "
                     f"(PartitionKey eq {_literal(pk)} and RowKey gt {_literal(rk)}))")
    where += [f"{name} eq {_literal(value)}" for name, value in equals.items()]
    found: list[tuple[dict[str, Any], str]] = []
    last: tuple[str, str] | None = None
    more = False
    async for rows in wire.query(_tables(store).emply, " and ".join(where), page_size=page_size):
        for row in rows:
            if len(found) == page_size:
                more = True
                break
            last = (row["PartitionKey"], row["RowKey"])
            if linked is not None and (row.get("entraId") is not None) != linked:
                continue
            found.append((codec.from_row(row), str(row[wire.ETAG])))
        if more or len(found) == page_size:
            more = True
            break
    return found, (encode_cursor(*last) if more and last is not None else None)


async def role_references(store: protocols.SyncStore) -> dict[str, list[str]]:
    """Role id -> the ids of the users holding it (a projection of two columns, streamed
    a page at a time: 100,000 users are never held as entities)."""
    tables = _tables(store)
    await tables.resolve()
    codec = _CODECS["users"]
    held: dict[str, list[str]] = {}
    async for rows in wire.query(tables.emply, codec.filter, select=["id", "roles"]):
        for row in rows:
            for role in json.loads(row.get("roles") or "[]"):
                held.setdefault(str(role), []).append(str(row.get("id")))
    return held


async def replace_all(store: protocols.SyncStore, kind: str, items: list[dict[str, Any]],
                      loaded: Mapping[str, str], removed: list[str]) -> None:
    """Write `items` of a one-partition kind (roles) and delete the `removed` ids. An
    item whose id is in `loaded` (id -> the ETag it was read with) is written only if
    it still has that ETag; raises `PreconditionFailed` when one changed meanwhile."""
    codec = _CODECS[kind]
    ledger = AzureLedger()
    for item in items:
        rk = codec.row_key(item)
        etag = loaded.get(str(item["id"]))
        if etag is not None:
            ledger.etags[(codec.pk(rk), rk)] = etag
    try:
        await _tables(store).write(kind, items, ledger)
    except errors.ConcurrentChangeError as exc:
        raise PreconditionFailed(f"{kind} changed since they were read") from exc
    if removed:
        await _tables(store).delete_entities(kind, [{"id": i} for i in removed])


async def count_up_to(store: protocols.SyncStore, kind: str, limit: int) -> int:
    """How many entities of `kind` there are, counting no further than `limit` + 1 (a
    projection of the keys, a page at a time)."""
    tables = _tables(store)
    await tables.resolve()
    count = 0
    async for rows in wire.query(tables.emply, _CODECS[kind].filter, select=["RowKey"]):
        count += len(rows)
        if count > limit:
            break
    return count
