"""The simulated tenant: validation of tenant files, immutable versions, delta diffs.

Pure data, no I/O. A `Snapshot` is one version of the tenant (users, groups,
membership). Every change (a `PUT /_sim/tenant`, a `PATCH`, `POST` or `DELETE`
of a user, a membership `$ref`) makes a new snapshot; unchanged user and group
dicts are shared between snapshots, so a diff can compare by identity first and
by value only when needed. Diffs are dict based and O(n).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

JSON = dict[str, Any]

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"

# What Graph returns for a user when no $select is given (v1.0 default set).
# Everything else (accountEnabled, department, onPremisesSyncEnabled, ...) must
# be asked for with $select, exactly as with real Graph.
DEFAULT_USER_PROPERTIES: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)

# Tenant-file keys of a user that are not Graph user properties.
USER_NON_PROPERTIES = frozenset({"calendars", "photo"})
# Tenant-file keys of a group that are not served as group properties.
GROUP_NON_PROPERTIES = frozenset({"members"})

_OPTIONAL_STRING_USER_FIELDS = (
    "mail",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "department",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "employeeId",
    "mailNickname",
)


class TenantFileError(ValueError):
    """A tenant file (or a `PUT /_sim/tenant` body) is not valid; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Photo:
    content_type: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One immutable version of the tenant (the calendars dict is shared and mutable)."""

    version: int
    organization: JSON
    users: Mapping[str, JSON]  # id -> Graph properties (no calendars/photo)
    groups: Mapping[str, JSON]  # id -> Graph properties (no members)
    members: Mapping[str, tuple[str, ...]]  # group id -> direct member ids
    upn_index: Mapping[str, str]  # lower-case UPN -> user id
    calendars: dict[str, list[JSON]]  # user id -> calendars (each with "events")
    photos: Mapping[str, Photo]  # user id -> photo

    def odata_type(self, object_id: str) -> str | None:
        if object_id in self.users:
            return USER_TYPE
        if object_id in self.groups:
            return GROUP_TYPE
        return None

    def find_user(self, id_or_upn: str) -> str | None:
        if id_or_upn in self.users:
            return id_or_upn
        return self.upn_index.get(id_or_upn.strip().lower())

    def transitive_members(self, group_id: str) -> list[str]:
        """Members of a group and of its nested groups, each once (cycles harmless)."""
        seen: set[str] = {group_id}
        out: list[str] = []
        stack = [group_id]
        while stack:
            gid = stack.pop(0)
            for member in self.members.get(gid, ()):
                if member in seen:
                    continue
                seen.add(member)
                out.append(member)
                if member in self.groups:
                    stack.append(member)
        return out

    def evolve(self, version: int, **changes: Any) -> Snapshot:
        return dataclasses.replace(self, version=version, **changes)


# ---------------------------------------------------------------- validation


def _fail(field: str, message: str) -> TenantFileError:
    return TenantFileError(f"tenant file: {field}: {message}")


def _req_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{where}.{key}", "required, must be a non-empty string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(f"{where}.{key}", "must be a string or null")


def _opt_bool(obj: Mapping[str, Any], key: str, where: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise _fail(f"{where}.{key}", "must be true, false or null")


_UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "Z", "GMT", "Coordinated Universal Time", "tzone://Microsoft/Utc"}
)
# Common Windows time zone names (what Outlook uses) → IANA.
_WINDOWS_ZONES = {
    "Pacific Standard Time": "America/Los_Angeles",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Eastern Standard Time": "America/New_York",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "FLE Standard Time": "Europe/Helsinki",
    "E. Europe Standard Time": "Europe/Chisinau",
    "India Standard Time": "Asia/Kolkata",
    "China Standard Time": "Asia/Shanghai",
    "Tokyo Standard Time": "Asia/Tokyo",
    "AUS Eastern Standard Time": "Australia/Sydney",
}


def _zone(name: Any, where: str) -> tzinfo:
    if name is None or name in _UTC_NAMES:
        return UTC
    if isinstance(name, str):
        try:
            return ZoneInfo(_WINDOWS_ZONES.get(name, name))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise _fail(f"{where}.timeZone", f"unknown time zone {name!r}")


def parse_graph_datetime(value: Any, where: str) -> datetime:
    """A Graph dateTimeTimeZone (`{"dateTime", "timeZone"}`) or ISO string, as aware UTC."""
    zone: tzinfo = UTC
    if isinstance(value, Mapping):
        text = value.get("dateTime")
        zone = _zone(value.get("timeZone", "UTC"), where)
    else:
        text = value
    if not isinstance(text, str):
        raise _fail(where, "must be a date-time string or {dateTime, timeZone}")
    try:
        parsed = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise _fail(where, f"not an ISO 8601 date-time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def event_for_output(event: Mapping[str, Any]) -> JSON:
    """An event as calendarView returns it without a Prefer outlook.timezone: times in UTC."""
    out = dict(event)
    for key in ("start", "end"):
        value = event.get(key)
        if isinstance(value, Mapping) and value.get("timeZone", "UTC") != "UTC":
            moment = parse_graph_datetime(value, key)
            out[key] = {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}
    return out


def _validate_calendars(value: Any, where: str) -> list[JSON]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "must be a list")
    out: list[JSON] = []
    seen: set[str] = set()
    for ci, cal in enumerate(value):
        cw = f"{where}[{ci}]"
        if not isinstance(cal, dict):
            raise _fail(cw, "must be an object")
        cid = _req_str(cal, "id", cw)
        if cid in seen:
            raise _fail(f"{cw}.id", f"duplicate calendar id {cid!r}")
        seen.add(cid)
        _opt_str(cal, "name", cw)
        _opt_bool(cal, "isDefaultCalendar", cw)
        _opt_bool(cal, "canEdit", cw)
        owner = cal.get("owner")  # a calendar shared with the user: the sharer
        if owner is not None and (not isinstance(owner, dict) or not all(
                isinstance(owner.get(k), str) for k in ("name", "address"))):
            raise _fail(f"{cw}.owner", "must be {\"name\": string, \"address\": string}")
        events = cal.get("events", [])
        if not isinstance(events, list):
            raise _fail(f"{cw}.events", "must be a list")
        checked: list[JSON] = []
        for ei, event in enumerate(events):
            ew = f"{cw}.events[{ei}]"
            if not isinstance(event, dict):
                raise _fail(ew, "must be an object")
            _req_str(event, "id", ew)
            start = parse_graph_datetime(event.get("start"), f"{ew}.start")
            end = parse_graph_datetime(event.get("end"), f"{ew}.end")
            if end < start:
                raise _fail(f"{ew}.end", "is before start")
            checked.append(dict(event))
        copy = dict(cal)
        copy["events"] = checked
        out.append(copy)
    return out


def _validate_photo(value: Any, where: str) -> Photo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(where, "must be an object or null")
    content_type = _req_str(value, "contentType", where)
    raw = value.get("base64")
    if not isinstance(raw, str):
        raise _fail(f"{where}.base64", "required, must be a base64 string")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"{where}.base64", "is not valid base64") from None
    return Photo(content_type, data)


def validate_user(raw: Any, where: str) -> tuple[JSON, list[JSON], Photo | None]:
    """One tenant-file user → (Graph properties, calendars, photo)."""
    if not isinstance(raw, dict):
        raise _fail(where, "must be an object")
    _req_str(raw, "id", where)
    upn = _req_str(raw, "userPrincipalName", where)
    if "@" not in upn:
        raise _fail(f"{where}.userPrincipalName", f"must look like name@domain, got {upn!r}")
    for key in _OPTIONAL_STRING_USER_FIELDS:
        _opt_str(raw, key, where)
    accepted = raw.get("accountEnabled", True)
    if not isinstance(accepted, bool):
        raise _fail(f"{where}.accountEnabled", "must be true or false")
    _opt_bool(raw, "onPremisesSyncEnabled", where)
    props = {k: v for k, v in raw.items() if k not in USER_NON_PROPERTIES}
    props["accountEnabled"] = accepted
    props.setdefault("businessPhones", [])
    calendars = _validate_calendars(raw.get("calendars"), f"{where}.calendars")
    photo = _validate_photo(raw.get("photo"), f"{where}.photo")
    return props, calendars, photo


def build_snapshot(tenant: Any, version: int = 1) -> Snapshot:
    """Validate a tenant file (parsed JSON) and build its snapshot; TenantFileError if bad."""
    if not isinstance(tenant, dict):
        raise TenantFileError("tenant file: must be a JSON object")
    unknown = set(tenant) - {"organization", "users", "groups"}
    if unknown:
        raise _fail(sorted(unknown)[0], "unknown top-level key")
    org = tenant.get("organization")
    if not isinstance(org, dict):
        raise _fail("organization", "required, must be an object")
    _req_str(org, "id", "organization")
    _opt_str(org, "displayName", "organization")
    _opt_bool(org, "onPremisesSyncEnabled", "organization")
    domains = org.get("verifiedDomains", [])
    if not isinstance(domains, list):
        raise _fail("organization.verifiedDomains", "must be a list")
    for di, dom in enumerate(domains):
        if not isinstance(dom, dict):
            raise _fail(f"organization.verifiedDomains[{di}]", "must be an object")
        _req_str(dom, "name", f"organization.verifiedDomains[{di}]")
    organization = dict(org)
    organization.setdefault("verifiedDomains", [])
    organization.setdefault("onPremisesSyncEnabled", None)

    raw_users = tenant.get("users", [])
    if not isinstance(raw_users, list):
        raise _fail("users", "must be a list")
    users: dict[str, JSON] = {}
    upns: dict[str, str] = {}
    calendars: dict[str, list[JSON]] = {}
    photos: dict[str, Photo] = {}
    for ui, raw in enumerate(raw_users):
        where = f"users[{ui}]"
        props, cals, photo = validate_user(raw, where)
        uid = props["id"]
        if uid in users:
            raise _fail(f"{where}.id", f"duplicate id {uid!r}")
        key = props["userPrincipalName"].strip().lower()
        if key in upns:
            upn_text = props["userPrincipalName"]
            raise _fail(f"{where}.userPrincipalName", f"duplicate UPN {upn_text!r}")
        users[uid] = props
        upns[key] = uid
        if "calendars" in raw:  # a user without the key has no (cloud) mailbox
            calendars[uid] = cals
        if photo is not None:
            photos[uid] = photo

    raw_groups = tenant.get("groups", [])
    if not isinstance(raw_groups, list):
        raise _fail("groups", "must be a list")
    groups: dict[str, JSON] = {}
    for gi, raw in enumerate(raw_groups):
        where = f"groups[{gi}]"
        if not isinstance(raw, dict):
            raise _fail(where, "must be an object")
        gid = _req_str(raw, "id", where)
        _req_str(raw, "displayName", where)
        if gid in groups or gid in users:
            raise _fail(f"{where}.id", f"duplicate id {gid!r}")
        groups[gid] = raw
    members: dict[str, tuple[str, ...]] = {}
    for gi, raw in enumerate(raw_groups):
        where = f"groups[{gi}].members"
        listed = raw.get("members", [])
        if not isinstance(listed, list):
            raise _fail(where, "must be a list of user or group ids")
        seen: set[str] = set()
        for mi, member in enumerate(listed):
            if not isinstance(member, str) or (member not in users and member not in groups):
                raise _fail(f"{where}[{mi}]", f"{member!r} is not the id of a user or group")
            if member in seen:
                raise _fail(f"{where}[{mi}]", f"duplicate member {member!r}")
            seen.add(member)
        members[raw["id"]] = tuple(listed)
    group_props = {
        gid: {k: v for k, v in raw.items() if k not in GROUP_NON_PROPERTIES}
        for gid, raw in groups.items()
    }
    return Snapshot(
        version=version,
        organization=organization,
        users=users,
        groups=group_props,
        members=members,
        upn_index=upns,
        calendars=calendars,
        photos=photos,
    )


def export_tenant(snap: Snapshot) -> JSON:
    """The snapshot as a tenant file (the inverse of `build_snapshot`)."""
    users: list[JSON] = []
    for uid, props in snap.users.items():
        entry = dict(props)
        if uid in snap.calendars:
            entry["calendars"] = [
                {**cal, "events": [dict(e) for e in cal["events"]]} for cal in snap.calendars[uid]
            ]
        photo = snap.photos.get(uid)
        if photo is not None:
            entry["photo"] = {
                "contentType": photo.content_type,
                "base64": base64.b64encode(photo.data).decode(),
            }
        users.append(entry)
    groups = [
        {**props, "members": list(snap.members.get(gid, ()))} for gid, props in snap.groups.items()
    ]
    return {"organization": dict(snap.organization), "users": users, "groups": groups}


# ---------------------------------------------------------------- rendering


def select_properties(
    props: Mapping[str, Any], select: Sequence[str] | None, defaults: Iterable[str] | None
) -> JSON:
    """Graph's `$select`: `id` always; a selected property the object lacks is null."""
    out: JSON = {"id": props["id"]}
    if select is None:
        if defaults is None:
            out.update(props)
            return out
        for key in defaults:
            out[key] = props.get(key)
        return out
    for key in select:
        if key != "id":
            out[key] = props.get(key)
    return out


def render_user(props: Mapping[str, Any], select: Sequence[str] | None) -> JSON:
    return select_properties(props, select, DEFAULT_USER_PROPERTIES)


def render_group(props: Mapping[str, Any], select: Sequence[str] | None) -> JSON:
    return select_properties(props, select, None)


def render_object(snap: Snapshot, object_id: str, select: Sequence[str] | None) -> JSON:
    """A directoryObject (user or group) with its `@odata.type`, as in member lists."""
    if object_id in snap.users:
        body = render_user(snap.users[object_id], select)
        return {"@odata.type": USER_TYPE, **body}
    body = render_group(snap.groups[object_id], select)
    return {"@odata.type": GROUP_TYPE, **body}


# ---------------------------------------------------------------- delta


@dataclasses.dataclass(frozen=True)
class Change:
    """One entry of a delta round."""

    id: str
    removed: bool = False
    added_members: tuple[tuple[str, str], ...] = ()  # (odata type, id)
    removed_members: tuple[tuple[str, str], ...] = ()


def user_changes(old: Snapshot | None, new: Snapshot) -> list[Change]:
    """Users added or changed since `old` (all users when None), then users removed."""
    if old is None:
        return [Change(uid) for uid in new.users]
    out: list[Change] = []
    before = old.users
    for uid, props in new.users.items():
        prev = before.get(uid)
        if prev is None or (prev is not props and prev != props):
            out.append(Change(uid))
    now = new.users
    out.extend(Change(uid, removed=True) for uid in before if uid not in now)
    return out


def _typed(snap: Snapshot, ids: Iterable[str], fallback: Snapshot | None = None) -> list[
    tuple[str, str]
]:
    out: list[tuple[str, str]] = []
    for mid in ids:
        kind = snap.odata_type(mid)
        if kind is None and fallback is not None:
            kind = fallback.odata_type(mid)
        out.append((kind or USER_TYPE, mid))
    return out


def group_changes(old: Snapshot | None, new: Snapshot) -> list[Change]:
    """Groups added or changed (properties or membership) since `old`, then groups removed."""
    out: list[Change] = []
    if old is None:
        for gid in new.groups:
            out.append(Change(gid, added_members=tuple(_typed(new, new.members.get(gid, ())))))
        return out
    for gid, props in new.groups.items():
        prev = old.groups.get(gid)
        now_members = new.members.get(gid, ())
        if prev is None:
            out.append(Change(gid, added_members=tuple(_typed(new, now_members))))
            continue
        was_members = old.members.get(gid, ())
        if was_members is now_members or was_members == now_members:
            if prev is not props and prev != props:
                out.append(Change(gid))
            continue
        was_set = set(was_members)
        now_set = set(now_members)
        added = [m for m in now_members if m not in was_set]
        gone = [m for m in was_members if m not in now_set]
        out.append(
            Change(
                gid,
                added_members=tuple(_typed(new, added)),
                removed_members=tuple(_typed(old, gone, new)),
            )
        )
    out.extend(Change(gid, removed=True) for gid in old.groups if gid not in new.groups)
    return out


def render_user_change(snap: Snapshot, change: Change, select: Sequence[str] | None) -> JSON:
    if change.removed:
        return {"id": change.id, "@removed": {"reason": "changed"}}
    return render_user(snap.users[change.id], select)


def render_group_change(snap: Snapshot, change: Change, select: Sequence[str] | None) -> JSON:
    if change.removed:
        return {"id": change.id, "@removed": {"reason": "deleted"}}
    props_select = None if select is None else [s for s in select if s != "members"]
    body = render_group(snap.groups[change.id], props_select)
    if select is None or "members" in select:
        delta: list[JSON] = [{"@odata.type": t, "id": mid} for t, mid in change.added_members]
        delta.extend(
            {"@odata.type": t, "id": mid, "@removed": {"reason": "deleted"}}
            for t, mid in change.removed_members
        )
        if delta:
            body["members@delta"] = delta
    return body


def event_in_window(event: Mapping[str, Any], start: datetime, end: datetime) -> bool:
    """calendarView semantics: the event overlaps [start, end)."""
    ev_start = parse_graph_datetime(event.get("start"), "event.start")
    ev_end = parse_graph_datetime(event.get("end"), "event.end")
    if ev_start == ev_end:
        return start <= ev_start < end
    return ev_start < end and ev_end > start
