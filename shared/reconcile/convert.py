"""From the stored shapes (Entra mirror, Emply document) to the planner's snapshots.

Both inputs have been validated where they came in (the Graph reader and
`shared.emply.document`); this only maps names. Graph's camelCase stays at the edge.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from shared.reconcile import model, outbound

# The order of the Graph reader's USER_FIELDS (a mirror user is a list of values).
_USER_FIELDS = ("id", "userPrincipalName", "mail", "displayName", "givenName", "surname",
                "accountEnabled", "onPremisesSyncEnabled", "jobTitle", "department",
                "mobilePhone")


def entra_user(values: Sequence[Any]) -> model.EntraUser:
    """A mirror user (its values in `_USER_FIELDS` order) as the planner sees it."""
    (user_id, upn, mail, display_name, given_name, surname, enabled, on_premises,
     job_title, department, mobile_phone) = values
    return model.EntraUser(
        id=user_id,
        user_principal_name=upn or "",
        mail=mail,
        display_name=display_name,
        # Unknown (not returned) is not "disabled": never deactivate on a missing field.
        account_enabled=enabled is not False,
        on_premises_sync_enabled=on_premises,
        given_name=given_name,
        surname=surname,
        job_title=job_title,
        department=department,
        mobile_phone=mobile_phone,
    )


def entra_snapshot(mirror: Mapping[str, Any]) -> model.EntraSnapshot:
    org = mirror.get("organization") or {}
    users = {user_id: entra_user(u) for user_id, u in mirror.get("users", {}).items()}
    groups = {
        group_id: model.EntraGroup(
            id=group_id,
            display_name=g.get("displayName"),
            members=frozenset(g.get("members") or ()),
        )
        for group_id, g in mirror.get("groups", {}).items()
    }
    return model.EntraSnapshot(
        tenant_id=str(mirror.get("tenantId") or org.get("id") or ""),
        users=users,
        groups=groups,
        on_premises_sync_enabled=bool(org.get("onPremisesSyncEnabled")),
        verified_domains=tuple(org.get("verifiedDomains") or ()),
    )


def settings(doc: Mapping[str, Any]) -> model.Settings:
    guard = doc.get("deactivationGuard") or {}
    return model.Settings(
        tenant_id=doc["tenantId"],
        groups=tuple(
            model.GroupMapping(g["groupId"], g.get("roleId")) for g in doc.get("groups", ())
        ),
        default_role_id=doc["defaultRoleId"],
        enabled=bool(doc.get("enabled", True)),
        sync_roles=bool(doc.get("syncRoles", False)),
        allowed_domains=tuple(doc.get("allowedDomains") or ()),
        guard=model.DeactivationGuard(
            max_count=int(guard.get("maxCount", 50)),
            max_percent=float(guard.get("maxPercent", 20)),
            min_count=int(guard.get("minCount", 10)),
        ),
        calendar_sync=bool(doc.get("calendarSync", False)),
        photo_sync=bool(doc.get("photoSync", False)),
        write_back=tuple(
            option for option, on in (doc.get("writeBack") or {}).items() if on is True
        ),
        event_window=(int((doc.get("eventWindow") or {}).get("pastDays", 1)),
                      int((doc.get("eventWindow") or {}).get("futureDays", 60))),
    )


def emply_user(u: Mapping[str, Any]) -> model.EmplyUser:
    return model.EmplyUser(
        id=u["id"],
        username=u.get("username") or "",
        email=u.get("email"),
        status=u.get("status", "active"),
        roles=tuple(u.get("roles") or ()),
        employee_id=u.get("employeeId"),
        source=u.get("source") or "manual",
        entra_id=u.get("entraId"),
        display_name=u.get("displayName"),
        link_tenant_id=u.get("tenantId"),
        deactivated_by=u.get("deactivatedBy"),
        deactivation_reason=u.get("deactivationReason"),
        sync_groups=tuple(u.get("syncGroups") or ()),
        role_basis=u.get("roleBasis"),
        linked_domain=u.get("linkedDomain"),
        calendar_sync=u.get("calendarSync") is not False,
        entra_create=u.get("entraCreate") or None,
        photo=u.get("photo") if isinstance(u.get("photo"), dict) else None,
    )


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def emply_snapshot(doc: Mapping[str, Any]) -> model.EmplySnapshot:
    return model.EmplySnapshot(
        users=tuple(emply_user(u) for u in doc.get("users", ())),
        employees=tuple(
            model.Employee(
                id=e["id"],
                email=e.get("email") or "",
                status=e.get("status", "active"),
                resignation_date=_date(e.get("resignationDate")),
                display_name=e.get("displayName"),
                given_name=e.get("givenName"),
                surname=e.get("surname"),
                job_title=e.get("jobTitle"),
                department=e.get("department"),
                mobile_phone=e.get("mobilePhone"),
            )
            for e in doc.get("employees", ())
        ),
        roles=tuple(
            model.Role(r["id"], r.get("name") or r["id"], bool(r.get("administrator")))
            for r in doc.get("roles", ())
        ),
        calendars=tuple(
            model.EmplyCalendar(c["userId"], c["id"], c.get("name"),
                                bool(c.get("isDefault")), bool(c.get("enabled")))
            for c in doc.get("calendars", ())
        ),
        events=tuple(
            model.EmplyEvent(e["userId"], e["calendarId"], e["id"],
                             e.get("sensitivity") == "private", e)
            for e in doc.get("events", ())
        ),
        outbound=tuple(outbound.from_entity(o) for o in doc.get("outboundEvents", ())),
    )


def calendar_synced_entra_ids(doc: Mapping[str, Any], entra_users: Mapping[str, Any]
                              ) -> list[str]:
    """R13: the Entra ids whose calendars a run reads: users linked and active in Emply
    with their calendar sync on, whose Entra user exists. (A user linked or reactivated by
    this run gets its calendars at the next run.)"""
    return sorted(
        u["entraId"] for u in doc.get("users", ())
        if u.get("entraId") and u.get("status", "active") == "active"
        and u.get("calendarSync") is not False and u["entraId"] in entra_users
    )


def mailboxes(read: Mapping[str, Sequence[Mapping[str, Any]] | None]
              ) -> dict[str, tuple[model.EntraCalendar, ...] | None]:
    return {
        entra_id: None if calendars is None else tuple(
            model.EntraCalendar(str(c["id"]), c.get("name"), c.get("isDefaultCalendar") is True,
                                c.get("canEdit") is True)
            for c in calendars)
        for entra_id, calendars in read.items()
    }
