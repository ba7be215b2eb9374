"""R14's read: the events of the mirrored calendars, through `calendarView/delta`.

Per calendar one item in a `$batch`, through the mailbox gate
(`shared.graph.mailbox_gate`: 20 items a batch, many batches in flight, at most 4
requests per mailbox at once, Outlook's limit). A calendar with a stored delta link
asks for what changed since (a run with no change reads one page per calendar); one
without, or whose link Graph refuses (410), reads its whole window. Further pages of a
round are read with one GET each, on the mailbox's slot, whatever a page holds
(Graph's first page is often empty, with a nextLink). An item answered 429/503/504 is
retried after its `Retry-After`. A mailbox or calendar that went away since the
calendar list was read (404 `ErrorItemNotFound`, `MailboxNotEnabledForRESTAPI`…) is not
read (`None`): its events are kept as they are. A calendar whose events could not be
read (403 `ErrorAccessDenied`, 404 `ErrorInvalidUser`, still 429/503/504 after its
retries, a later page that fails, a nextLink followed before or more than
`failures.MAX_PAGES` pages, its `$batch` refused past its retries) is in
`EventRead.failures`, not in `calendars`: its events are kept too, and the caller
reports it (`shared.graph.failures`; R7: per-user faults never stop the run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from shared.graph import batch_get, errors, failures, mailbox_gate, middleware
from shared.graph import client as graph_client
from shared.graph.mailbox_gate import Failure, MailboxGate

BATCH_SIZE = batch_get.BATCH_SIZE
MAX_ITEM_RETRIES = batch_get.MAX_ITEM_RETRIES
PAGE_SIZE = 100
"""Events a page asks for (`Prefer: odata.maxpagesize`): a calendar's window of 20
events is one page."""
PREFER = {"Prefer": f"odata.maxpagesize={PAGE_SIZE}"}
MAILBOX_FAULTS = frozenset({"ErrorInvalidUser"})
"""404 codes that say the mailbox cannot be read now, not that the calendar is gone."""

Event = dict[str, Any]
CalendarKey = tuple[str, str]
"""(Entra user id, calendar id)."""


@dataclass(frozen=True)
class CalendarEvents:
    """One calendar's events as read this run."""

    full: bool
    """The whole window was read: `events` is everything in it. Else only the changes
    since the stored delta link: `events` new or changed, `removed` gone."""
    events: list[Event]
    removed: list[str]
    delta_link: str


@dataclass(frozen=True, slots=True)
class Wanted:
    """A calendar to read: its key and its stored delta link (None: read in full)."""

    entra_id: str
    calendar_id: str
    delta_link: str | None = None


Asked = tuple[Wanted, str | None]
"""A calendar as one `$batch` item asks for it: with its delta link, or None (in full)."""


@dataclass
class EventRead:
    calendars: dict[CalendarKey, CalendarEvents | None] = field(default_factory=dict)
    """Per calendar its events, or None when its mailbox or calendar was not found."""
    requests: int = 0
    throttled: int = 0
    full_reads: int = 0
    """Calendars read in full (no link, a refused link)."""
    failures: dict[CalendarKey, failures.UserReadFailure] = field(default_factory=dict)
    """Per calendar why its events could not be read this run (reason
    `mailbox_unavailable`, with the calendar id); such a calendar is not in `calendars`."""


def first_url(entra_id: str, calendar_id: str, window: tuple[str, str]) -> str:
    return (f"/users/{quote(entra_id, safe='')}/calendars/{quote(calendar_id, safe='')}"
            f"/calendarView/delta?startDateTime={window[0]}&endDateTime={window[1]}")


async def read_events(client: graph_client.GraphClient, wanted: Iterable[Wanted],
                      window: tuple[str, str], *, gate: MailboxGate | None = None
                      ) -> EventRead:
    """The events of these calendars in `window` (ISO start, end), per calendar."""
    read = EventRead()
    gate = gate or MailboxGate()
    throttled0 = gate.throttled

    def url(asked: Asked) -> str:
        w, link = asked
        return link or first_url(w.entra_id, w.calendar_id, window)

    def batch_url(asked: Asked) -> str:
        w, link = asked
        return _relative(client, link) if link else first_url(w.entra_id, w.calendar_id,
                                                              window)

    def fail(asked: Asked, why: Failure) -> None:
        w = asked[0]
        read.failures[(w.entra_id, w.calendar_id)] = failures.failure(
            w.entra_id, failures.MAILBOX_UNAVAILABLE, why.status, why.code, why.message,
            client.endpoint(first_url(w.entra_id, w.calendar_id, window)), w.calendar_id)

    async def rest(asked: Asked, round_: _Round) -> list[Asked] | None:
        w = asked[0]
        try:
            read.calendars[(w.entra_id, w.calendar_id)] = await _rest(client, w, round_,
                                                                      window, read)
        except failures.PagingStopped as stop:
            fail(asked, Failure(None, stop.code, stop.message))
        return []

    def settle(asked: Asked, response: dict[str, Any]
               ) -> list[Asked] | Awaitable[list[Asked] | None] | None:
        w, link = asked
        status, body = response.get("status"), response.get("body")
        key = (w.entra_id, w.calendar_id)
        if status == 200 and isinstance(body, dict):
            round_ = _Round(client, url(asked), link is None, read)
            if round_.add(body):  # further pages: read on the mailbox's slot
                return rest(asked, round_)
            read.calendars[key] = round_.result()
        elif status == 410 and link is not None:
            return [(w, None)]  # the link expired: the whole window, at once
        elif status == 404 and batch_get.error_of(body)[0] not in MAILBOX_FAULTS:
            read.calendars[key] = None
        else:
            return None
        return []

    spec: mailbox_gate.Spec[Asked] = mailbox_gate.Spec(
        mailbox=lambda asked: asked[0].entra_id.casefold(), url=url, batch_url=batch_url,
        settle=settle, fail=fail, headers=PREFER)
    items = [(w, w.delta_link) for w in sorted(wanted, key=lambda w: (w.entra_id,
                                                                        w.calendar_id))]
    with middleware.track() as stats:
        await gate.get_each(client, items, spec)
    read.requests = stats.total_requests
    read.throttled = stats.throttled + gate.throttled - throttled0
    return read


def _relative(client: graph_client.GraphClient, url: str) -> str:
    """A delta or next link as a `$batch` item URL (relative to the Graph version)."""
    if url.startswith(client.graph_url):
        return url[len(client.graph_url):] or "/"
    parts = urlsplit(url)
    path = parts.path
    if client.base_path and path.startswith(client.base_path + "/"):
        path = path[len(client.base_path):]
    return path + (f"?{parts.query}" if parts.query else "")


class _Round:
    """One calendar's delta round, a page at a time: the events new or changed, the ids
    gone, and at the end the round's delta link."""

    def __init__(self, client: graph_client.GraphClient, url: str, full: bool,
                 read: EventRead) -> None:
        self.client = client
        self.url = url
        self.full = full
        self.events: dict[str, Event] = {}
        self.removed: set[str] = set()
        self.delta_link: str | None = None
        self.next_link: str | None = None
        self.guard = failures.PageGuard()
        read.full_reads += full

    def add(self, page: Mapping[str, Any]) -> bool:
        """Takes one page; True when the round goes on (at `next_link`, see `follow`).
        Raises `GraphReadError` for a page that is not a delta page of events."""
        value = page.get("value")
        if not isinstance(value, list) or not all(
                isinstance(e, dict) and isinstance(e.get("id"), str) for e in value):
            raise errors.GraphReadError(self.client.endpoint(self.url), 200, "invalid_json",
                                        "expected a list of events with ids")
        for event in value:
            if "@removed" in event:
                self.removed.add(event["id"])
                self.events.pop(event["id"], None)
            else:
                self.events[event["id"]] = event
                self.removed.discard(event["id"])
        link = page.get("@odata.deltaLink")
        if isinstance(link, str):
            self.delta_link, self.next_link = link, None
            return False
        next_link = page.get("@odata.nextLink")
        if not isinstance(next_link, str):
            raise errors.GraphReadError(self.client.endpoint(self.url), 200, "invalid_json",
                                        "a delta page with neither nextLink nor deltaLink")
        self.url = self.next_link = next_link
        return True

    def follow(self) -> str:
        """The next page's link; raises `failures.PagingStopped` for a loop or a page
        past the budget."""
        assert self.next_link is not None
        self.guard.follow(self.next_link)
        return self.next_link

    def result(self) -> CalendarEvents:
        assert self.delta_link is not None
        return CalendarEvents(self.full, list(self.events.values()), sorted(self.removed),
                              self.delta_link)


async def _rest(client: graph_client.GraphClient, w: Wanted, round_: _Round,
                window: tuple[str, str], read: EventRead) -> CalendarEvents:
    """A delta round's further pages; a link refused on a later page starts the window
    again in full."""
    while True:
        try:
            while round_.next_link is not None:
                round_.add(await client.get_json(round_.follow(), headers=PREFER))
            return round_.result()
        except errors.DeltaExpired:
            if round_.full:
                raise
            round_ = _Round(client, first_url(w.entra_id, w.calendar_id, window), True, read)
            round_.add(await client.get_json(round_.url, headers=PREFER))
