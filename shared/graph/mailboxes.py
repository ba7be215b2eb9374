"""R13's read: the calendars of the users whose calendars are synced.

`GET /users/{id}/calendars?$select=id,name,isDefaultCalendar,canEdit` per user, 20 users
a `$batch`. A user whose mailbox is not in the cloud (Graph's 404
`MailboxNotEnabledForRESTAPI`), or whose account went away since the directory read
(404 `ResourceNotFound`/`ErrorItemNotFound`), has no calendars: `None`, not a failed
run. Any other failure fails the read, like every Graph read (R7: nothing applied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.graph import client as graph_client
from shared.graph import errors, middleware

CALENDAR_FIELDS = "id,name,isDefaultCalendar,canEdit"
BATCH_SIZE = 20
"""Graph's limit of requests in one `$batch`."""
CONCURRENT_BATCHES = 4
"""Batches in flight at once. A user is in one batch only, and a batch's items for it are
one request, so a mailbox never sees more than one of our requests at a time (Outlook
allows four)."""
MAX_ITEM_RETRIES = 5
"""Rounds a throttled item is retried (after its `Retry-After`) before the read fails."""
RETRIED_STATUSES = frozenset({429, 503, 504})
NO_MAILBOX_CODES = frozenset({"MailboxNotEnabledForRESTAPI", "ResourceNotFound",
                              "ErrorItemNotFound", "Request_ResourceNotFound"})

Calendar = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class CalendarRead:
    mailboxes: dict[str, list[Calendar] | None]
    """Entra user id → its calendars as Graph lists them (None: no mailbox in the cloud)."""
    requests: int
    """HTTP exchanges with Graph (a `$batch` of 20 users is one)."""
    throttled: int
    """429 answers: of whole requests, and of items inside a batch."""


async def read_calendars(client: graph_client.GraphClient, entra_ids: Iterable[str],
                         *, concurrency: int = CONCURRENT_BATCHES,
                         sleep: Sleep = asyncio.sleep) -> CalendarRead:
    """The calendars of these users: their first pages through `$batch`, 20 users a
    batch; a user with more calendars than a page holds has its other pages read with
    one GET each. A throttled item (429 inside the batch) is retried after its
    `Retry-After`, in a later batch of only such items."""
    ids = sorted(set(entra_ids))
    gate = asyncio.Semaphore(concurrency)
    out: dict[str, list[Calendar] | None] = {}
    items_throttled = [0]

    async def one_batch(chunk: list[str]) -> None:
        async with gate:
            await _batch(client, chunk, out, items_throttled, sleep)

    with middleware.track() as stats:
        await asyncio.gather(*(one_batch(ids[i:i + BATCH_SIZE])
                               for i in range(0, len(ids), BATCH_SIZE)))
    return CalendarRead({i: out[i] for i in ids}, stats.total_requests,
                        stats.throttled + items_throttled[0])


def _first_page(entra_id: str) -> str:
    return f"/users/{quote(entra_id, safe='')}/calendars?$select={CALENDAR_FIELDS}"


async def _batch(client: graph_client.GraphClient, chunk: list[str],
                 out: dict[str, list[Calendar] | None], items_throttled: list[int],
                 sleep: Sleep) -> None:
    pending = chunk
    for attempt in range(MAX_ITEM_RETRIES + 1):
        answer = await client.post_json("/$batch", {"requests": [
            {"id": str(n), "method": "GET", "url": _first_page(entra_id)}
            for n, entra_id in enumerate(pending)]})
        responses = {r.get("id"): r for r in answer.get("responses") or ()
                     if isinstance(r, dict)}
        again: list[str] = []
        wait = 0.0
        for n, entra_id in enumerate(pending):
            response = responses.get(str(n))
            if response is None:
                raise errors.GraphReadError("/$batch", 200, "invalid_json",
                                            f"no answer for item {n} of the batch")
            status = response.get("status")
            body = response.get("body")
            code, message = error_of(body)
            if status == 200 and isinstance(body, dict):
                out[entra_id] = await _all_pages(client, body, _first_page(entra_id))
            elif status == 404 and code in NO_MAILBOX_CODES:
                out[entra_id] = None
            elif status in RETRIED_STATUSES and attempt < MAX_ITEM_RETRIES:
                items_throttled[0] += status == 429
                again.append(entra_id)
                wait = max(wait, retry_after(response.get("headers")))
            else:
                raise errors.GraphReadError(client.endpoint(_first_page(entra_id)),
                                            status if isinstance(status, int) else None,
                                            code, message or "failed inside $batch")
        if not again:
            return
        await sleep(wait)
        pending = again


def error_of(body: Any) -> tuple[str | None, str | None]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else None,
            message if isinstance(message, str) else None)


def retry_after(headers: Any) -> float:
    """Seconds to wait as the item's `Retry-After` says (1 when it says nothing usable)."""
    if isinstance(headers, dict):
        for name, value in headers.items():
            if name.lower() == "retry-after":
                try:
                    return min(max(float(value), 0.0), 120.0)
                except (TypeError, ValueError):
                    break
    return 1.0


async def _all_pages(client: graph_client.GraphClient, page: Mapping[str, Any], url: str
                     ) -> list[Calendar]:
    found: list[Calendar] = []
    while True:
        value = page.get("value")
        if not isinstance(value, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) for c in value
        ):
            raise errors.GraphReadError(client.endpoint(url), 200, "invalid_json",
                                        "expected a list of calendars with ids")
        found.extend(value)
        link = page.get("@odata.nextLink")
        if not isinstance(link, str):
            return found
        url = link
        page = await client.get_json(link)
