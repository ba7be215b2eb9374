"""R15's write: Emply's outbound events created in the users' default calendars.

`POST /users/{id}/calendar/events` per event, 20 a `$batch`, with Graph's
`transactionId` in the body: Graph answers a POST whose transactionId it has seen with
the event it made the first time, so an event is created once however often it is
sent (a retry, a run killed before it stored the answer).

Outlook allows 4 concurrent requests per mailbox, and the items of one `$batch` run in
parallel: so the events go out in *rounds* (`rounds`), each holding at most 4 events
of a mailbox, its batches at most `CONCURRENT_BATCHES` at a time; the next round starts
when the last one is answered. A throttled item (429/503/504 inside the batch) goes
again in a later round, after the longest `Retry-After` of its round.

Each event ends in one `Outcome`: created (its Graph id), failed for good
(`mailbox_not_in_cloud`: Graph's MailboxNotEnabledForRESTAPI), or a temporary error
(kept pending, tried again by the next run). A failed `$batch` as a whole makes its
events temporary errors; it never fails the run (the Emply side is written already).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.graph import client as graph_client
from shared.graph import errors, middleware
from shared.graph.mailboxes import (
    BATCH_SIZE,
    CONCURRENT_BATCHES,
    MAX_ITEM_RETRIES,
    RETRIED_STATUSES,
    Sleep,
    error_of,
    retry_after,
)

PER_MAILBOX = 4
"""Outlook's limit of concurrent requests to one mailbox."""
MAILBOX_NOT_IN_CLOUD = "mailbox_not_in_cloud"


@dataclass(frozen=True)
class Push:
    """One outbound event to create in the default calendar of Entra user `entra_id`."""

    event_id: str
    entra_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    graph_id: str | None = None
    """Created: the event's id in Graph."""
    failure: str | None = None
    """Failed for good: the reason code."""
    error: str | None = None
    """A temporary error: what went wrong (tried again by the next run)."""


@dataclass(frozen=True)
class PushResult:
    outcomes: dict[str, Outcome]
    """Outbound event id → what became of it."""
    requests: int
    throttled: int


def event_body(subject: str | None, start: str, end: str, transaction_id: str
               ) -> dict[str, Any]:
    """The Graph event for an outbound event (times with a zone, sent in UTC)."""
    return {"subject": subject or "", "start": _utc(start), "end": _utc(end),
            "transactionId": transaction_id}


def _utc(moment: str) -> dict[str, str]:
    at = dt.datetime.fromisoformat(moment.upper()).astimezone(dt.UTC)
    return {"dateTime": at.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def rounds(pushes: Iterable[Push], per_mailbox: int = PER_MAILBOX,
           batch_size: int = BATCH_SIZE) -> list[list[list[Push]]]:
    """The pushes as rounds of batches: in a round at most `per_mailbox` of a mailbox,
    in a batch at most `batch_size`; in the order given otherwise."""
    waiting = list(pushes)
    out: list[list[list[Push]]] = []
    while waiting:
        taken: dict[str, int] = {}
        now, later = [], []
        for push in waiting:
            if taken.get(push.entra_id, 0) < per_mailbox:
                taken[push.entra_id] = taken.get(push.entra_id, 0) + 1
                now.append(push)
            else:
                later.append(push)
        out.append([now[i:i + batch_size] for i in range(0, len(now), batch_size)])
        waiting = later
    return out


def _url(entra_id: str) -> str:
    return f"/users/{quote(entra_id, safe='')}/calendar/events"


async def push_events(client: graph_client.GraphClient, pushes: Sequence[Push], *,
                      concurrency: int = CONCURRENT_BATCHES,
                      sleep: Sleep = asyncio.sleep) -> PushResult:
    """Create these events; every one gets an `Outcome`."""
    outcomes: dict[str, Outcome] = {}
    attempts: dict[str, int] = {}
    items_throttled = [0]
    gate = asyncio.Semaphore(concurrency)
    pending = list(pushes)

    async def one_batch(chunk: list[Push], again: list[Push], wait: list[float]) -> None:
        async with gate:
            retry = await _batch(client, chunk, outcomes, items_throttled, wait)
        for push in retry:
            attempts[push.event_id] = attempts.get(push.event_id, 0) + 1
            if attempts[push.event_id] > MAX_ITEM_RETRIES:
                outcomes[push.event_id] = Outcome(
                    error=f"still throttled after {MAX_ITEM_RETRIES} retries")
            else:
                again.append(push)

    with middleware.track() as stats:
        while pending:
            again: list[Push] = []
            wait = [0.0]
            for batches in rounds(pending):
                await asyncio.gather(*(one_batch(chunk, again, wait) for chunk in batches))
            if again:
                await sleep(wait[0])
            pending = again
    return PushResult(outcomes, stats.total_requests, stats.throttled + items_throttled[0])


async def _batch(client: graph_client.GraphClient, chunk: list[Push],
                 outcomes: dict[str, Outcome], items_throttled: list[int],
                 wait: list[float]) -> list[Push]:
    """One `$batch` of POSTs; returns the throttled pushes to send again."""
    try:
        answer = await client.post_json("/$batch", {"requests": [
            {"id": str(n), "method": "POST", "url": _url(p.entra_id), "body": dict(p.body),
             "headers": {"Content-Type": "application/json"}}
            for n, p in enumerate(chunk)]})
    except errors.GraphReadError as exc:
        for push in chunk:
            outcomes[push.event_id] = Outcome(
                error=f"POST /$batch failed: HTTP {exc.status}, error code "
                      f"{exc.code or 'unknown'}: {exc.message}")
        return []
    responses = {r.get("id"): r for r in answer.get("responses") or () if isinstance(r, dict)}
    again = []
    for n, push in enumerate(chunk):
        response = responses.get(str(n)) or {}
        status, body = response.get("status"), response.get("body")
        code, message = error_of(body)
        graph_id = body.get("id") if isinstance(body, dict) else None
        if status in (200, 201) and isinstance(graph_id, str) and graph_id:
            outcomes[push.event_id] = Outcome(graph_id=graph_id)
        elif status == 404 and code == "MailboxNotEnabledForRESTAPI":
            outcomes[push.event_id] = Outcome(failure=MAILBOX_NOT_IN_CLOUD)
        elif status in RETRIED_STATUSES:
            items_throttled[0] += status == 429
            wait[0] = max(wait[0], retry_after(response.get("headers")))
            again.append(push)
        else:
            hint = " (the app registration needs Calendars.ReadWrite)" if status == 403 else ""
            outcomes[push.event_id] = Outcome(
                error=f"POST /users/{{id}}/calendar/events: HTTP {status}, error code "
                      f"{code or 'unknown'}: {message or 'no answer in the $batch'}{hint}")
    return again
