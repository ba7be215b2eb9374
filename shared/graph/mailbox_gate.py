"""Mailbox reads through `$batch`, in flight by mailbox, not by batch.

Outlook allows 4 concurrent requests per mailbox; Graph's other limits are per app and
tenant and answer 429 with a `Retry-After`. So the gate lets many batches of mailbox
GETs fly at once and counts what is in flight *per mailbox*: a batch takes an item only
while its mailbox has fewer than `per_mailbox` requests in flight (the batch's own items
included, as the items of a batch run side by side), and an item holds its mailbox's
slot until it is settled (the further pages of a round are read on that slot). How many
batches fly is bounded by `batches` and by Graph's answers: a 429 halves the bound (and
the item waits its `Retry-After`), every batch answered without one raises it by about
one per round trip, back to `batches` (additive increase, multiplicative decrease).

One gate serves every read of a process (the shards of a run share it), so the bounds
hold across them. A failure that concerns one item (its mailbox answered 403, 404, an
error, or kept answering 429 past `MAX_ITEM_RETRIES` rounds) is handed to the caller's
`fail`: a per-user error (R7), never a failed read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from shared.graph import batch_get, errors
from shared.graph import client as graph_client

BATCH_SIZE = batch_get.BATCH_SIZE
OUTLOOK_PER_MAILBOX = 4
"""Outlook's concurrent requests per mailbox."""
DEFAULT_BATCHES = 32
"""Batches in flight at most (the setting `EMPLY_SYNC_MAILBOX_BATCHES`)."""
MAX_ITEM_RETRIES = batch_get.MAX_ITEM_RETRIES
RETRIED_STATUSES = batch_get.RETRIED_STATUSES

Item = TypeVar("Item", bound=Hashable)
Settle = Callable[[Item, dict[str, Any]], Awaitable[list[Item] | None]]
"""Settles one item's answer: [] done, [item, ...] ask these at once (a refused link read
in full), None not settled (the item fails with the answer's error)."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why an item was not read: Graph's status and error code, in words."""

    status: int | None
    code: str | None
    message: str


Fail = Callable[[Any, Failure], None]


@dataclasses.dataclass(frozen=True)
class Spec(Generic[Item]):
    """What to ask for each item, and what to do with the answers."""

    mailbox: Callable[[Item], str]
    url: Callable[[Item], str]
    settle: Settle[Item]
    fail: Fail
    batch_url: Callable[[Item], str] | None = None
    headers: Mapping[str, str] | None = None


@dataclasses.dataclass
class _Pending(Generic[Item]):
    item: Item
    attempt: int = 0
    not_before: float = 0.0


class MailboxGate:
    """See the module docstring. `sleep` and `clock` are injected for tests."""

    def __init__(self, *, batches: int = DEFAULT_BATCHES,
                 per_mailbox: int = OUTLOOK_PER_MAILBOX,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if batches < 1 or not 1 <= per_mailbox <= OUTLOOK_PER_MAILBOX:
            raise ValueError("batches must be at least 1 and per_mailbox 1 to 4")
        self.max_batches = batches
        self.per_mailbox = per_mailbox
        self.allowed = float(batches)
        """The bound now: lower after 429s, back up to `max_batches` in time."""
        self.flying = 0
        self.inflight: Counter[str] = Counter()
        """Requests in flight per mailbox (items of batches in flight, and their pages)."""
        self.throttled = 0
        self.peak_batches = 0
        self._sleep = sleep
        self._clock = clock
        self._changed = asyncio.Event()

    async def get_each(self, client: graph_client.GraphClient, items: Sequence[Item],
                       spec: Spec[Item]) -> None:
        """GET every item through `$batch` as the bounds allow, until each is settled or
        failed (`spec.fail`)."""
        pending: deque[_Pending[Item]] = deque(_Pending(i) for i in items)
        tasks: set[asyncio.Task[None]] = set()
        while pending or tasks:
            batch = self._take(pending, spec) if self.flying < int(self.allowed) else []
            if batch:
                self._start(batch, spec)
                tasks.add(asyncio.create_task(self._one(client, batch, pending, spec)))
                continue
            await self._wait(tasks, pending)

    def _take(self, pending: deque[_Pending[Item]], spec: Spec[Item]) -> list[_Pending[Item]]:
        """Up to 20 ready items whose mailboxes have room (in queue order)."""
        now = self._clock()
        taken: list[_Pending[Item]] = []
        skipped: list[_Pending[Item]] = []
        room: Counter[str] = Counter()
        while pending and len(taken) < BATCH_SIZE:
            entry = pending.popleft()
            mailbox = spec.mailbox(entry.item)
            if entry.not_before > now or \
                    self.inflight[mailbox] + room[mailbox] >= self.per_mailbox:
                skipped.append(entry)
                if len(skipped) > 4 * BATCH_SIZE * self.per_mailbox:
                    break  # the rest waits: a queue of one mailbox's items is not scanned
                continue
            room[mailbox] += 1
            taken.append(entry)
        pending.extendleft(reversed(skipped))
        return taken

    def _start(self, batch: list[_Pending[Item]], spec: Spec[Item]) -> None:
        self.flying += 1
        self.peak_batches = max(self.peak_batches, self.flying)
        for entry in batch:
            self.inflight[spec.mailbox(entry.item)] += 1

    def _release(self, mailbox: str) -> None:
        self.inflight[mailbox] -= 1
        if self.inflight[mailbox] <= 0:
            del self.inflight[mailbox]
        self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, tasks: set[asyncio.Task[None]],
                    pending: deque[_Pending[Item]]) -> None:
        """Until one of this read's batches ends, the gate frees room, or a retry is due;
        a batch that raised (a bug) raises here."""
        now = self._clock()
        future = [p.not_before for p in pending if p.not_before > now]
        timeout = min(future) - now if future and len(future) == len(pending) else None
        if timeout is not None and not tasks:
            await self._sleep(timeout)  # only retries left, each after its Retry-After
            return
        waiter = asyncio.create_task(self._changed.wait())
        try:
            done, _ = await asyncio.wait({*tasks, waiter}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        for task in done - {waiter}:
            tasks.discard(task)
            task.result()

    async def _one(self, client: graph_client.GraphClient, batch: list[_Pending[Item]],
                   pending: deque[_Pending[Item]], spec: Spec[Item]) -> None:
        throttled = False
        try:
            try:
                answer = await client.post_json("/$batch", {"requests": [
                    {"id": str(n), "method": "GET",
                     **({"headers": dict(spec.headers)} if spec.headers else {}),
                     "url": (spec.batch_url or spec.url)(p.item)}
                    for n, p in enumerate(batch)]})
            except errors.GraphReadError as exc:
                throttled = exc.status == 429
                await self._batch_failed(batch, pending, spec, exc)
                return
            responses = {r.get("id"): r for r in answer.get("responses") or ()
                         if isinstance(r, dict)}
            results = await asyncio.gather(*(
                self._settle(entry, responses.get(str(n)), pending, spec)
                for n, entry in enumerate(batch)))
            throttled = any(results)
        finally:
            self.flying -= 1
            self._adapt(throttled)
            self._signal()

    async def _settle(self, entry: _Pending[Item], response: dict[str, Any] | None,
                      pending: deque[_Pending[Item]], spec: Spec[Item]) -> bool:
        """One item's answer; True when it was a 429. Its mailbox slot is held until
        the item is settled (its further pages are read on it)."""
        mailbox = spec.mailbox(entry.item)
        try:
            if response is None:
                spec.fail(entry.item, Failure(None, "invalid_json",
                                              "no answer for the item in the $batch"))
                return False
            status = response.get("status")
            self.throttled += status == 429
            if status in RETRIED_STATUSES and entry.attempt < MAX_ITEM_RETRIES:
                wait = batch_get.retry_after(response.get("headers"))
                pending.append(_Pending(entry.item, entry.attempt + 1, self._clock() + wait))
                return bool(status == 429)
            try:
                again = await spec.settle(entry.item, response)
            except errors.GraphReadError as exc:  # a further page failed: this item only
                spec.fail(entry.item, Failure(exc.status, exc.code, exc.message))
                return exc.status == 429
            if again is None:
                code, message = batch_get.error_of(response.get("body"))
                spec.fail(entry.item, Failure(status if isinstance(status, int) else None,
                                              code, message or "failed inside $batch"))
            else:
                pending.extendleft(_Pending(i, entry.attempt) for i in again)
            return False
        finally:
            self._release(mailbox)

    async def _batch_failed(self, batch: list[_Pending[Item]],
                            pending: deque[_Pending[Item]], spec: Spec[Item],
                            exc: errors.GraphReadError) -> None:
        """The `$batch` request itself failed after the SDK's retries: its items are asked
        again later when that may help (throttled, unavailable, not delivered), else
        each fails."""
        retry = exc.status in RETRIED_STATUSES or exc.status is None
        for entry in batch:
            if retry and entry.attempt < MAX_ITEM_RETRIES:
                pending.append(_Pending(entry.item, entry.attempt + 1, self._clock() + 1.0))
            else:
                spec.fail(entry.item, Failure(exc.status, exc.code, exc.message))
            self._release(spec.mailbox(entry.item))

    def _adapt(self, throttled: bool) -> None:
        if throttled:
            self.allowed = max(1.0, self.allowed / 2)
        else:
            self.allowed = min(float(self.max_batches), self.allowed + 1 / self.allowed)
