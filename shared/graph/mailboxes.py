"""R13's read: the calendars of the users whose calendars are synced.

`GET /users/{id}/calendars?$select=id,name,isDefaultCalendar,canEdit` per user, as
`$batch` items through the mailbox gate (`shared.graph.mailbox_gate`: many batches in
flight, at most 4 requests per mailbox). A user whose mailbox is not in the cloud
(Graph's 404 `MailboxNotEnabledForRESTAPI`), or whose account went away since the
directory read (404 `ResourceNotFound`/`ErrorItemNotFound`), has no calendars: `None`.
A user whose calendars could not be read (403 `ErrorAccessDenied` from an application
access policy, 404 `ErrorInvalidUser`, still 429/503/504 after its retries, a page that
fails, a paging loop, its `$batch` refused past its retries) is in
`CalendarRead.failures` and not in `mailboxes`: the caller keeps its calendars as they
are and reports it (`shared.graph.failures`; R7: per-user faults never stop the run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shared.graph import batch_get, errors, failures, mailbox_gate, middleware
from shared.graph import client as graph_client
from shared.graph.batch_get import CONCURRENT_BATCHES as CONCURRENT_BATCHES
from shared.graph.batch_get import RETRIED_STATUSES as RETRIED_STATUSES
from shared.graph.batch_get import Sleep as Sleep
from shared.graph.batch_get import error_of as error_of
from shared.graph.batch_get import retry_after as retry_after
from shared.graph.mailbox_gate import Failure, MailboxGate

CALENDAR_FIELDS = "id,name,isDefaultCalendar,canEdit"
NO_MAILBOX_CODES = frozenset({"MailboxNotEnabledForRESTAPI", "ResourceNotFound",
                              "ErrorItemNotFound", "Request_ResourceNotFound"})
BATCH_SIZE = batch_get.BATCH_SIZE
MAX_ITEM_RETRIES = batch_get.MAX_ITEM_RETRIES

Calendar = dict[str, Any]


@dataclass(frozen=True)
class CalendarRead:
    mailboxes: dict[str, list[Calendar] | None]
    """Entra user id → its calendars as Graph lists them (None: no mailbox in the cloud),
    for every user asked about whose calendars were read."""
    requests: int
    """HTTP exchanges with Graph (a `$batch` of 20 users is one)."""
    throttled: int
    """429 answers: of whole requests, and of items inside a batch."""
    failures: dict[str, failures.UserReadFailure] = field(default_factory=dict)
    """Entra user id → why its calendars could not be read this run (reason
    `mailbox_unavailable`); such a user is not in `mailboxes`."""


def first_page(entra_id: str) -> str:
    return f"/users/{quote(entra_id, safe='')}/calendars?$select={CALENDAR_FIELDS}"


async def read_calendars(client: graph_client.GraphClient, entra_ids: Iterable[str],
                         *, gate: MailboxGate | None = None) -> CalendarRead:
    """The calendars of these users: their first pages through the gate's `$batch`es; a
    user with more calendars than a page holds has its other pages read with one GET
    each, on its mailbox's slot."""
    ids = sorted(set(entra_ids))
    gate = gate or MailboxGate()
    out: dict[str, list[Calendar] | None] = {}
    failed: dict[str, failures.UserReadFailure] = {}
    throttled0 = gate.throttled

    def fail(entra_id: str, why: Failure) -> None:
        failed[entra_id] = failures.failure(
            entra_id, failures.MAILBOX_UNAVAILABLE, why.status, why.code, why.message,
            client.endpoint(first_page(entra_id)))

    async def rest(entra_id: str, found: list[Calendar], link: str) -> list[str] | None:
        try:
            out[entra_id] = await _all_pages(client, found, link)
        except failures.PagingStopped as stop:
            fail(entra_id, Failure(None, stop.code, stop.message))
        return []

    def settle(entra_id: str, response: dict[str, Any]
               ) -> list[str] | Awaitable[list[str] | None] | None:
        status, body = response.get("status"), response.get("body")
        if status == 200 and isinstance(body, dict):
            found = _calendars(client, body, first_page(entra_id))
            link = body.get("@odata.nextLink")
            if isinstance(link, str):  # further pages: read on the mailbox's slot
                return rest(entra_id, found, link)
            out[entra_id] = found
        elif status == 404 and batch_get.error_of(body)[0] in NO_MAILBOX_CODES:
            out[entra_id] = None
        else:
            return None
        return []

    spec = mailbox_gate.Spec(mailbox=str.casefold, url=first_page, settle=settle, fail=fail)
    with middleware.track() as stats:
        await gate.get_each(client, ids, spec)
    return CalendarRead({i: out[i] for i in ids if i in out}, stats.total_requests,
                        stats.throttled + gate.throttled - throttled0,
                        {i: failed[i] for i in ids if i in failed})


def _calendars(client: graph_client.GraphClient, page: Mapping[str, Any], url: str
               ) -> list[Calendar]:
    """One page's calendars; raises `GraphReadError` for a page that is not a list of
    calendars (the gate makes it the user's failure)."""
    value = page.get("value")
    if not isinstance(value, list) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), str) for c in value
    ):
        raise errors.GraphReadError(client.endpoint(url), 200, failures.INVALID_JSON,
                                    "expected a list of calendars with ids")
    return value


async def _all_pages(client: graph_client.GraphClient, found: list[Calendar], link: str
                     ) -> list[Calendar]:
    """Every calendar, from the first page's (`found`) on through its nextLink `link`;
    raises `GraphReadError` for a page that fails or is not a list of calendars,
    `failures.PagingStopped` for a loop."""
    guard = failures.PageGuard()
    while True:
        guard.follow(link)
        page = await client.get_json(link)
        found = found + _calendars(client, page, link)
        next_link = page.get("@odata.nextLink")
        if not isinstance(next_link, str):
            return found
        link = next_link
