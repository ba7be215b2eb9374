"""Directory writes: users (POST, PATCH, DELETE), deletedItems, group member `$ref`s.

Every accepted write installs a new snapshot version (`sim.next_version`), which
is what delta reports next; a PATCH that changes nothing makes no version. The
checks mirror Graph's: userPrincipalName and mailNickname are unique (case-insensitive),
the userPrincipalName is in a verified domain, a new user's password meets Entra's
complexity rule; users synced from on-premises (`onPremisesSyncEnabled: true`)
cannot be changed or deleted; a deleted user keeps its id and can be restored
while its userPrincipalName is still free. A userPrincipalName written by POST or PATCH
must be `alias@domain` whose alias holds only the characters api/user-post-users.md
allows (`A-Z a-z 0-9 ' . - _ ! # ^ ~`, no accents): otherwise 400
`Request_BadRequest` "Property userPrincipalName is invalid.", the answer real tenants
give (microsoftgraph/microsoft-graph-docs-contrib issue 7106). Privileged users and the
write quota are in `graph_simulator.quirks`.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graph_simulator import odata
from graph_simulator.directory import group_id, user_id
from graph_simulator.protocol import (
    UPN_TAKEN_MESSAGE,
    GraphError,
    Req,
    Resp,
    bad_request,
    body_object,
    not_found,
    now,
    require,
)
from graph_simulator.tenant import (
    JSON,
    USER_TYPE,
    TenantFileError,
    render_user,
    validate_user,
)

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

NICKNAME_TAKEN_MESSAGE = (
    "Another object with the same value for property mailNickname already exists."
)
PASSWORD_MESSAGE = (
    "The specified password does not comply with password complexity requirements. "
    "Please provide a different password."
)
UPN_INVALID_MESSAGE = "Property userPrincipalName is invalid."
UPN_ALIAS_CHARACTERS = frozenset(string.ascii_letters + string.digits + "'.-_!#^~")
HYBRID_MESSAGE = (
    "Unable to update the specified properties for on-premises mastered Directory Sync "
    "objects or objects currently undergoing migration."
)


def _upn_key(props: Mapping[str, Any]) -> str:
    return str(props["userPrincipalName"]).strip().lower()


def _forbid_hybrid(sim: Simulator, uid: str) -> None:
    if sim.current.users[uid].get("onPremisesSyncEnabled") is True:
        raise GraphError(400, "Request_BadRequest", HYBRID_MESSAGE)


def _check_upn_free(sim: Simulator, key: str) -> None:
    if key in sim.current.upn_index:
        raise bad_request(UPN_TAKEN_MESSAGE)


def _check_upn_syntax(upn: str) -> None:
    alias, at, domain = upn.rpartition("@")
    if not at or not alias or not domain or not set(alias) <= UPN_ALIAS_CHARACTERS:
        raise bad_request(UPN_INVALID_MESSAGE)


def _check_upn_domain(sim: Simulator, upn: str) -> None:
    domains = [
        str(d.get("name", "")).lower()
        for d in sim.current.organization.get("verifiedDomains", [])
        if isinstance(d, dict)
    ]
    domain = upn.rpartition("@")[2].lower()
    if domains and domain not in domains:
        raise bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use "
            "one of the verified domain names in your organization."
        )


def _check_nickname_free(sim: Simulator, nickname: str) -> None:
    wanted = nickname.strip().lower()
    for props in sim.current.users.values():
        if str(props.get("mailNickname") or "").strip().lower() == wanted:
            raise bad_request(NICKNAME_TAKEN_MESSAGE)


def _check_password(password: Any) -> str:
    """Entra's rule for a cloud user's password: 8 to 256 characters, three of the four
    classes (lower case, upper case, digits, symbols)."""
    if not isinstance(password, str) or not password:
        raise bad_request(
            "Invalid value specified for property 'passwordProfile' of resource 'User'.")
    classes = sum((
        any(c.islower() for c in password), any(c.isupper() for c in password),
        any(c.isdigit() for c in password), any(not c.isalnum() for c in password)))
    if not 8 <= len(password) <= 256 or classes < 3:
        raise bad_request(PASSWORD_MESSAGE)
    return password


def _validated(raw: JSON) -> JSON:
    """The user's properties as the tenant file would store them, or a 400."""
    try:
        props, _, _ = validate_user(raw, "user")
    except TenantFileError as err:
        raise bad_request(f"Invalid value: {err}") from None
    return props


def patch_user(sim: Simulator, req: Req) -> Resp:
    uid = user_id(sim, req)
    body = body_object(req)
    _forbid_hybrid(sim, uid)
    for key in ("id", "calendars", "photo", "@odata.type"):
        if key in body:
            raise bad_request(f"Property '{key}' is read-only and cannot be set.")
    old = sim.current.users[uid]
    props = _validated({**old, **{k: v for k, v in body.items() if k != "passwordProfile"}})
    upn_index = sim.current.upn_index
    old_key, new_key = _upn_key(old), _upn_key(props)
    if new_key != old_key:
        _check_upn_syntax(props["userPrincipalName"])
        _check_upn_free(sim, new_key)
        _check_upn_domain(sim, props["userPrincipalName"])
        upn_index = {k: v for k, v in upn_index.items() if k != old_key}
        upn_index[new_key] = uid
    if props != old:
        users = dict(sim.current.users)
        users[uid] = props
        sim.next_version(users=users, upn_index=upn_index)
    return Resp(204)


def create_user(sim: Simulator, req: Req) -> Resp:
    body = body_object(req)
    for key in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName",
                "passwordProfile"):
        if body.get(key) in (None, ""):
            raise bad_request(f"Invalid value specified for property '{key}' of resource 'User'.")
    profile = body["passwordProfile"]
    if not isinstance(profile, dict):
        raise bad_request(
            "Invalid value specified for property 'passwordProfile' of resource 'User'."
        )
    password = _check_password(profile.get("password"))
    for key in ("calendars", "photo"):
        if key in body:
            raise bad_request(f"Property '{key}' is not a user property.")
    uid = str(uuid.uuid4())
    # The password is never stored with the user nor served: the simulator never signs
    # anyone in. Tests read `sim.received_passwords` to prove the sync kept no copy.
    raw = {k: v for k, v in body.items() if k not in ("passwordProfile", "id")}
    raw["id"] = uid
    raw.setdefault("mail", None)
    raw.setdefault("onPremisesSyncEnabled", None)
    raw.setdefault("createdDateTime", now())
    props = _validated(raw)
    key = _upn_key(props)
    _check_upn_syntax(props["userPrincipalName"])
    _check_upn_free(sim, key)
    _check_upn_domain(sim, props["userPrincipalName"])
    _check_nickname_free(sim, props["mailNickname"])
    sim.received_passwords.append(password)
    sim.next_version(
        users={**sim.current.users, uid: props},
        upn_index={**sim.current.upn_index, key: uid},
    )
    return Resp(201, {"@odata.context": odata.context(req, "users/$entity", None), **props})


def delete_user(sim: Simulator, req: Req) -> Resp:
    """Remove the user and its memberships; `sim.install` files it under deletedItems."""
    uid = user_id(sim, req)
    _forbid_hybrid(sim, uid)
    snap = sim.current
    users = {k: v for k, v in snap.users.items() if k != uid}
    upn_index = {k: v for k, v in snap.upn_index.items() if v != uid}
    members = {
        gid: (tuple(m for m in ids if m != uid) if uid in ids else ids)
        for gid, ids in snap.members.items()
    }
    sim.next_version(users=users, upn_index=upn_index, members=members)
    return Resp(204)


# ------------------------------------------------------------ deletedItems


def _render_deleted(item: Mapping[str, Any], select: Sequence[str] | None) -> JSON:
    body = render_user(item, select)
    body["deletedDateTime"] = item.get("deletedDateTime")
    return {"@odata.type": USER_TYPE, **body}


def _deleted_item(sim: Simulator, req: Req) -> JSON:
    return require(sim.deleted_items.get(req.params["id"]), req.params["id"])


def list_deleted_users(sim: Simulator, req: Req) -> Resp:
    select = odata.select(req)
    # Prefer sizes the page here but is not echoed in Preference-Applied.
    size, _ = odata.page_size(req, odata.DEFAULT_LIST_PAGE)
    page, next_link = odata.offset_page(
        req, list(sim.deleted_items), "deleted", size, "Directory_InvalidSkipToken"
    )
    body: JSON = {
        "@odata.context": odata.context(req, "directoryObjects", select),
        "value": [_render_deleted(sim.deleted_items[uid], select) for uid in page],
    }
    if next_link is not None:
        body["@odata.nextLink"] = next_link
    return Resp(200, body)


def _deleted_entity(req: Req, select: Sequence[str] | None, props: JSON) -> Resp:
    return Resp(200, {
        "@odata.context": odata.context(req, "directoryObjects/$entity", select),
        "@odata.type": USER_TYPE,
        **props,
    })


def get_deleted_item(sim: Simulator, req: Req) -> Resp:
    item = _deleted_item(sim, req)
    select = odata.select(req)
    return _deleted_entity(req, select, _render_deleted(item, select))


def restore_deleted_item(sim: Simulator, req: Req) -> Resp:
    item = _deleted_item(sim, req)
    props = {k: v for k, v in item.items() if k != "deletedDateTime"}
    key = _upn_key(props)
    _check_upn_free(sim, key)
    uid = props["id"]
    sim.next_version(
        users={**sim.current.users, uid: props},
        upn_index={**sim.current.upn_index, key: uid},
    )
    return _deleted_entity(req, None, props)


# ------------------------------------------------------------ group members


def add_member(sim: Simulator, req: Req) -> Resp:
    gid = group_id(sim, req)
    snap = sim.current
    ref = body_object(req).get("@odata.id")
    if not isinstance(ref, str) or not ref.strip("/"):
        raise bad_request("Missing '@odata.id' in the request body.", "BadRequest")
    # Accept both `.../directoryObjects/{id}` and `.../directoryObjects('{id}')`.
    mid = ref.rstrip("/").rsplit("/", 1)[-1]
    mid = mid.removeprefix("directoryObjects('").removesuffix("')")
    if snap.odata_type(mid) is None:
        raise not_found(mid)
    if mid in snap.members.get(gid, ()):
        raise bad_request(
            "One or more added object references already exist for the following modified "
            "properties: 'members'."
        )
    members = dict(snap.members)
    members[gid] = (*snap.members.get(gid, ()), mid)
    sim.next_version(members=members)
    return Resp(204)


def remove_member(sim: Simulator, req: Req) -> Resp:
    gid, mid = group_id(sim, req), req.params["mid"]
    snap = sim.current
    if mid not in snap.members.get(gid, ()):
        raise not_found(mid)
    members = dict(snap.members)
    members[gid] = tuple(m for m in snap.members[gid] if m != mid)
    sim.next_version(members=members)
    return Resp(204)
