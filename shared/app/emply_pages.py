"""`GET /api/emply` a page at a time, so a 100,000-user Emply side is never held whole.

The first page holds `settings` and `roles`; each later page one section's entities
(`users`, then `employees`, `calendars`, `events`, `outboundEvents`), at most
`pageSize` of them, and `next` the cursor of the following page (None after the last).
The sections of all pages put together are the whole document (users and employees in
the store's order: by bucket, then id, not the one-shot export's id order). The pages
are read one after another, not from one snapshot: a write between two pages shows up
in the pages read after it.

The one-shot form (`emply-sync emply export`'s bytes) is kept for an Emply side of at
most `ONE_SHOT_MAX` users and employees together: above that `TooLarge` (the caller
answers 413, telling to page).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared.app import cursors
from shared.emply import gate
from shared.store import entities, protocols

ONE_SHOT_MAX = 20_000
"""Users plus employees up to which `GET /api/emply` answers the whole document at once
(about 8 MB of JSON; the function's memory holds it a few times over)."""
SECTIONS = ("users", "employees", "calendars", "events", "outboundEvents")
"""The sections after the first page, in page order."""


class TooLarge(Exception):
    """The Emply side is too large for the one-shot form."""


class BadCursor(ValueError):
    """A `next` cursor this service did not hand out."""


async def check_one_shot(store: protocols.SyncStore) -> None:
    """Raise `TooLarge` when the one-shot document would hold more than `ONE_SHOT_MAX`
    users and employees."""
    users = await entities.count_up_to(store, "users", ONE_SHOT_MAX)
    employees = await entities.count_up_to(store, "employees", ONE_SHOT_MAX - users) \
        if users <= ONE_SHOT_MAX else 0
    if users + employees > ONE_SHOT_MAX:
        raise TooLarge(f"the Emply side holds more than {ONE_SHOT_MAX} users and employees; "
                       "read it a page at a time: GET /api/emply?pageSize=1000, then each "
                       "page's next link")


def encode(section: str, inner: str | None) -> str:
    raw = json.dumps([section, inner]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[str, str | None]:
    try:
        section, inner = gate.parse_json(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError):  # gate.GateError is a ValueError
        raise BadCursor("next is not a cursor this service handed out") from None
    if section not in SECTIONS or not (inner is None or isinstance(inner, str)):
        raise BadCursor("next is not a cursor this service handed out")
    return section, inner


async def page(store: protocols.SyncStore, cursor: str | None, page_size: int) -> dict[str, Any]:
    """One page (see the module docstring): its sections and `next` (sealed cursors,
    `shared.app.cursors`)."""
    found = await _page(store, await cursors.unseal(store, cursor, "next"), page_size)
    found["next"] = await cursors.seal(store, found["next"])
    return found


async def _page(store: protocols.SyncStore, cursor: str | None, page_size: int
                ) -> dict[str, Any]:
    if cursor is None:
        settings = await entities.read(store, "settings", "")
        roles: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            found, after = await entities.page(store, "roles", page_size=1000, after=after,
                                               equals={}, linked=None)
            roles += [item for item, _etag in found]
            if after is None:
                break
        return {"settings": settings[0] if settings else None, "roles": roles,
                "next": encode(SECTIONS[0], None)}
    section, inner = decode(cursor)
    try:
        while True:
            found, inner = await entities.page(store, section, page_size=page_size,
                                               after=inner, equals={}, linked=None)
            if inner is not None:
                return {section: [item for item, _etag in found],
                        "next": encode(section, inner)}
            following = SECTIONS.index(section) + 1
            if found or following == len(SECTIONS):
                return {section: [item for item, _etag in found],
                        "next": encode(SECTIONS[following], None)
                        if following < len(SECTIONS) else None}
            section = SECTIONS[following]  # an empty section: no page of its own
    except entities.BadCursor:
        raise BadCursor("next is not a cursor this service handed out") from None

