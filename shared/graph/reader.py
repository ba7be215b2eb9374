"""Read Entra (organization, users, groups with direct members) into a mirror.

The mirror is plain JSON, kept between runs (the caller stores it as a blob)::

    {"version": 2, "tenantId": str,
     "organization": {"id", "onPremisesSyncEnabled": bool, "verifiedDomains": [str]},
     "users": {id: [the USER_FIELDS' values, in that order]},
     "groups": {id: {"id", "displayName", "members": [direct member ids]}},
     "deltaLinks": {"users": url, "groups": url}}

A read is two steps: `read_changes` asks Graph for the organization (which must
be the configured tenant's) and one delta round of users and groups from the
previous mirror's delta links; `fold` applies that round to the previous mirror.
`read_entra` is exactly those two, except when there is nothing to fold into: a
first run, a changed tenant or an expired delta link (HTTP 410) reads both
resources in full instead (a delta round without a token), which also yields
fresh delta links. A caller may do the first step itself and look at the round
before it loads the previous mirror (`shared.run.unchanged`).

Invariants:

- All or nothing: users and groups are read concurrently and both must
  succeed; any failure raises and no mirror is returned (R7).
- ``previous`` is never mutated. The new mirror shares the dicts of unchanged
  users and groups with it (copy-on-write: the outer dicts are copied only
  when a change arrives, a changed entry is replaced, never edited), so a
  no-change round over 100,000 users copies nothing. Treat mirrors as
  read-only.
- Bulk data is parsed with ``json.loads`` only, never into SDK models.
- A user is a list of values, not a dict: at 100,000 users that is about 50 MB less
  for every run to hold and parse (version 1 mirrors held dicts; they are read again
  in full, once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from shared.graph import client as graph_client
from shared.graph import errors, middleware

MIRROR_VERSION = 2

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
USERS_DELTA_PATH = "/users/delta?$select=" + ",".join(USER_FIELDS)
USER_FIELD_INDEX = {name: index for index, name in enumerate(USER_FIELDS)}
GROUPS_DELTA_PATH = "/groups/delta?$select=displayName,members"
ORGANIZATION_PATH = "/organization?$select=id,onPremisesSyncEnabled,verifiedDomains"
DEFAULT_PAGE_SIZE = 999
# Direct members the mirror keeps (devices, contacts, service principals are dropped).
MEMBER_TYPES = frozenset({"#microsoft.graph.user", "#microsoft.graph.group"})

FullReadReason = Literal["initial", "delta_expired", "tenant_changed"]
Json = dict[str, Any]
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class EntraRead:
    """One read of Entra: the new mirror and how it was obtained."""

    mirror: Json
    full_read: bool
    full_read_reason: FullReadReason | None
    requests: int
    """HTTP exchanges with Graph during this read, retries included."""
    throttled: int
    """How many of them Graph answered 429."""


@dataclass(frozen=True)
class DeltaRound:
    """One incremental round of both delta queries, read but not yet folded into a mirror.

    It lets a caller look before it loads the previous mirror: when nothing changed
    (`empty`), a 100,000-user mirror need not be read back at all. Its items are held
    until folded; they are the changes only (a full read streams into a new mirror
    page by page instead).
    """

    tenant_id: str
    organization: Json
    users: list[Any]
    """The items of every /users/delta page, in order."""
    groups: list[Any]
    delta_links: dict[str, str]
    requests: int
    throttled: int

    @property
    def empty(self) -> bool:
        return not self.users and not self.groups


@dataclass(frozen=True)
class FullReadNeeded:
    """What `read_changes` found when only a full read will do, and why."""

    reason: FullReadReason
    tenant_id: str
    organization: Json
    requests: int
    throttled: int


Changes = DeltaRound | FullReadNeeded


async def read_changes(
    client: graph_client.GraphClient,
    head: Mapping[str, Any] | None,
    *,
    tenant_id: str,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Changes:
    """The changes since ``head`` (a mirror, or a mirror without its users and groups),
    or `FullReadNeeded` when there is nothing to read them from (no usable head,
    another tenant) or Graph no longer knows the delta links (HTTP 410).

    Raises like `read_entra`. Give the result to `read_entra` (``changes=``) to fold it
    into the previous mirror (or read in full) without asking Graph again.
    """
    reason = _full_read_reason(head, tenant_id)
    users, groups = _Buffer(), _Buffer()
    with middleware.track() as stats:
        organization = await _organization(client, tenant_id)
        if reason is None and head is not None:
            links = head["deltaLinks"]
            try:
                await _delta_pair(client, (_rebase(client, links["users"]),
                                           _rebase(client, links["groups"])),
                                  page_size, users, groups)
            except errors.DeltaExpired:
                reason = "delta_expired"
    if reason is not None:
        return FullReadNeeded(reason, tenant_id, organization, stats.total_requests,
                              stats.throttled)
    return DeltaRound(
        tenant_id=tenant_id,
        organization=organization,
        users=users.items,
        groups=groups.items,
        delta_links={"users": users.delta_link, "groups": groups.delta_link},
        requests=stats.total_requests,
        throttled=stats.throttled,
    )


async def read_entra(
    client: graph_client.GraphClient,
    previous: Mapping[str, Any] | None,
    *,
    tenant_id: str,
    page_size: int = DEFAULT_PAGE_SIZE,
    changes: Changes | None = None,
) -> EntraRead:
    """Read Entra into a new mirror: `read_changes` since ``previous``, folded into it
    (`fold`); or, when only that will do, both resources in full.

    With ``changes`` (from `read_changes` for this tenant and ``previous``'s delta
    links, e.g. by `shared.run.unchanged`) Graph is not asked for them again.

    Raises :class:`~shared.graph.errors.TenantMismatch` when the credentials
    reach another tenant than ``tenant_id``, and
    :class:`~shared.graph.errors.GraphReadError` when any read fails after
    retries. ``previous`` is never modified.
    """
    base = previous if previous is not None and _usable(previous) else None
    if changes is None or not _same_tenant(changes.tenant_id, tenant_id):
        changes = await read_changes(client, base, tenant_id=tenant_id, page_size=page_size)
    if isinstance(changes, DeltaRound):
        if base is not None and _full_read_reason(base, tenant_id) is None:
            return fold(base, changes)
        reason: FullReadReason = _full_read_reason(base, tenant_id) or "initial"
    else:
        reason = changes.reason
    users, groups = _Users({}, owned=True), _Groups({}, owned=True)
    with middleware.track() as stats:
        await _delta_pair(client, (USERS_DELTA_PATH, GROUPS_DELTA_PATH), page_size,
                          users, groups)
    return EntraRead(
        mirror=_mirror(tenant_id, changes.organization, users, groups,
                       {"users": users.delta_link, "groups": groups.delta_link}),
        full_read=True,
        full_read_reason=reason,
        requests=changes.requests + stats.total_requests,
        throttled=changes.throttled + stats.throttled,
    )


def fold(previous: Mapping[str, Any], changes: DeltaRound) -> EntraRead:
    """``previous`` (a usable mirror) with a delta round read from its links applied."""
    users = _Users(previous["users"], owned=False)
    groups = _Groups(previous["groups"], owned=False)
    users.apply(changes.users)
    groups.apply(changes.groups)
    return EntraRead(
        mirror=_mirror(changes.tenant_id, changes.organization, users, groups,
                       dict(changes.delta_links)),
        full_read=False, full_read_reason=None,
        requests=changes.requests, throttled=changes.throttled)


def _mirror(tenant_id: str, organization: Json, users: _Users, groups: _Groups,
            delta_links: dict[str, str]) -> Json:
    return {
        "version": MIRROR_VERSION,
        "tenantId": tenant_id,
        "organization": organization,
        "users": users.users,
        "groups": groups.result(users.users),
        "deltaLinks": delta_links,
    }


def _same_tenant(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


async def _organization(client: graph_client.GraphClient, tenant_id: str) -> Json:
    """The organization the credentials reach, which must be ``tenant_id``'s."""
    organization = await _read_organization(client)
    if not _same_tenant(organization["id"], tenant_id):
        raise errors.TenantMismatch(tenant_id, organization["id"])
    return organization


async def _read_organization(client: graph_client.GraphClient) -> Json:
    page = await client.get_json(ORGANIZATION_PATH)
    value = page.get("value")
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        raise errors.GraphReadError(
            "/organization", 200, "no_organization", "Graph returned no organization"
        )
    org = value[0]
    org_id = org.get("id")
    if not isinstance(org_id, str) or not org_id:
        raise errors.GraphReadError(
            "/organization", 200, "no_organization", "organization has no id"
        )
    domains = [
        d["name"]
        for d in org.get("verifiedDomains") or []
        if isinstance(d, dict) and isinstance(d.get("name"), str)
    ]
    return {
        "id": org_id,
        "onPremisesSyncEnabled": bool(org.get("onPremisesSyncEnabled")),
        "verifiedDomains": domains,
    }


async def read_organization(client: graph_client.GraphClient) -> Json:
    """The organization the credentials reach (id, onPremisesSyncEnabled, domains)."""
    return await _read_organization(client)


def _full_read_reason(head: Mapping[str, Any] | None, tenant_id: str) -> FullReadReason | None:
    if head is None or not _usable_head(head):
        return "initial"
    if not _same_tenant(str(head.get("tenantId", "")), tenant_id):
        return "tenant_changed"
    return None


def _usable_head(head: Mapping[str, Any]) -> bool:
    links = head.get("deltaLinks")
    return (
        head.get("version") == MIRROR_VERSION
        and isinstance(links, dict)
        and isinstance(links.get("users"), str)
        and isinstance(links.get("groups"), str)
    )


def _usable(previous: Mapping[str, Any]) -> bool:
    links = previous.get("deltaLinks")
    users = previous.get("users")
    width = len(USER_FIELDS)
    return (
        previous.get("version") == MIRROR_VERSION
        and isinstance(users, dict)
        and all(isinstance(u, list) and len(u) == width for u in users.values())
        and isinstance(previous.get("groups"), dict)
        and isinstance(links, dict)
        and isinstance(links.get("users"), str)
        and isinstance(links.get("groups"), str)
    )


async def _delta_pair(
    client: graph_client.GraphClient, starts: tuple[str, str], page_size: int,
    users: _Applier, groups: _Applier,
) -> None:
    """One delta round of users and of groups, from ``starts``, concurrently."""
    await _both(_delta_round(client, starts[0], page_size, users),
                _delta_round(client, starts[1], page_size, groups))


def _rebase(client: graph_client.GraphClient, link: str) -> str:
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


async def _both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
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


class _Applier(Protocol):
    """Folds one page of a delta round into a mirror being built."""

    delta_link: str = ""

    def apply(self, items: Iterable[Any]) -> None: ...


async def _delta_round(
    client: graph_client.GraphClient, start: str, page_size: int, applier: _Applier
) -> None:
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


class _Buffer(_Applier):
    """Keeps a round's items for later (`read_changes`)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def apply(self, items: Iterable[Any]) -> None:
        self.items.extend(items)


class _Users(_Applier):
    """Users delta, copy-on-write over the previous mirror's users."""

    def __init__(self, base: dict[str, list[Any]], *, owned: bool) -> None:
        self.users = base
        self._owned = owned

    def _own(self) -> dict[str, list[Any]]:
        if not self._owned:
            self.users = dict(self.users)
            self._owned = True
        return self.users

    def apply(self, items: Iterable[Any]) -> None:
        fields = USER_FIELDS
        for item in items:
            user_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(user_id, str):
                continue
            if "@removed" in item:
                # "changed" (soft-deleted) and "deleted" alike: the user no longer exists.
                if user_id in self.users:
                    del self._own()[user_id]
                continue
            old = self.users.get(user_id)
            if old is None:
                self._own()[user_id] = [item.get(f) for f in fields]
                continue
            new = [item.get(f, value) for f, value in zip(fields, old, strict=True)]
            if new != old:
                self._own()[user_id] = new


class _Groups(_Applier):
    """Groups delta with ``members@delta``, copy-on-write over the previous groups.

    A group may arrive several times in one round (Graph splits a large
    member list over pages), so changes are gathered per group and the group
    dicts are built once, in :meth:`result`.
    """

    def __init__(self, base: dict[str, Json], *, owned: bool) -> None:
        self._base = base
        self._owned = owned
        # id -> (displayName, members as an ordered set), or None once removed.
        self._touched: dict[str, tuple[Any, dict[str, None]] | None] = {}

    def apply(self, items: Iterable[Any]) -> None:
        for item in items:
            group_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(group_id, str):
                continue
            if "@removed" in item:
                self._touched[group_id] = None
                continue
            state = self._state(group_id)
            name, members = state
            if "displayName" in item:
                name = item["displayName"]
            for member in item.get("members@delta") or ():
                if not isinstance(member, dict) or not isinstance(member.get("id"), str):
                    continue
                kind = member.get("@odata.type")
                if kind is not None and kind not in MEMBER_TYPES:
                    continue
                if "@removed" in member:
                    members.pop(member["id"], None)
                else:
                    members[member["id"]] = None
            self._touched[group_id] = (name, members)

    def _state(self, group_id: str) -> tuple[Any, dict[str, None]]:
        if group_id in self._touched:
            state = self._touched[group_id]
            if state is not None:
                return state
            return (None, {})  # removed earlier in this round, now back: start empty
        old = self._base.get(group_id)
        if old is None:
            return (None, {})
        return (old.get("displayName"), dict.fromkeys(old.get("members") or ()))

    def result(self, users: Mapping[str, list[Any]]) -> dict[str, Json]:
        """The groups after this round; a changed group's members are the very id
        strings of `users` where they are users (one copy of each id in memory)."""
        if not self._touched:
            return self._base
        groups = self._base if self._owned else dict(self._base)
        for group_id, state in self._touched.items():
            if state is None:
                groups.pop(group_id, None)
                continue
            name, members = state
            old = groups.get(group_id)
            new = {"id": group_id, "displayName": name,
                   "members": [u[0] if (u := users.get(m)) is not None else m for m in members]}
            if old != new:
                groups[group_id] = new
        return groups
