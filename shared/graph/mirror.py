"""The Entra mirror: the directory as plain JSON, built from delta rounds.

The mirror is the shape `shared.graph.reader.read_entra` returns and the whole-plan
run works on::

    {"version": 2, "tenantId": str,
     "organization": {"id", "onPremisesSyncEnabled": bool, "verifiedDomains": [str]},
     "users": {id: [the USER_FIELDS' values, in that order]},
     "groups": {id: {"id", "displayName", "members": [direct member ids]}},
     "deltaLinks": {"users": url, "groups": url}}

Invariants:

- ``previous`` is never mutated. A new mirror shares the dicts of unchanged users and
  groups with it (copy-on-write: the outer dicts are copied only when a change arrives,
  a changed entry is replaced, never edited), so a no-change round over 100,000 users
  copies nothing. Treat mirrors as read-only.
- A user is a list of values, not a dict: at 100,000 users that is about 50 MB less for
  every run to hold and parse (version 1 mirrors held dicts; they are read again in
  full, once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.graph.delta import MEMBER_TYPES, USER_FIELDS

MIRROR_VERSION = 2
Json = dict[str, Any]


def build(tenant_id: str, organization: Json, users: Users, groups: Groups,
          delta_links: dict[str, str]) -> Json:
    """The mirror that `users` and `groups` (the appliers of a round) make."""
    return {
        "version": MIRROR_VERSION,
        "tenantId": tenant_id,
        "organization": organization,
        "users": users.users,
        "groups": groups.result(users.users),
        "deltaLinks": delta_links,
    }


def usable_head(head: Mapping[str, Any]) -> bool:
    """Whether `head` (a mirror, or one without users and groups) has this version and
    both delta links."""
    links = head.get("deltaLinks")
    return (
        head.get("version") == MIRROR_VERSION
        and isinstance(links, dict)
        and isinstance(links.get("users"), str)
        and isinstance(links.get("groups"), str)
    )


def usable(previous: Mapping[str, Any]) -> bool:
    """Whether `previous` is a whole mirror a round can be folded into."""
    users = previous.get("users")
    width = len(USER_FIELDS)
    return (
        usable_head(previous)
        and isinstance(users, dict)
        and all(isinstance(u, list) and len(u) == width for u in users.values())
        and isinstance(previous.get("groups"), dict)
    )


class Users:
    """Users delta, copy-on-write over the previous mirror's users."""

    def __init__(self, base: dict[str, list[Any]], *, owned: bool) -> None:
        self.delta_link = ""
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


class Groups:
    """Groups delta with ``members@delta``, copy-on-write over the previous groups.

    A group may arrive several times in one round (Graph splits a large
    member list over pages), so changes are gathered per group and the group
    dicts are built once, in :meth:`result`.
    """

    def __init__(self, base: dict[str, Json], *, owned: bool) -> None:
        self.delta_link = ""
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
