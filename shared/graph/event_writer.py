"""R15's traffic: one Graph request per outbound event, through `$batch`, within
Outlook's limit of 4 concurrent requests per mailbox.

The requests (`Request`: a create, an update, a cancellation, a deletion or a look-up
of one outbound event, built by `shared.graph.outbound_requests`) go out 20 a `$batch`.
The items of one `$batch` run side by side, so they go in *rounds* (`rounds`), each
holding at most 4 requests of a mailbox, its batches at most `CONCURRENT_BATCHES` at a
time; the next round starts when the last one is answered. A throttled item
(429/503/504 inside the batch) goes again in a later round, after the longest
`Retry-After` of its round, at most `MAX_ITEM_RETRIES` times.

Every request ends in one `Answer`: Graph's status and body for it, or, when Graph never
answered it (the `$batch` as a whole failed, still throttled after the retries), why
not. What an answer means is the caller's business; nothing here fails the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.graph import client as graph_client
from shared.graph import errors, middleware
from shared.graph.mailboxes import (
    BATCH_SIZE,
    CONCURRENT_BATCHES,
    MAX_ITEM_RETRIES,
    RETRIED_STATUSES,
    Sleep,
    retry_after,
)

PER_MAILBOX = 4
"""Outlook's limit of concurrent requests to one mailbox."""


@dataclass(frozen=True)
class Request:
    """One Graph request for outbound event `event_id`, in the mailbox of `entra_id`."""

    event_id: str
    entra_id: str
    method: str
    url: str
    """Relative to the Graph version (`/users/{id}/...`), query included."""
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    status: int | None
    """Graph's status for the item; None when there is none (see `error`)."""
    body: Any = None
    headers: Mapping[str, Any] | None = None
    error: str | None = None
    """Why Graph gave no answer for the item."""


@dataclass(frozen=True)
class SendResult:
    answers: dict[str, Answer]
    """Outbound event id → Graph's answer to its request."""
    requests: int
    """HTTP exchanges with Graph (a `$batch` is one)."""
    throttled: int
    batches: int


def rounds(requests: Iterable[Request], per_mailbox: int = PER_MAILBOX,
           batch_size: int = BATCH_SIZE) -> list[list[list[Request]]]:
    """The requests as rounds of batches: in a round at most `per_mailbox` of a mailbox,
    in a batch at most `batch_size`; in the order given otherwise."""
    waiting = list(requests)
    out: list[list[list[Request]]] = []
    while waiting:
        taken: dict[str, int] = {}
        now, later = [], []
        for request in waiting:
            if taken.get(request.entra_id, 0) < per_mailbox:
                taken[request.entra_id] = taken.get(request.entra_id, 0) + 1
                now.append(request)
            else:
                later.append(request)
        out.append([now[i:i + batch_size] for i in range(0, len(now), batch_size)])
        waiting = later
    return out


async def send(client: graph_client.GraphClient, requests: Sequence[Request], *,
               concurrency: int = CONCURRENT_BATCHES,
               sleep: Sleep = asyncio.sleep) -> SendResult:
    """Send these requests (one per outbound event); every one gets an `Answer`."""
    answers: dict[str, Answer] = {}
    attempts: dict[str, int] = {}
    items_throttled = [0]
    batches = [0]
    gate = asyncio.Semaphore(concurrency)
    pending = list(requests)

    async def one_batch(chunk: list[Request], again: list[Request], wait: list[float]) -> None:
        async with gate:
            batches[0] += 1
            retry = await _batch(client, chunk, answers, items_throttled, wait)
        for request in retry:
            attempts[request.event_id] = attempts.get(request.event_id, 0) + 1
            if attempts[request.event_id] > MAX_ITEM_RETRIES:
                answers[request.event_id] = Answer(
                    None, error=f"still throttled after {MAX_ITEM_RETRIES} retries")
            else:
                again.append(request)

    with middleware.track() as stats:
        while pending:
            again: list[Request] = []
            wait = [0.0]
            for batch_round in rounds(pending):
                await asyncio.gather(*(one_batch(chunk, again, wait)
                                       for chunk in batch_round))
            if again:
                await sleep(wait[0])
            pending = again
    return SendResult(answers, stats.total_requests, stats.throttled + items_throttled[0],
                      batches[0])


def _item(n: int, request: Request) -> dict[str, Any]:
    item: dict[str, Any] = {"id": str(n), "method": request.method, "url": request.url}
    if request.body is not None:
        item["body"] = dict(request.body)
        item["headers"] = {"Content-Type": "application/json"}
    return item


async def _batch(client: graph_client.GraphClient, chunk: list[Request],
                 answers: dict[str, Answer], items_throttled: list[int],
                 wait: list[float]) -> list[Request]:
    """One `$batch`; returns the throttled requests to send again."""
    try:
        answer = await client.post_json("/$batch", {"requests": [
            _item(n, r) for n, r in enumerate(chunk)]})
    except errors.GraphReadError as exc:
        for request in chunk:
            answers[request.event_id] = Answer(
                None, error=f"POST /$batch failed: HTTP {exc.status}, error code "
                            f"{exc.code or 'unknown'}: {exc.message}")
        return []
    responses = {r.get("id"): r for r in answer.get("responses") or () if isinstance(r, dict)}
    again = []
    for n, request in enumerate(chunk):
        response = responses.get(str(n))
        status = response.get("status") if response else None
        if response is None or not isinstance(status, int):
            answers[request.event_id] = Answer(None, error="no answer in the $batch")
        elif status in RETRIED_STATUSES:
            items_throttled[0] += status == 429
            wait[0] = max(wait[0], retry_after(response.get("headers")))
            again.append(request)
        else:
            headers = response.get("headers")
            answers[request.event_id] = Answer(
                status, response.get("body"), headers if isinstance(headers, dict) else None)
    return again
