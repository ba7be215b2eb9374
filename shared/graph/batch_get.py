"""GETs sent as `$batch` items, each retried after its own `Retry-After`.

Shared by the mailbox reads (R13's calendars, R14's events, R16's photos): one item per
thing read, up to 20 a batch. An item answered 429/503/504 is sent again, after the
longest `Retry-After` of the round, in a later batch of only such items (at most
`MAX_ITEM_RETRIES` rounds); the caller settles every other answer. An answer it does not
settle (and an item still throttled after its retries, or left unanswered) concerns
that item alone: it goes to the caller's `fail`, which records it as a per-user failure
(`shared.graph.failures`); only a caller without `fail` has the read raise. A `$batch`
refused as a whole raises `GraphReadError` whatever the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from shared.graph import client as graph_client
from shared.graph import errors

BATCH_SIZE = 20
"""Graph's limit of requests in one `$batch`."""
CONCURRENT_BATCHES = 4
"""Batches in flight at once. A user is in one batch only, and a batch's items for it are
one request, so a mailbox never sees more than one of our requests at a time (Outlook
allows four)."""
MAX_ITEM_RETRIES = 5
"""Rounds a throttled item is retried (after its `Retry-After`) before it fails."""
RETRIED_STATUSES = frozenset({429, 503, 504})

Sleep = Callable[[float], Awaitable[None]]
Item = TypeVar("Item")
Settle = Callable[[Item, dict[str, Any]], Awaitable[list[Item] | None]]
"""Settles one item's answer: [] done, [item] ask again (at once, not a throttled
retry), None not settled (the item failed)."""
Fail = Callable[[Item, int | None, str | None, str], None]
"""Records that one item failed: (item, HTTP status or None, Graph's error code, message)."""


async def get_each(client: graph_client.GraphClient, items: Sequence[Item], *,
                   url: Callable[[Item], str], settle: Settle[Item], sleep: Sleep,
                   batch_url: Callable[[Item], str] | None = None,
                   headers: Mapping[str, str] | None = None,
                   fail: Fail[Item] | None = None) -> int:
    """GET every item's `url` (sent as `batch_url`, when given) through `$batch`, in
    rounds until each is settled or failed; returns the items answered 429."""
    pending = list(items)
    attempt = 0
    throttled = 0
    while pending:
        answer = await client.post_json("/$batch", {"requests": [
            {"id": str(n), "method": "GET", **({"headers": dict(headers)} if headers else {}),
             "url": (batch_url or url)(item)}
            for n, item in enumerate(pending)]})
        responses = {r.get("id"): r for r in answer.get("responses") or ()
                     if isinstance(r, dict)}
        again: list[Item] = []
        wait = 0.0
        retried = False
        for n, item in enumerate(pending):
            response = responses.get(str(n))
            if response is None:
                if fail is None:
                    raise errors.GraphReadError("/$batch", 200, "invalid_json",
                                                f"no answer for item {n} of the batch")
                fail(item, None, "invalid_json", "the $batch answer has no answer for it")
                continue
            status = response.get("status")
            if status in RETRIED_STATUSES and attempt < MAX_ITEM_RETRIES:
                throttled += status == 429
                retried = True
                again.append(item)
                wait = max(wait, retry_after(response.get("headers")))
                continue
            settled = await settle(item, response)
            if settled is None:
                code, message = error_of(response.get("body"))
                known = status if isinstance(status, int) else None
                if fail is None:
                    raise errors.GraphReadError(client.endpoint(url(item)), known, code,
                                                message or "failed inside $batch")
                fail(item, known, code, message or "failed inside $batch")
                continue
            again.extend(settled)
        if retried:
            attempt += 1
            await sleep(wait)
        pending = again
    return throttled


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
