"""`GET/PUT /api/roles`: the whole list of roles at once, with one ETag for the list.

A PUT is checked as the import checks a `roles` section (`shared.emply.document`, the same
schema and messages), then against what the stored Emply side still references: a role
named by `settings.defaultRoleId`, a settings group's `roleId` or a user's `roles`
cannot be removed (the problem names the role and who references it; nothing is
written). The list's ETag is derived from its entities' own ETags, so any change to a
role, by anyone, changes it; `If-Match` is checked first and the writes are then
conditional on each role's ETag (a change in between is a 412 too).
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.emply import checks as emply_checks
from shared.emply import document as emply_doc
from shared.emply.document import DocumentError
from shared.store import entities, protocols

MAX_ROLES = emply_doc.MAX_ROLES
"""Roles in one PUT: the limit every import shares (`shared.emply.document`)."""


async def _stored(store: protocols.SyncStore) -> tuple[list[dict[str, Any]], dict[str, str]]:
    roles: list[dict[str, Any]] = []
    etags: dict[str, str] = {}
    after: str | None = None
    while True:
        found, after = await entities.page(store, "roles", page_size=1000, after=after,
                                           equals={}, linked=None)
        for item, etag in found:
            roles.append(item)
            etags[str(item["id"])] = etag
        if after is None:
            return roles, etags


def list_etag(etags: dict[str, str]) -> str:
    digest = hashlib.sha256("\n".join(f"{k}\t{v}" for k, v in sorted(etags.items()))
                            .encode()).hexdigest()[:32]
    return f'"roles-{digest}"'


async def get_roles(store: protocols.SyncStore) -> tuple[list[dict[str, Any]], str]:
    """Every role, and the list's ETag."""
    roles, etags = await _stored(store)
    return roles, list_etag(etags)


async def put_roles(store: protocols.SyncStore, body: object,
                    if_match: str | None) -> tuple[list[dict[str, Any]], str]:
    """Replace the list of roles with `body` (`{"roles": [...]}`); returns the list
    written and its new ETag. Raises `DocumentError` (nothing written) or
    `entities.PreconditionFailed` (412)."""
    if not isinstance(body, dict):
        raise DocumentError("body", "expected a JSON object")
    unknown = [k for k in body if k != "roles"]
    if unknown:
        raise DocumentError.of([(str(k)[:40], "unknown field; allowed: roles")
                                for k in unknown[:5]])
    if "roles" not in body:
        raise DocumentError("roles", "required field missing")
    validated = emply_doc.validate_document({"roles": body["roles"]})
    clean: list[dict[str, Any]] = validated["roles"]
    problems = entities.table_problems(validated)
    if problems:
        raise DocumentError.of(problems)
    stored, etags = await _stored(store)
    if if_match is not None and if_match not in (entities.ANY, list_etag(etags)):
        raise entities.PreconditionFailed("roles changed since they were read")
    kept = {str(r["id"]) for r in clean}
    removed = [str(r["id"]) for r in stored if str(r["id"]) not in kept]
    if removed:
        await _refuse_referenced(store, set(removed))
    await entities.replace_all(store, "roles", clean, etags, removed)
    _roles, new_etags = await _stored(store)
    return clean, list_etag(new_etags)


async def _refuse_referenced(store: protocols.SyncStore, removed: set[str]) -> None:
    """A removed role still referenced by the settings or a user: a `DocumentError`
    naming the role and where it is referenced (as the import's reference check does)."""
    problems: list[tuple[str, str]] = []
    found = await entities.read(store, "settings", "")
    if found is not None:
        settings = found[0]
        if settings.get("defaultRoleId") in removed:
            problems.append(("roles", f"role {emply_checks.show(settings['defaultRoleId'])} is "
                             "settings.defaultRoleId; change the settings first"))
        for i, group in enumerate(settings.get("groups") or ()):
            if group.get("roleId") in removed:
                problems.append(("roles", f"role {emply_checks.show(group['roleId'])} is "
                                 f"settings.groups[{i}].roleId; change the settings first"))
    held = await entities.role_references(store)
    for role in sorted(removed):
        users = held.get(role)
        if users:
            sample = ", ".join(emply_checks.show(u) for u in sorted(users)[:3])
            problems.append(("roles", f"role {emply_checks.show(role)} is held by "
                             f"{len(users)} user(s) ({sample}"
                             f"{', ...' if len(users) > 3 else ''}); take it from them "
                             "first"))
    if problems:
        raise DocumentError.of(problems)
