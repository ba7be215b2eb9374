"""Read Entra (organization, users, groups with direct members).

A read is two steps: `read_changes` asks Graph for the organization (which must
be the configured tenant's) and one delta round of users and groups from the
previous mirror's delta links; `fold` applies that round to the previous mirror
(`shared.graph.mirror` describes the mirror). `read_entra` is exactly those two,
except when there is nothing to fold into: a first run, a changed tenant or an
expired delta link (HTTP 410) reads both resources in full instead (a delta round
without a token), which also yields fresh delta links. A caller may do the first
step itself and look at the round before it loads the previous mirror
(`shared.run.unchanged`), or read in full into its own appliers (`read_full`, how
`shared.run.entra_index` keeps the directory without a mirror).

Invariants:

- All or nothing: users and groups are read concurrently and both must
  succeed; any failure raises and no mirror is returned (R7).
- ``previous`` is never mutated (`shared.graph.mirror`).
- Bulk data is parsed with ``json.loads`` only, never into SDK models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from shared.graph import batch_get, delta, errors, middleware, mirror
from shared.graph import client as graph_client

# The reader's vocabulary, defined with the delta rounds (`shared.graph.delta`).
USER_FIELDS = delta.USER_FIELDS
USER_FIELD_INDEX = delta.USER_FIELD_INDEX
USERS_DELTA_PATH = delta.USERS_DELTA_PATH
GROUPS_DELTA_PATH = delta.GROUPS_DELTA_PATH
DEFAULT_PAGE_SIZE = delta.DEFAULT_PAGE_SIZE
MEMBER_TYPES = delta.MEMBER_TYPES
MIRROR_VERSION = mirror.MIRROR_VERSION
ORGANIZATION_PATH = "/organization?$select=id,onPremisesSyncEnabled,verifiedDomains"

FullReadReason = Literal["initial", "delta_expired", "tenant_changed"]
Json = dict[str, Any]


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
    users, groups = delta.Buffer(), delta.Buffer()
    with middleware.track() as stats:
        organization = await _organization(client, tenant_id)
        if reason is None and head is not None:
            links = head["deltaLinks"]
            try:
                await delta.pair(client, (delta.rebase(client, links["users"]),
                                          delta.rebase(client, links["groups"])),
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
    base = previous if previous is not None and mirror.usable(previous) else None
    if changes is None or not _same_tenant(changes.tenant_id, tenant_id):
        changes = await read_changes(client, base, tenant_id=tenant_id, page_size=page_size)
    if isinstance(changes, DeltaRound):
        if base is not None and _full_read_reason(base, tenant_id) is None:
            return fold(base, changes)
        reason: FullReadReason = _full_read_reason(base, tenant_id) or "initial"
    else:
        reason = changes.reason
    users, groups = mirror.Users({}, owned=True), mirror.Groups({}, owned=True)
    with middleware.track() as stats:
        await delta.pair(client, (USERS_DELTA_PATH, GROUPS_DELTA_PATH), page_size,
                         users, groups)
    return EntraRead(
        mirror=mirror.build(tenant_id, changes.organization, users, groups,
                            {"users": users.delta_link, "groups": groups.delta_link}),
        full_read=True,
        full_read_reason=reason,
        requests=changes.requests + stats.total_requests,
        throttled=changes.throttled + stats.throttled,
    )


@dataclass(frozen=True)
class FullRead:
    """What `read_full` read besides what its appliers took."""

    delta_links: dict[str, str]
    requests: int
    throttled: int


async def read_full(client: graph_client.GraphClient, *, users: delta.Applier,
                    groups: delta.Applier, groups_first: bool = False,
                    page_size: int = DEFAULT_PAGE_SIZE) -> FullRead:
    """Both resources in full (a delta round without a token), page by page into the
    given appliers; with `groups_first`, the groups are read before the users (so the
    users' applier may keep only the users the groups make relevant). Raises like
    `read_entra`; the appliers may then hold part of a round: drop them."""
    with middleware.track() as stats:
        if groups_first:
            await delta.round_(client, GROUPS_DELTA_PATH, page_size, groups)
            await delta.round_(client, USERS_DELTA_PATH, page_size, users)
        else:
            await delta.pair(client, (USERS_DELTA_PATH, GROUPS_DELTA_PATH), page_size,
                             users, groups)
    return FullRead({"users": users.delta_link, "groups": groups.delta_link},
                    stats.total_requests, stats.throttled)


@dataclass(frozen=True)
class UsersRead:
    """`read_users`: each user's USER_FIELDS values, None for a user that is gone."""

    users: dict[str, list[Any] | None]
    requests: int
    throttled: int


async def read_users(client: graph_client.GraphClient, ids: Sequence[str], *,
                     sleep: batch_get.Sleep = asyncio.sleep) -> UsersRead:
    """The USER_FIELDS of these users, 20 to a `$batch` (`GET /users/{id}`): for users a
    delta round says nothing of whose properties a caller does not hold (a user that
    joins a configured group and was not kept before). All or nothing, like the
    directory read it completes (R7): an answer other than 200 or 404 raises."""
    found: dict[str, list[Any] | None] = {}

    async def settle(user_id: str, response: dict[str, Any]) -> list[str] | None:
        status, body = response.get("status"), response.get("body")
        if status == 200 and isinstance(body, dict) and body.get("id") == user_id:
            found[user_id] = [body.get(f) for f in USER_FIELDS]
        elif status == 404:
            found[user_id] = None
        else:
            return None
        return []

    wanted = list(dict.fromkeys(ids))
    throttled = 0
    with middleware.track() as stats:
        for start in range(0, len(wanted), batch_get.BATCH_SIZE):
            throttled += await batch_get.get_each(
                client, wanted[start:start + batch_get.BATCH_SIZE],
                url=lambda user_id: f"/users/{quote(user_id, safe='')}?{delta.USER_SELECT}",
                settle=settle, sleep=sleep)
    return UsersRead(found, stats.total_requests, stats.throttled + throttled)


def fold(previous: Mapping[str, Any], changes: DeltaRound) -> EntraRead:
    """``previous`` (a usable mirror) with a delta round read from its links applied."""
    users = mirror.Users(previous["users"], owned=False)
    groups = mirror.Groups(previous["groups"], owned=False)
    users.apply(changes.users)
    groups.apply(changes.groups)
    return EntraRead(
        mirror=mirror.build(changes.tenant_id, changes.organization, users, groups,
                            dict(changes.delta_links)),
        full_read=False, full_read_reason=None,
        requests=changes.requests, throttled=changes.throttled)


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
    if head is None or not mirror.usable_head(head):
        return "initial"
    if not _same_tenant(str(head.get("tenantId", "")), tenant_id):
        return "tenant_changed"
    return None
