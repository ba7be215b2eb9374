"""A read that failed for one user (or one of a user's calendars), not for the run.

R7 keeps the directory read (users, groups, organization) all-or-nothing; everything
read per mailbox or per user is not (BEHAVIOUR.md, R7: "Per-user faults never stop the
run"). So the calendar, event and photo reads (`shared.graph.mailboxes`, `events`,
`photos`) put what one user's answer broke into their result as a `UserReadFailure`,
next to everything else they read, instead of raising:

- 403 ``ErrorAccessDenied``: an application access policy keeps the app out of that
  mailbox (concepts/auth-limit-mailbox-access.md); permanent until an Exchange
  administrator changes the policy;
- 404 ``ErrorInvalidUser``: Exchange does not know the mailbox (yet): temporary;
- 429, 503, 504 (or no answer) still there after the item's retries: temporary;
- a paging loop (a nextLink followed before) or more pages than `MAX_PAGES`:
  temporary (Graph's fault, not the user's);
- any other refusal of that user's request, or an answer that is not what Graph
  documents (`invalid_json`).

The caller reports each as an error on that user (reason `mailbox_unavailable` for
calendars and events, `photo_unavailable` for photos) and keeps what Emply holds for
that user as it is. A failure of the `$batch` request as a whole is not per user: it
still raises `shared.graph.errors.GraphReadError`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MAILBOX_UNAVAILABLE = "mailbox_unavailable"
"""Reason code: the user's calendars or events could not be read this run."""
PHOTO_UNAVAILABLE = "photo_unavailable"
"""Reason code: the user's photo could not be read this run."""
PAGING_LOOP = "paging_loop"
"""Our code (Graph's answer has none): a nextLink that was followed before came again."""
PAGE_BUDGET_EXCEEDED = "page_budget_exceeded"
"""Our code: more pages than `MAX_PAGES` for one calendar or one calendar list."""
INVALID_JSON = "invalid_json"
"""Our code: the answer is not the shape Graph documents."""

MAX_PAGES = 1000
"""Pages read for one calendar's events (100 events a page) or one user's calendar list
before the read of it is given up as a loop Graph did not show as one."""

TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TEMPORARY_CODES = frozenset({"ErrorInvalidUser", PAGING_LOOP, PAGE_BUDGET_EXCEEDED,
                             INVALID_JSON})


@dataclasses.dataclass(frozen=True)
class UserReadFailure:
    """Why one user's (or one of its calendars') read gave nothing usable this run."""

    entra_id: str
    reason: str
    """`MAILBOX_UNAVAILABLE` or `PHOTO_UNAVAILABLE`."""
    status: int | None
    """Graph's HTTP status (None: no HTTP answer, or our own finding such as a loop)."""
    code: str | None
    """Graph's error code (``ErrorAccessDenied``, ``ErrorInvalidUser``,
    ``serviceNotAvailable``…), or ours (`PAGING_LOOP`, `PAGE_BUDGET_EXCEEDED`,
    `INVALID_JSON`)."""
    message: str
    endpoint: str
    """The endpoint template (``/users/{id}/calendars``), never a URL with tokens."""
    temporary: bool
    """True when the next run may well succeed as it is; False when someone must act
    (an access policy, a permission)."""
    calendar_id: str | None = None
    """The calendar whose events failed (events only)."""

    def as_error(self) -> dict[str, Any]:
        """The failure as a run report's error entry (ids and codes only)."""
        where = f"calendar {self.calendar_id} of " if self.calendar_id else ""
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP answer"
        entry: dict[str, Any] = {
            "reason": self.reason, "entraId": self.entra_id, "temporary": self.temporary,
            "graphStatus": self.status, "graphCode": self.code,
            "message": f"{where}Entra user {self.entra_id} could not be read "
                       f"(GET {self.endpoint}: {status}, error code {self.code or 'unknown'}:"
                       f" {self.message}); what Emply holds for it is kept as it is"}
        if self.calendar_id is not None:
            entry["calendarId"] = self.calendar_id
        return entry


def failure(entra_id: str, reason: str, status: int | None, code: str | None,
            message: str, endpoint: str, calendar_id: str | None = None) -> UserReadFailure:
    """A `UserReadFailure`, temporary or not by Graph's status and code."""
    temporary = (status is None or status in TEMPORARY_STATUSES or status >= 500
                 or code in TEMPORARY_CODES)
    return UserReadFailure(entra_id, reason, status, code, message, endpoint, temporary,
                           calendar_id)


class PageGuard:
    """Counts one paged read's links: a link seen before is a loop, too many pages a
    budget exceeded (either is `PagingStopped`)."""

    def __init__(self, max_pages: int = MAX_PAGES) -> None:
        self.seen: set[str] = set()
        self.pages = 0
        self.max_pages = max_pages

    def follow(self, link: str) -> None:
        """Note that `link` is followed next; raise `PagingStopped` if it must not be."""
        if link in self.seen:
            raise PagingStopped(PAGING_LOOP, "a nextLink came back that was followed before")
        self.pages += 1
        if self.pages > self.max_pages:
            raise PagingStopped(PAGE_BUDGET_EXCEEDED,
                                f"more than {self.max_pages} pages of one read")
        self.seen.add(link)


class PagingStopped(Exception):
    """A paged read stopped by `PageGuard` (code `PAGING_LOOP` or `PAGE_BUDGET_EXCEEDED`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
