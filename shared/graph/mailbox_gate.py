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

One gate serves every read of a process (the shards of a run share it): its one
dispatcher packs the items of all of them (calendar lists and event rounds alike) into
full batches of 20, and sends a batch that is not full only when nothing is in flight
that could bring more, every shard at work (`working`) is waiting on the gate, and no
shard is still to come (`more_coming`; else `starved` asks for one to start), so a run
sends the fewest batches its items allow. A failure that concerns one
item (its mailbox answered 403, 404, an error, or kept answering 429 past
`MAX_ITEM_RETRIES` rounds) is handed to the read's `fail`: a per-user error (R7),
never a failed read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from shared.graph import batch_get, errors
from shared.graph import client as graph_client

BATCH_SIZE = batch_get.BATCH_SIZE
OUTLOOK_PER_MAILBOX = 4
"""Outlook's concurrent requests per mailbox."""
DEFAULT_BATCHES = 16
"""Batches in flight at most (the setting `EMPLY_SYNC_MAILBOX_BATCHES`)."""
MAX_ITEM_RETRIES = batch_get.MAX_ITEM_RETRIES
RETRIED_STATUSES = batch_get.RETRIED_STATUSES

Item = TypeVar("Item", bound=Hashable)
Settled = list[Item] | None
Settle = Callable[[Item, dict[str, Any]], "Settled[Item] | Awaitable[Settled[Item]]"]
"""Settles one item's answer: [] done, [item, ...] ask these at once (a refused link read
in full), None not settled (the item fails with the answer's error). An answer that needs
no further request (the common case: a last page) is settled at once; one that does (its
further pages) returns an awaitable, which the gate runs beside the batch's others: a
batch of 20 answers then costs no task, no event per item."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why an item was not read: Graph's status and error code, in words."""

    status: int | None
    code: str | None
    message: str


@dataclasses.dataclass(frozen=True)
class Spec(Generic[Item]):
    """What to ask for each item of a read, and what to do with the answers."""

    mailbox: Callable[[Item], str]
    url: Callable[[Item], str]
    settle: Settle[Item]
    fail: Callable[[Item, Failure], None]
    batch_url: Callable[[Item], str] | None = None
    headers: Mapping[str, str] | None = None


class _Read:
    """One `get_each` call: its items not yet settled."""

    def __init__(self) -> None:
        self.open = 0
        self.done = asyncio.Event()
        self.error: BaseException | None = None

    def close(self, n: int = 1) -> None:
        self.open -= n
        if self.open <= 0:
            self.done.set()


@dataclasses.dataclass
class _Pending:
    item: Any
    spec: Spec[Any]
    read: _Read
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
        self._pending: deque[_Pending] = deque()
        self._changed = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._client: graph_client.GraphClient | None = None
        self._working = 0
        self._waiting = 0
        self.more_coming = False
        """Set by whoever runs shards while some are still to start: a batch that is
        not full then waits for their items instead of going."""
        self.starved = asyncio.Event()
        """Set when a batch that is not full waits only for shards still to start."""

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        """A shard at work: while it is not waiting on the gate it may bring items, so a
        batch that is not full waits for it."""
        self._working += 1
        try:
            yield
        finally:
            self._working -= 1
            self._signal()

    async def get_each(self, client: graph_client.GraphClient, items: Sequence[Item],
                       spec: Spec[Item]) -> None:
        """GET every item through `$batch` as the bounds allow, until each is settled or
        failed (`spec.fail`)."""
        if not items:
            return
        read = _Read()
        read.open = len(items)
        self._client = client
        self._pending.extend(_Pending(i, spec, read) for i in items)
        self._signal()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        self._waiting += 1
        try:
            await read.done.wait()
        except asyncio.CancelledError:  # its items are asked for no more
            self._pending = deque(p for p in self._pending if p.read is not read)
            raise
        finally:
            self._waiting -= 1
        if read.error is not None:
            raise read.error

    # --- the dispatcher ----------------------------------------------------

    async def _dispatch(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while self._pending or tasks:
                batch = self._take() if self.flying < int(self.allowed) else []
                if batch:
                    self._start(batch)
                    tasks.add(asyncio.create_task(self._one(batch)))
                    continue
                await self._wait(bool(tasks))
                tasks = {t for t in tasks if not t.done()}
        except BaseException as exc:  # a bug: every read waiting on the gate raises it
            for entry in self._pending:
                _abort(entry, exc)
            self._pending.clear()
            raise

    def _take(self) -> list[_Pending]:
        """Up to 20 ready items whose mailboxes have room (in queue order); fewer only
        when nothing is in flight that could bring more."""
        now = self._clock()
        taken: list[_Pending] = []
        skipped: list[_Pending] = []
        room: Counter[str] = Counter()
        while self._pending and len(taken) < BATCH_SIZE:
            entry = self._pending.popleft()
            mailbox = entry.spec.mailbox(entry.item)
            if entry.not_before > now or \
                    self.inflight[mailbox] + room[mailbox] >= self.per_mailbox:
                skipped.append(entry)
                if len(skipped) > 4 * BATCH_SIZE * self.per_mailbox:
                    break  # the rest waits: a queue of one mailbox's items is not scanned
                continue
            room[mailbox] += 1
            taken.append(entry)
        if taken and len(taken) < BATCH_SIZE and (
                self.flying or self._waiting < self._working or self.more_coming):
            if not self.flying and self._waiting >= self._working:
                self.starved.set()  # only a shard still to start can fill it
            skipped = taken + skipped  # wait: what is at work may bring more to fill it
            taken = []
        self._pending.extendleft(reversed(skipped))
        return taken

    def _start(self, batch: list[_Pending]) -> None:
        self.flying += 1
        self.peak_batches = max(self.peak_batches, self.flying)
        for entry in batch:
            self.inflight[entry.spec.mailbox(entry.item)] += 1

    def _release(self, mailbox: str, *, signal: bool = True) -> None:
        self.inflight[mailbox] -= 1
        if self.inflight[mailbox] <= 0:
            del self.inflight[mailbox]
        if signal:
            self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, flying: bool) -> None:
        """Until a batch ends, items arrive, the gate frees room, or a retry is due."""
        now = self._clock()
        due = [p.not_before for p in self._pending if p.not_before > now]
        timeout = min(due) - now if due and len(due) == len(self._pending) else None
        if timeout is not None and not flying:
            await self._sleep(timeout)  # only retries left, each after its Retry-After
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return

    # --- one batch ---------------------------------------------------------

    async def _one(self, batch: list[_Pending]) -> None:
        throttled = False
        assert self._client is not None
        try:
            try:
                answer = await self._client.post_json("/$batch", {"requests": [
                    {"id": str(n), "method": "GET",
                     **({"headers": dict(p.spec.headers)} if p.spec.headers else {}),
                     "url": (p.spec.batch_url or p.spec.url)(p.item)}
                    for n, p in enumerate(batch)]})
            except errors.GraphReadError as exc:
                throttled = exc.status == 429
                self._batch_failed(batch, exc)
                return
            except BaseException as exc:  # a bug: the reads of these items raise it
                for entry in batch:
                    _abort(entry, exc)
                    self._release(entry.spec.mailbox(entry.item))
                raise
            responses = {r.get("id"): r for r in answer.get("responses") or ()
                         if isinstance(r, dict)}
            throttled = await self._settle_all(batch, responses)
        finally:
            self.flying -= 1
            self._adapt(throttled)
            self._signal()

    async def _settle_all(self, batch: list[_Pending], responses: Mapping[Any, Any]
                          ) -> bool:
        """Every item's answer; True when one was a 429. Answers that need no further
        request are settled here and now; the others' further pages run side by side."""
        throttled = False
        later: list[tuple[_Pending, Awaitable[None]]] = []
        for n, entry in enumerate(batch):
            try:
                settled = self._settle(entry, responses.get(str(n)))
            except BaseException as exc:  # a bug: the item's read raises it
                _abort(entry, exc)
                continue
            if isinstance(settled, bool):
                throttled |= settled
            else:
                later.append((entry, settled))
        if later:
            self._signal()  # the slots settled so far are free while further pages load
            results = await asyncio.gather(*(rest for _e, rest in later),
                                           return_exceptions=True)
            for (entry, _rest), result in zip(later, results, strict=True):
                if isinstance(result, BaseException):  # a bug: the read raises it
                    _abort(entry, result)
        return throttled

    def _settle(self, entry: _Pending, response: dict[str, Any] | None
                ) -> bool | Awaitable[None]:
        """One item's answer: True when it was a 429 (asked again after its
        `Retry-After`), False when settled, or what settles it (its further pages). Its
        mailbox slot is held until the item is settled (further pages are read on it)."""
        spec, item = entry.spec, entry.item
        if response is None:
            self._finish(entry, Failure(None, "invalid_json",
                                        "no answer for the item in the $batch"))
            return False
        status = response.get("status")
        self.throttled += status == 429
        if status in RETRIED_STATUSES and entry.attempt < MAX_ITEM_RETRIES:
            wait = batch_get.retry_after(response.get("headers"))
            self._pending.append(dataclasses.replace(
                entry, attempt=entry.attempt + 1, not_before=self._clock() + wait))
            self._release(spec.mailbox(item), signal=False)
            return bool(status == 429)
        try:
            settled = spec.settle(item, response)
        except errors.GraphReadError as exc:  # this item only
            self._finish(entry, Failure(exc.status, exc.code, exc.message))
            return False
        except BaseException:
            self._finish(entry)
            raise
        if isinstance(settled, list) or settled is None:
            self._finish(entry, _unsettled(response, status) if settled is None else None,
                         settled)
            return False
        return self._settle_later(entry, response, status, settled)

    async def _settle_later(self, entry: _Pending, response: dict[str, Any], status: Any,
                            rest: Awaitable[list[Any] | None]) -> None:
        """An answer whose further pages are read (on the item's mailbox slot)."""
        try:
            settled = await rest
        except errors.GraphReadError as exc:  # a further page failed: this item only
            self._finish(entry, Failure(exc.status, exc.code, exc.message), signal=True)
            return
        except BaseException:
            self._finish(entry, signal=True)
            raise
        self._finish(entry, _unsettled(response, status) if settled is None else None,
                     settled, signal=True)

    def _finish(self, entry: _Pending, failure: Failure | None = None,
                again: list[Any] | None = None, *, signal: bool = False) -> None:
        """An item settled: failed (`failure`), done, or with items to ask at once
        (`again`); its mailbox slot freed. Within a batch the gate is signalled once,
        when the batch ends."""
        try:
            if failure is not None:
                entry.spec.fail(entry.item, failure)
            elif again:
                entry.read.open += len(again)
                self._pending.extendleft(dataclasses.replace(entry, item=i) for i in again)
        finally:
            self._release(entry.spec.mailbox(entry.item), signal=signal)
            entry.read.close()

    def _batch_failed(self, batch: list[_Pending], exc: errors.GraphReadError) -> None:
        """The `$batch` request itself failed after the SDK's retries: its items are asked
        again later when that may help (throttled, unavailable, not delivered), else
        each fails."""
        retry = exc.status in RETRIED_STATUSES or exc.status is None
        for entry in batch:
            if retry and entry.attempt < MAX_ITEM_RETRIES:
                self._pending.append(dataclasses.replace(
                    entry, attempt=entry.attempt + 1, not_before=self._clock() + 1.0))
            else:
                entry.spec.fail(entry.item, Failure(exc.status, exc.code, exc.message))
                entry.read.close()
            self._release(entry.spec.mailbox(entry.item))

    def _adapt(self, throttled: bool) -> None:
        if throttled:
            self.allowed = max(1.0, self.allowed / 2)
        else:
            self.allowed = min(float(self.max_batches), self.allowed + 1 / self.allowed)


def _unsettled(response: dict[str, Any], status: Any) -> Failure:
    """Why an answer the read did not settle failed: Graph's error in it."""
    code, message = batch_get.error_of(response.get("body"))
    return Failure(status if isinstance(status, int) else None, code,
                   message or "failed inside $batch")


def _abort(entry: _Pending, exc: BaseException) -> None:
    """A bug while reading an item: its read raises it (and waits for nothing more)."""
    entry.read.error = exc
    entry.read.close(entry.read.open)
