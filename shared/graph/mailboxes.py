"""R13's read: the calendars of the users whose calendars are synced.

`GET /users/{id}/calendars?$select=id,name,isDefaultCalendar,canEdit` per user (paged),
a few users at a time. A user whose mailbox is not in the cloud (Graph's 404
`MailboxNotEnabledForRESTAPI`), or whose account went away since the directory read
(404 `ResourceNotFound`/`ErrorItemNotFound`), has no calendars: `None`, not a failed
run. Any other failure fails the read, like every Graph read (R7: nothing applied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.graph import client as graph_client
from shared.graph import errors, middleware

CALENDAR_FIELDS = "id,name,isDefaultCalendar,canEdit"
CONCURRENT_USERS = 8
"""Users read at once. Each user's pages are read one after another, so a mailbox never
sees more than one of our requests at a time (Outlook allows four)."""
NO_MAILBOX_CODES = frozenset({"MailboxNotEnabledForRESTAPI", "ResourceNotFound",
                              "ErrorItemNotFound", "Request_ResourceNotFound"})

Calendar = dict[str, Any]


@dataclass(frozen=True)
class CalendarRead:
    mailboxes: dict[str, list[Calendar] | None]
    """Entra user id → its calendars as Graph lists them (None: no mailbox in the cloud)."""
    requests: int
    throttled: int


async def read_calendars(client: graph_client.GraphClient, entra_ids: Iterable[str],
                         *, concurrency: int = CONCURRENT_USERS) -> CalendarRead:
    ids = sorted(set(entra_ids))
    gate = asyncio.Semaphore(concurrency)
    out: dict[str, list[Calendar] | None] = {}

    async def one(entra_id: str) -> None:
        async with gate:
            out[entra_id] = await _calendars_of(client, entra_id)

    with middleware.track() as stats:
        await asyncio.gather(*(one(i) for i in ids))
    return CalendarRead({i: out[i] for i in ids}, stats.total_requests, stats.throttled)


async def _calendars_of(client: graph_client.GraphClient, entra_id: str
                        ) -> list[Calendar] | None:
    url: str | None = f"/users/{quote(entra_id, safe='')}/calendars?$select={CALENDAR_FIELDS}"
    found: list[Calendar] = []
    while url is not None:
        try:
            page = await client.get_json(url)
        except errors.GraphReadError as exc:
            if exc.status == 404 and exc.code in NO_MAILBOX_CODES:
                return None
            raise
        value = page.get("value")
        if not isinstance(value, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) for c in value
        ):
            raise errors.GraphReadError(client.endpoint(url), 200, "invalid_json",
                                        "expected a list of calendars with ids")
        found.extend(value)
        link = page.get("@odata.nextLink")
        url = link if isinstance(link, str) else None
    return found
