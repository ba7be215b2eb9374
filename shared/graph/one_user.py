"""One user read directly from Graph, not through delta: an on-demand run's reads.

A run reads the directory through delta and moves its delta links; an on-demand run
(`shared.run.on_demand`) must leave them where they are, so it asks Graph for the few
objects it needs by id: the organization, the user (by object id or UPN, or by mail),
its memberships (`/users/{id}/transitiveMemberOf`: groups it is in directly or through
nested groups), the configured groups it is not in (do they still exist?) and whether
a few other users exist. Each is one request or a short paged list; a failure raises as
the reader's do (R7: nothing is applied), except 404, which is an answer here (the
object does not exist).

`view` puts what was read in the mirror's shape (`shared.graph.reader`), so the run's
steps and the planner see a one-user directory exactly as they see the whole one: the
user's configured groups each hold it as a direct member, which is what R2 asks of
nested membership too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from shared.graph import client as graph_client
from shared.graph import errors, reader

Json = dict[str, Any]
USER_SELECT = "$select=" + ",".join(reader.USER_FIELDS)
GROUP_TYPE = "#microsoft.graph.group"
PAGE_LIMIT = 50
"""Membership pages followed at most (999 groups each): a loop past it is a read error."""


async def organization(client: graph_client.GraphClient, tenant_id: str) -> Json:
    """The organization the credentials reach; `TenantMismatch` when it is not the
    configured tenant's (nothing else is read then)."""
    org = await reader.read_organization(client)
    if org["id"].strip().lower() != tenant_id.strip().lower():
        raise errors.TenantMismatch(tenant_id, org["id"])
    return org


async def user(client: graph_client.GraphClient, id_or_upn: str) -> Json | None:
    """The user with this object id or UPN; None when Graph knows none (404)."""
    if not id_or_upn.strip():
        return None
    try:
        found = await client.get_json(f"/users/{quote(id_or_upn.strip(), safe='@')}?"
                                      f"{USER_SELECT}")
    except errors.GraphReadError as exc:
        if exc.status in (400, 404):  # 400: not a key Graph takes (so no such user)
            return None
        raise
    return found if isinstance(found.get("id"), str) else None


async def users_with_mail(client: graph_client.GraphClient, mail: str) -> list[Json]:
    """The users whose `mail` is this address (a default query: `mail` supports `eq`)."""
    literal = quote(mail.strip().replace("'", "''"), safe="@")
    page = await client.get_json(f"/users?$filter=mail%20eq%20'{literal}'&{USER_SELECT}")
    value = page.get("value")
    if not isinstance(value, list):
        raise errors.GraphReadError("/users", 200, "invalid_page", "page has no value array")
    return [u for u in value if isinstance(u, dict) and isinstance(u.get("id"), str)]


async def by_address(client: graph_client.GraphClient, address: str) -> list[Json]:
    """The users that answer to an address: as UPN, then as mail (R3 compares both)."""
    as_upn, as_mail = await asyncio.gather(user(client, address),
                                           users_with_mail(client, address))
    found = [as_upn] if as_upn is not None else []
    return found + [u for u in as_mail if as_upn is None or u["id"] != as_upn["id"]]


async def member_groups(client: graph_client.GraphClient, user_id: str) -> dict[str, Any]:
    """The groups `user_id` is in, directly or through nested groups: id → displayName.
    No OData cast: a cast needs `ConsistencyLevel: eventual`, whose index may lag."""
    url = (f"/users/{quote(user_id, safe='')}/transitiveMemberOf"
           "?$select=id,displayName&$top=999")
    groups: dict[str, Any] = {}
    for _page in range(PAGE_LIMIT):
        page = await client.get_json(url)
        value = page.get("value")
        if not isinstance(value, list):
            raise errors.GraphReadError(client.endpoint(url), 200, "invalid_page",
                                        "page has no value array")
        for item in value:
            if isinstance(item, dict) and item.get("@odata.type", GROUP_TYPE) == GROUP_TYPE \
                    and isinstance(item.get("id"), str):
                groups[item["id"]] = item.get("displayName")
        next_link = page.get("@odata.nextLink")
        if not isinstance(next_link, str) or not next_link:
            return groups
        url = next_link
    raise errors.GraphReadError(client.endpoint(url), 200, "paging_loop",
                                f"more than {PAGE_LIMIT} pages of memberships")


async def groups(client: graph_client.GraphClient, group_ids: Iterable[str]
                 ) -> dict[str, Any]:
    """The groups among `group_ids` that exist: id → displayName."""
    async def one(group_id: str) -> tuple[str, Any] | None:
        try:
            found = await client.get_json(
                f"/groups/{quote(group_id, safe='')}?$select=id,displayName")
        except errors.GraphReadError as exc:
            if exc.status in (400, 404):
                return None
            raise
        return group_id, found.get("displayName")

    answers = await asyncio.gather(*(one(g) for g in group_ids))
    return dict(a for a in answers if a is not None)


async def existing(client: graph_client.GraphClient, user_ids: Iterable[str]) -> list[Json]:
    """The users among `user_ids` that exist."""
    answers = await asyncio.gather(*(user(client, u) for u in user_ids))
    return [a for a in answers if a is not None]


def view(tenant_id: str, org: Json, users: Sequence[Json],
         memberships: Mapping[str, Mapping[str, Any]],
         configured: Mapping[str, Any]) -> Json:
    """A mirror (`shared.graph.reader`'s shape, without delta links) of `users` and the
    configured groups that exist (`configured`: id → displayName): each configured group
    holds the users that are in it, directly or nested (`memberships`)."""
    rows = {u["id"]: [u.get(f) for f in reader.USER_FIELDS] for u in users}
    groups_out: Json = {}
    for group_id, name in configured.items():
        members = [u for u in rows if group_id in memberships.get(u, {})]
        groups_out[group_id] = {"id": group_id, "displayName": name, "members": members}
    return {"version": reader.MIRROR_VERSION, "tenantId": tenant_id, "organization": org,
            "users": rows, "groups": groups_out, "deltaLinks": {}}
