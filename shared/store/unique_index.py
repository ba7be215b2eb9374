"""Usernames and Entra ids unique across concurrent writers: one index entity per value.

A user's `username` and `entraId` are claimed before the user is written: an index
entity whose key is the value in its compared form (`emply_checks.same`: case, space
and Unicode normalisation ignored), inserted conditionally (Insert Entity fails when it
exists), in the generation's index table (`emplyidx<generation>`: a table of its own,
as Azurite's writes slow down with the size of their table), partitions `unique-XX`
(XX: two hex digits of the key's hash, like the users' buckets). Two writers that want one value
cannot both insert it; the one refused gets `UniqueTaken` (or, in a run's write with
`skip_conflicts`, has that user left out), and nothing of that user is written. This
is the storage-level guarantee; the document checks (`shared.emply.checks`) give the
friendly message first, from what they read.

Claims outlive the writes they were made for only by accident (a kill between the
claim and the user's write, a write refused for its ETag): a claim whose owner does
not hold the value is *stale* once it is older than `GRACE` and may then be taken
over (conditionally on its ETag); younger, it belongs to a write in flight. After a
user's value changes, its old claim is released (deleted if its owner still does not
hold it). Which generation's index is complete is recorded in the marker table
(`meta`/`uniqueindex`); a generation written before the index existed is indexed once,
on the first write that needs it (`ensure`).

Invariants: every username and Entra id a user of the current generation holds has
an index entity naming that user (up to the stale claims described); no two users
hold one value unless they were stored before the index and never written since.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.emply import checks as emply_checks
from shared.store import codec, errors, keys, wire
from shared.store.tally import Tally

PARTITION = "unique"
FIELDS = ("username", "entraId")
"""The user fields that must be unique (emails may repeat: R3)."""
GRACE = dt.timedelta(minutes=5)
"""How long a claim whose owner does not hold its value still counts as a write in
flight (a write's claims and its user are minutes apart at the very most)."""
INDEX_RK = "uniqueindex"
"""The row in the marker table naming the generation whose index is complete."""
_SELECT = ["PartitionKey", "RowKey", "id", *FIELDS]


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """One value a user holds (or is about to): `field` of user `owner` is `value`."""

    field: str
    value: str
    owner: str

    @property
    def key(self) -> str:
        return emply_checks.same(self.value)

    @property
    def row_key(self) -> str:
        return hashlib.sha256(f"{self.field}\n{self.key}".encode()).hexdigest()

    @property
    def partition(self) -> str:
        return f"{PARTITION}-{codec.bucket(self.row_key)}"

    def row(self, now: dt.datetime) -> dict[str, Any]:
        return {"PartitionKey": self.partition, "RowKey": self.row_key, "field": self.field,
                "value": self.value, "owner": self.owner, "claimedAt": codec.iso(now)}


def claims_of(users: Iterable[Mapping[str, Any]]) -> list[Claim]:
    """Every unique value the `users` hold."""
    return [Claim(name, str(user[name]), str(user["id"])) for user in users
            for name in FIELDS if isinstance(user.get(name), str) and user[name].strip()]


def changed(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> tuple[list[Claim],
                                                                            list[Claim]]:
    """What a write of `new` over `old` (None: a new user) claims, and what it frees."""
    if old is not None and all(new.get(name) == old.get(name) for name in FIELDS):
        return [], []  # the common case (a run rewriting roles or status): nothing
    gained = claims_of([new])
    if old is None:
        return gained, []
    before = claims_of([{**old, "id": new["id"]}])
    keys_before = {(c.field, c.key) for c in before}
    keys_after = {(c.field, c.key) for c in gained}
    return ([c for c in gained if (c.field, c.key) not in keys_before],
            [c for c in before if (c.field, c.key) not in keys_after])


class UniqueIndex:
    """The index of the current generation (`table()` gives its table, as it moves;
    `generation()` names it; `meta` is the marker table, `users()` the users')."""

    def __init__(self, table: Callable[[], TableClient], meta: TableClient,
                 generation: Callable[[], str | None], *, clock: codec.Clock,
                 tally: Tally, limit: asyncio.Semaphore,
                 create: Callable[[], Awaitable[Any]],
                 users: Callable[[], TableClient]) -> None:
        self._table = table
        self._create = create
        self._users = users
        self._meta = meta
        self._generation = generation
        self._clock = clock
        self._tally = tally
        self._limit = limit
        self._indexed: str | None = None
        """The generation this process saw indexed ("" for the first, unnamed one)."""

    async def ensure(self) -> None:
        """Index the current generation's users once, if nobody did (a generation
        written before the index existed); then record it in the marker table."""
        generation = self._generation() or ""
        if self._indexed == generation:
            return
        marker = await codec.get_row(self._meta, codec.META_PK, INDEX_RK)
        if marker is None or marker.get("generation") != generation:
            await self._create()
            users = [row async for page in wire.query(
                self._users(), codec.CODECS["users"].filter, select=_SELECT) for row in page]
            await self.write_rows(self.rows(users), self._table())
            await self.mark(generation)
        self._indexed = generation

    async def mark(self, generation: str | None) -> None:
        """Record that `generation`'s index is complete (an import wrote it whole)."""
        await self._meta.upsert_entity({"PartitionKey": codec.META_PK, "RowKey": INDEX_RK,
                                        "generation": generation or ""})
        self._indexed = generation or ""

    async def write_rows(self, rows: list[dict[str, Any]], table: TableClient) -> None:
        """Upsert index rows in transactions per partition (building an index whole)."""
        by_partition: dict[str, list[wire.Operation]] = {}
        for row in rows:
            by_partition.setdefault(row["PartitionKey"], []).append(("upsert", row, {}))

        async def send(chunk: list[wire.Operation]) -> None:
            async with self._limit:
                await wire.submit(table, chunk)
            self._tally.count_index(entities=len(chunk))

        await asyncio.gather(*(send(chunk) for ops in by_partition.values()
                               for chunk in codec.chunks(ops)))

    async def claim(self, claims: Sequence[Claim],
                    holds: Callable[[Claim], Any]) -> dict[str, str]:
        """Insert `claims`; owner -> the field refused, for the owners another user holds
        (or is about to hold) a value of. `holds(claim)`: whether the claim's owner holds
        its value now (awaitable), to tell a stale claim from a taken value. The claims
        made for a refused owner stay: release them (`release`) or they go stale."""
        if not claims:
            return {}
        await self.ensure()
        by_partition: dict[str, list[Claim]] = {}
        for claim in dict.fromkeys(claims):
            by_partition.setdefault(claim.partition, []).append(claim)
        refused: dict[str, str] = {}

        async def partition(group: list[Claim]) -> None:
            for start in range(0, len(group), codec.MAX_BATCH):
                await self.claim_chunk(group[start:start + codec.MAX_BATCH], holds, refused)

        await asyncio.gather(*(partition(g) for g in by_partition.values()))
        return refused

    async def claim_chunk(self, chunk: list[Claim], holds: Callable[[Claim], Any],
                          refused: dict[str, str]) -> None:
        """Claims of one partition (at most 100): one transaction, and only when another
        claim is in the way each on its own (owner -> field refused into `refused`)."""
        if not await self._insert_all(chunk):
            for claim in chunk:
                if not await self._claim_one(claim, holds):
                    refused.setdefault(claim.owner, claim.field)

    async def _insert_all(self, chunk: list[Claim]) -> bool:
        now = self._clock()
        try:
            async with self._limit:
                await wire.submit(self._table(), [("insert", c.row(now), {}) for c in chunk])
        except HttpResponseError as exc:
            if exc.status_code != 409:
                raise
            return False
        self._tally.count_index(entities=len(chunk))
        return True

    async def _claim_one(self, claim: Claim, holds: Callable[[Claim], Any]) -> bool:
        """One claim: inserted, already the owner's, or taken over when stale."""
        table = self._table()
        for _attempt in range(3):
            try:
                await table.create_entity(claim.row(self._clock()))
                self._count()
                return True
            except ResourceExistsError:
                pass
            current = await codec.get_row(table, claim.partition, claim.row_key)
            if current is None:
                continue  # released meanwhile: insert again
            if current.get("owner") == claim.owner:
                return True
            holder = Claim(claim.field, str(current.get("value")), str(current.get("owner")))
            if not self._stale(current) or await holds(holder):
                return False
            try:
                await table.update_entity(claim.row(self._clock()), mode=UpdateMode.REPLACE,
                                          etag=current[wire.ETAG],
                                          match_condition=MatchConditions.IfNotModified)
                self._count()
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        return False

    def _stale(self, row: Mapping[str, Any]) -> bool:
        claimed = codec.parse_time(row.get("claimedAt"))
        return claimed is None or self._clock() - claimed >= GRACE

    def _count(self) -> None:
        self._tally.count_index()

    async def release(self, claims: Iterable[Claim],
                      holds: Callable[[Claim], Any]) -> None:
        """Delete the claims still owned by their owner that the owner no longer holds
        (`holds`, awaited after the user's write). Best effort: what is left is stale
        and taken over later."""
        table = self._table()
        for claim in dict.fromkeys(claims):
            current = await codec.get_row(table, claim.partition, claim.row_key)
            if current is None or current.get("owner") != claim.owner or await holds(claim):
                continue
            try:
                await table.delete_entity(claim.partition, claim.row_key,
                                          etag=current[wire.ETAG],
                                          match_condition=MatchConditions.IfNotModified)
                self._count()
            except (ResourceModifiedError, ResourceNotFoundError):
                continue

    def rows(self, users: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The index rows of `users` (a new generation's, written with them)."""
        now = self._clock()
        return [claim.row(now) for claim in claims_of(users)]


def holder_check(table: Callable[[], TableClient],
                 users: Mapping[str, Mapping[str, Any]] | None = None
                 ) -> Callable[[Claim], Any]:
    """`holds(claim)` for `UniqueIndex`: whether the claim's owner holds its value, from
    `users` (id -> the user as about to be written) when it is there, else read."""
    user_codec = codec.CODECS["users"]

    async def holds(claim: Claim) -> bool:
        user = (users or {}).get(claim.owner)
        if user is None:
            rk = keys.encode_key(claim.owner)
            user = await codec.get_row(table(), user_codec.pk(rk), rk)
        value = user.get(claim.field) if user is not None else None
        return isinstance(value, str) and emply_checks.same(value) == claim.key

    return holds


def taken(refused: Mapping[str, str]) -> errors.UniqueTaken:
    """The error for the first user refused (owner -> field)."""
    owner, field = next(iter(sorted(refused.items())))
    return errors.UniqueTaken("users", owner, field)


@dataclasses.dataclass
class Claimed:
    """What a write of users claimed (`gained`), will free once written (`freed`), and
    the users refused (owner -> field)."""

    gained: list[Claim]
    freed: list[Claim]
    refused: dict[str, str]

    def of(self, owners: Iterable[str]) -> list[Claim]:
        """The gained claims of these owners."""
        wanted = set(owners)
        return [c for c in self.gained if c.owner in wanted]

    def freed_by(self, owners: Iterable[str]) -> list[Claim]:
        wanted = set(owners)
        return [c for c in self.freed if c.owner in wanted]


async def claim_for(index: UniqueIndex, table: Callable[[], TableClient],
                    users: Sequence[Mapping[str, Any]],
                    previous: Mapping[str, Mapping[str, Any] | None]) -> Claimed:
    """Claim what `users` gain over `previous` (id -> the user as stored, None: new);
    the claims of refused users are released again."""
    gained: list[Claim] = []
    freed: list[Claim] = []
    for user in users:
        more, less = changed(user, previous.get(str(user["id"])))
        gained += more
        freed += less
    refused = await index.claim(gained, holder_check(
        table, {str(u["id"]): u for u in users}))
    if refused:
        await index.release([c for c in gained if c.owner in refused], holder_check(table))
    return Claimed([c for c in gained if c.owner not in refused], freed, refused)


class ClaimStream:
    """Claims added a user at a time and sent as transactions of 100 of one partition as
    they fill (the rest when closed), several in flight: a run's users claimed in about
    claims/100 + one per index partition transactions, never all held at once."""

    def __init__(self, index: UniqueIndex, holds: Callable[[Claim], Any]) -> None:
        self._index = index
        self._holds = holds
        self._pending: dict[str, list[Claim]] = {}
        self._sending: list[asyncio.Task[None]] = []
        self.refused: dict[str, str] = {}
        """Owner -> the field refused: another user holds (or is taking) that value."""

    def add(self, claims: Iterable[Claim]) -> None:
        for claim in claims:
            group = self._pending.setdefault(claim.partition, [])
            group.append(claim)
            if len(group) == codec.MAX_BATCH:
                self._send(self._pending.pop(claim.partition))

    def _send(self, chunk: list[Claim]) -> None:
        self._sending.append(asyncio.ensure_future(
            self._index.claim_chunk(chunk, self._holds, self.refused)))

    async def close(self) -> dict[str, str]:
        """Send what is left and wait for all; the first failure raised once all ended."""
        for partition in list(self._pending):
            self._send(self._pending.pop(partition))
        outcomes = await asyncio.gather(*self._sending, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return self.refused
