"""Delta rounds of `/users/delta` and `/groups/delta`: what is asked for, and the paging.

A round follows `@odata.nextLink` from a start (a path without a token for a full read,
or a stored `@odata.deltaLink`) to the round's new `@odata.deltaLink`, handing each
page's items to an `Applier` as it arrives: what a caller does with them (fold them into
a mirror, keep them for later, write them to an index) is the applier's business, so a
full read of 100,000 users never holds more than a page of raw items.

Invariants:

- Bulk data is parsed with ``json.loads`` only, never into SDK models.
- A round either ends with a delta link or raises (`errors.GraphReadError`, or
  `errors.DeltaExpired` for a link Graph no longer knows): an applier may have seen
  some pages of a round that failed, so its caller drops what it built (R7).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from shared.graph import client as graph_client
from shared.graph import errors

USER_FIELDS: tuple[str, ...] = (
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "accountEnabled",
    "onPremisesSyncEnabled",
    "jobTitle",
    "department",
    "mobilePhone",
)
"""The user properties read (a mirror holds a user as these values, in this order)."""
USER_SELECT = "$select=" + ",".join(USER_FIELDS)
USERS_DELTA_PATH = "/users/delta?" + USER_SELECT
USER_FIELD_INDEX = {name: index for index, name in enumerate(USER_FIELDS)}
GROUPS_DELTA_PATH = "/groups/delta?$select=displayName,members"
DEFAULT_PAGE_SIZE = 999
MEMBER_TYPES = frozenset({"#microsoft.graph.user", "#microsoft.graph.group"})
"""Direct members a mirror keeps (devices, contacts, service principals are dropped)."""

T = TypeVar("T")
U = TypeVar("U")


class Applier(Protocol):
    """Takes the items of a delta round, a page at a time."""

    delta_link: str

    def apply(self, items: Iterable[Any]) -> None: ...


class Buffer:
    """Keeps a round's items for later (`reader.read_changes`)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.delta_link = ""

    def apply(self, items: Iterable[Any]) -> None:
        self.items.extend(items)


async def pair(client: graph_client.GraphClient, starts: tuple[str, str], page_size: int,
               users: Applier, groups: Applier) -> None:
    """One delta round of users and of groups, from ``starts``, concurrently."""
    await both(round_(client, starts[0], page_size, users),
               round_(client, starts[1], page_size, groups))


def rebase(client: graph_client.GraphClient, link: str) -> str:
    """A stored delta link on the current Graph base URL.

    The link was issued by the Graph URL of an earlier run; if that URL has
    changed (another simulator port, a moved endpoint) the token is sent to
    the current one, which answers 410 when it does not know it: a full read.
    """
    parts = urlsplit(link)
    prefix = client.base_path + "/"
    if not parts.scheme or not parts.path.startswith(prefix):
        return link
    query = f"?{parts.query}" if parts.query else ""
    return client.graph_url + parts.path[len(client.base_path) :] + query


async def both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Run both; on the first failure cancel the other and raise that failure."""
    task1 = asyncio.ensure_future(first)
    task2 = asyncio.ensure_future(second)
    try:
        return await asyncio.gather(task1, task2)
    except BaseException:
        for task in (task1, task2):
            task.cancel()
        await asyncio.gather(task1, task2, return_exceptions=True)
        raise


async def round_(client: graph_client.GraphClient, start: str, page_size: int,
                 applier: Applier) -> None:
    """Follow ``@odata.nextLink`` from ``start`` to the ``@odata.deltaLink``."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    url = start
    seen: set[str] = set()
    while True:
        seen.add(url)
        page = await client.get_json(url, headers=headers)
        value = page.get("value")
        if not isinstance(value, list):
            raise errors.GraphReadError(
                client.endpoint(url), 200, "invalid_page", "page has no value array"
            )
        applier.apply(value)
        next_link = page.get("@odata.nextLink")
        if isinstance(next_link, str) and next_link:
            if next_link in seen:
                raise errors.GraphReadError(
                    client.endpoint(url), 200, "paging_loop", "nextLink repeats an earlier page"
                )
            url = next_link
            continue
        delta_link = page.get("@odata.deltaLink")
        if not isinstance(delta_link, str) or not delta_link:
            raise errors.GraphReadError(
                client.endpoint(url),
                200,
                "missing_delta_link",
                "the last page has neither @odata.nextLink nor @odata.deltaLink",
            )
        applier.delta_link = delta_link
        return
