"""How real Graph answers where a tidy simulator would not: each behaviour switchable.

Every behaviour below is what Microsoft's Graph reference (microsoftgraph/
microsoft-graph-docs-contrib) documents; it is off until a test or a demo switches it
on, per user (`PUT /_sim/users/{id}/quirks`) or for every request
(`PUT /_sim/quirks`), so the simulator's plain answers stay what they were.

Per user (`UserQuirks`):

- ``mailbox: "accessDenied"``: the user's calendars, calendar views and events answer
  403 ``ErrorAccessDenied`` "Access to OData is disabled.", as Exchange answers an app
  an application access policy keeps out of that mailbox
  (concepts/auth-limit-mailbox-access.md, "Handling API errors"). Photos are not
  covered: the policy scopes Mail, Calendars, Contacts and MailboxSettings only.
- ``mailbox: "invalidUser"``: the same routes answer 404 ``ErrorInvalidUser``, as for
  a user Exchange does not know (yet): a mailbox still being provisioned, a user
  without an Exchange licence. The code is the one real tenants answer (issue 22); the
  reference pages name no code for it.
- ``mailbox: "unavailable"``: the mailbox routes and the photo routes answer 503
  ``serviceNotAvailable`` every time, also inside ``$batch`` (concepts/errors.md: 503
  "the service is temporarily unavailable"; photos are served by the same Outlook
  service, concepts/throttling-limits.md "Outlook service limits").
- ``photo: "emptyEtag"``: a user without a photo answers ``GET /users/{id}/photo``
  with 200 and ``"@odata.mediaEtag": ""`` (a 1x1 ``image/gif``) instead of 404
  ``ImageNotFound`` (api/profilephoto-get.md, example 3, "a photo hasn't already been
  uploaded"); ``/photo/$value`` still answers 404 ("If no photo exists, the
  operation returns 404 Not Found").
- ``privileged: true``: ``PATCH`` and ``DELETE /users/{id}`` answer 403
  ``Authorization_RequestDenied`` "Insufficient privileges to complete the
  operation.": app-only ``User.ReadWrite.All`` may not change or delete a user with
  an administrator role (api/user-delete.md; api/user-update.md for businessPhones,
  mobilePhone and otherMails of administrators; the error body is the one
  concepts/json-batching.md shows for a refused directory write).
- ``loopingCalendars: [calendar ids]``: ``calendarView/delta`` of those calendars
  pages forever: every page's ``@odata.nextLink`` is the same link (what issue 22
  saw on real calendars; a client must notice a link it has followed before).

For every request (`Quirks`):

- ``deltaLagSeconds``: ``/users/delta`` and ``/groups/delta`` see a tenant change
  only that many seconds after it was made, while its change notification goes out at
  once (concepts/delta-query-overview.md, "Processing delays": "Expect varying delays
  between the time a change is made ... and the time the tracked change is reflected
  in a delta query response").
- ``emptyFirstPages``: the first page of every ``calendarView/delta`` round is empty
  and carries an ``@odata.nextLink`` to the events (a client must follow nextLinks
  whatever a page holds, api/event-delta.md).
- ``writeQuota``: directory writes (POST, PATCH, DELETE of users, group member
  ``$ref``s, restores) are throttled at ``writes`` per ``seconds`` for the app and
  tenant; over it Graph answers 429 ``TooManyRequests`` with ``Retry-After`` and
  ``x-ms-throttle-information: WriteLimitExceeded`` (concepts/throttling-limits.md,
  "Identity and access service limits": write quota 3,000 requests per 2 minutes and
  30 seconds per application+tenant pair, each POST/PATCH/PUT/DELETE costing 1;
  concepts/throttling.md, "Sample response"; inside ``$batch`` each item is counted
  on its own, concepts/json-batching.md). A refused write costs nothing here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from graph_simulator.protocol import GraphError, Req

if TYPE_CHECKING:
    from graph_simulator.pipeline import Route
    from graph_simulator.state import Simulator

ACCESS_DENIED = "accessDenied"
INVALID_USER = "invalidUser"
UNAVAILABLE = "unavailable"
MAILBOX_BEHAVIOURS = (ACCESS_DENIED, INVALID_USER, UNAVAILABLE)
EMPTY_ETAG = "emptyEtag"
PHOTO_BEHAVIOURS = (EMPTY_ETAG,)

GRAPH_WRITE_QUOTA = (3000, 150.0)
"""Graph's published write quota per application+tenant pair: (writes, seconds)."""

_MAILBOX_SEGMENTS = ("/calendar", "/calendars", "/calendarView", "/events")
_PHOTO_SEGMENT = "/photo"
DIRECTORY_WRITES = frozenset({
    ("POST", "/users"), ("PATCH", "/users/{id}"), ("DELETE", "/users/{id}"),
    ("POST", "/groups/{id}/members/$ref"), ("DELETE", "/groups/{id}/members/{mid}/$ref"),
    ("POST", "/directory/deletedItems/{id}/restore"),
})
"""Identity writes that cost one unit of the write quota (each a `$batch` item too)."""


@dataclasses.dataclass(frozen=True)
class UserQuirks:
    """How one user's requests are answered (see the module docstring)."""

    mailbox: str | None = None
    photo: str | None = None
    privileged: bool = False
    looping_calendars: frozenset[str] = frozenset()

    def as_json(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "photo": self.photo, "privileged": self.privileged,
                "loopingCalendars": sorted(self.looping_calendars)}


@dataclasses.dataclass
class Quirks:
    """All switched-on behaviours of one simulator."""

    users: dict[str, UserQuirks] = dataclasses.field(default_factory=dict)
    delta_lag_seconds: float = 0.0
    empty_first_pages: bool = False
    write_quota: tuple[int, float] | None = None
    """(writes, seconds), or None: directory writes are never throttled."""
    write_times: deque[float] = dataclasses.field(default_factory=deque)
    """When each write the quota counts was accepted (monotonic seconds)."""
    clock: Callable[[], float] = time.monotonic

    def as_json(self) -> dict[str, Any]:
        quota = self.write_quota
        return {"deltaLagSeconds": self.delta_lag_seconds,
                "emptyFirstPages": self.empty_first_pages,
                "writeQuota": None if quota is None else {"writes": quota[0],
                                                          "seconds": quota[1]},
                "users": {uid: q.as_json() for uid, q in sorted(self.users.items())}}

    def user(self, user_id: str | None) -> UserQuirks:
        return self.users.get(user_id or "", _NONE)


_NONE = UserQuirks()


# ------------------------------------------------------------ control input


def parse_user_quirks(raw: Any) -> UserQuirks:
    """A user's quirks from `PUT /_sim/users/{id}/quirks`; ValueError names the field."""
    if not isinstance(raw, dict):
        raise ValueError("quirks: must be a JSON object")
    unknown = set(raw) - {"mailbox", "photo", "privileged", "loopingCalendars"}
    if unknown:
        raise ValueError(f"quirks.{sorted(unknown)[0]}: unknown field")
    mailbox, photo = raw.get("mailbox"), raw.get("photo")
    if mailbox is not None and mailbox not in MAILBOX_BEHAVIOURS:
        raise ValueError("quirks.mailbox: null or one of " + ", ".join(MAILBOX_BEHAVIOURS))
    if photo is not None and photo not in PHOTO_BEHAVIOURS:
        raise ValueError("quirks.photo: null or one of " + ", ".join(PHOTO_BEHAVIOURS))
    privileged = raw.get("privileged", False)
    if not isinstance(privileged, bool):
        raise ValueError("quirks.privileged: true or false")
    looping = raw.get("loopingCalendars", [])
    if not isinstance(looping, list) or not all(isinstance(c, str) and c for c in looping):
        raise ValueError("quirks.loopingCalendars: a list of calendar ids")
    return UserQuirks(mailbox, photo, privileged, frozenset(looping))


def apply_settings(quirks: Quirks, raw: Any) -> None:
    """`PUT /_sim/quirks`: the fields given change, the others stay; all are checked
    before any changes (ValueError names the field)."""
    if not isinstance(raw, dict):
        raise ValueError("quirks: must be a JSON object")
    unknown = set(raw) - {"deltaLagSeconds", "emptyFirstPages", "writeQuota"}
    if unknown:
        raise ValueError(f"quirks.{sorted(unknown)[0]}: unknown field")
    lag = raw.get("deltaLagSeconds", quirks.delta_lag_seconds)
    if isinstance(lag, bool) or not isinstance(lag, int | float) or not 0 <= lag <= 3600:
        raise ValueError("quirks.deltaLagSeconds: a number of seconds from 0 to 3600")
    empty = raw.get("emptyFirstPages", quirks.empty_first_pages)
    if not isinstance(empty, bool):
        raise ValueError("quirks.emptyFirstPages: true or false")
    quota = _parse_quota(raw["writeQuota"]) if "writeQuota" in raw else quirks.write_quota
    quirks.delta_lag_seconds, quirks.empty_first_pages = float(lag), empty
    if quota != quirks.write_quota:
        quirks.write_times.clear()
    quirks.write_quota = quota


def _parse_quota(raw: Any) -> tuple[int, float] | None:
    if raw is None:
        return None
    if raw == "graph":
        return GRAPH_WRITE_QUOTA
    if not isinstance(raw, dict):
        raise ValueError('quirks.writeQuota: null, "graph" or {"writes", "seconds"}')
    writes, seconds = raw.get("writes"), raw.get("seconds")
    if isinstance(writes, bool) or not isinstance(writes, int) or writes < 1:
        raise ValueError("quirks.writeQuota.writes: a positive whole number")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ValueError("quirks.writeQuota.seconds: a positive number of seconds")
    return writes, float(seconds)


# ------------------------------------------------------------ per request


def check(sim: Simulator, req: Req, route: Route, params: Mapping[str, str]) -> None:
    """Raise the GraphError a switched-on behaviour answers `req` with (called for
    plain requests and `$batch` items alike, after injected faults)."""
    quirks = sim.quirks
    if (req.method, route.template) in DIRECTORY_WRITES and quirks.write_quota is not None:
        _take_write(quirks)
    if not quirks.users:
        return
    raw = params.get("id")
    if raw is None or not route.template.startswith("/users/{id}"):
        return
    user_id = sim.current.find_user(raw)
    mine = quirks.user(user_id)
    rest = route.template[len("/users/{id}"):]
    if mine.privileged and rest == "" and req.method in ("PATCH", "DELETE"):
        raise GraphError(403, "Authorization_RequestDenied",
                         "Insufficient privileges to complete the operation.")
    if mine.mailbox is None:
        return
    if rest.startswith(_MAILBOX_SEGMENTS):
        raise _mailbox_error(mine.mailbox, raw)
    if rest.startswith(_PHOTO_SEGMENT) and mine.mailbox == UNAVAILABLE:
        raise _mailbox_error(UNAVAILABLE, raw)


def _mailbox_error(behaviour: str, raw_id: str) -> GraphError:
    if behaviour == ACCESS_DENIED:
        return GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")
    if behaviour == INVALID_USER:
        return GraphError(404, "ErrorInvalidUser", f"The requested user '{raw_id}' is invalid.")
    return GraphError(503, "serviceNotAvailable",
                      "The service is temporarily unavailable. Try again later.")


def _take_write(quirks: Quirks) -> None:
    """Count one directory write, or refuse it with Graph's 429 when the quota is used."""
    assert quirks.write_quota is not None
    writes, seconds = quirks.write_quota
    now = quirks.clock()
    times = quirks.write_times
    while times and times[0] <= now - seconds:
        times.popleft()
    if len(times) >= writes:
        wait = max(1, math.ceil(times[0] + seconds - now))
        raise GraphError(429, "TooManyRequests", "Please retry again later.", {
            "Retry-After": str(wait),
            "x-ms-throttle-scope": "Tenant_Application/Write",
            "x-ms-throttle-information": "WriteLimitExceeded"})
    times.append(now)


def delta_version(sim: Simulator) -> int:
    """The newest tenant version `/users/delta` and `/groups/delta` show now: with a lag,
    the newest installed at least `deltaLagSeconds` ago (version 1 always shows)."""
    lag = sim.quirks.delta_lag_seconds
    if lag <= 0:
        return sim.current.version
    cutoff = sim.quirks.clock() - lag
    shown = 1
    for version, at in sim.installed_at.items():
        if at <= cutoff and version > shown:
            shown = version
    return shown


def photo_placeholder(base: str, user_id: str) -> dict[str, Any]:
    """The metadata Graph answers for a user with no uploaded photo (profilephoto-get.md)."""
    return {"@odata.context": f"{base}/$metadata#users('{user_id}')/photo/$entity",
            "@odata.mediaContentType": "image/gif", "@odata.mediaEtag": "",
            "id": "1x1", "width": 1, "height": 1}
