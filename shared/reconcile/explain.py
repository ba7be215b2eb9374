"""R18: why a user (or an employee) is in its state, and what the next run would do.

Pure: it reads the same snapshots and the same Plan a run would, plus the
user's stored last change and history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.reconcile import (
    calendars,
    event_push,
    events,
    lifecycle,
    matching,
    model,
    scope,
    writeback,
)
from shared.reconcile.faq import answer


class NotFound(LookupError):
    """No Emply user or employee answers to the key."""


class AmbiguousUser(LookupError):
    """Several users answer to the key: ask by id."""


def find_user(
    key: str,
    user_docs: Mapping[str, Mapping[str, Any]],
    employees: tuple[model.Employee, ...] = (),
) -> Mapping[str, Any] | None:
    """The user with this id, else username, else e-mail, else the one holding the
    employee profile with this id or e-mail; None when nobody matches."""
    if key in user_docs:
        return user_docs[key]
    wanted = model.norm(key)
    for field in ("username", "email"):
        hits = [u for u in user_docs.values() if model.norm(u.get(field)) == wanted]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            ids = ", ".join(sorted(str(u["id"]) for u in hits))
            raise AmbiguousUser(f"{len(hits)} users have {field} {key!r}: {ids}; ask by id")
    profile = {e.id for e in employees if e.id == key or model.norm(e.email) == wanted}
    holders = [u for u in user_docs.values() if u.get("employeeId") in profile]
    return holders[0] if len(holders) == 1 else None


def explain(
    key: str,
    entra: model.EntraSnapshot,
    emply: model.EmplySnapshot,
    user_docs: Mapping[str, Mapping[str, Any]],
    settings: model.Settings,
    plan: model.Plan,
    now: dt.datetime,
) -> dict[str, Any]:
    doc = find_user(key, user_docs, emply.employees)
    entra_only = None
    if doc is None:
        entra_only = find_entra_user(key, entra)
        holder = [
            d for d in user_docs.values()
            if entra_only is not None and d.get("entraId") == entra_only.id
        ]
        doc = holder[0] if len(holder) == 1 else None
    if doc is None:
        if entra_only is not None and not _is_employee(key, emply.employees):
            return _explain_entra_user(entra_only, entra, settings, plan)
        return _explain_employee_only(key, entra, emply, plan, now, settings)
    user = next(u for u in emply.users if u.id == doc["id"])
    entra_user = entra.users.get(user.entra_id or "")
    groups = scope.configured_groups_by_user(entra, settings).get(user.entra_id or "", ())
    mapping = settings.mapping
    reasons: list[str] = []
    answers: list[dict[str, str]] = []

    problems = [p for p in plan.errors if p.concerns(user.id, user.entra_id)]
    ambiguous = [p for p in problems if p.reason == model.AMBIGUOUS_MATCH]
    if not user.linked and ambiguous:
        reasons.append(
            "not linked: more than one match (ambiguous_match), so the sync changes nothing "
            "until a person makes the match unique: " + ambiguous[0].message
        )
        answers.append(answer("matching"))
    elif not user.linked:
        reasons.append(
            "not linked: no in-scope Entra user has this user's username (as UPN) or e-mail, "
            "so the sync never touches it (external or manual user)"
        )
        answers.append(answer("matching"))
    elif matching.is_stale_link(user, settings.tenant_id):
        reasons.append(
            f"linked in tenant {user.link_tenant_id}, but the integration is now connected to "
            f"tenant {settings.tenant_id}; no user there matches it (tenant_changed)"
        )
        answers.append(answer("deactivated"))
    elif entra_user is None:
        reasons.append(f"linked to Entra user {user.entra_id}, which no longer exists in Entra")
    else:
        names = ", ".join(lifecycle.group_name(entra, g) for g in groups) or "none"
        reasons.append(
            f"linked to Entra user {entra_user.user_principal_name} ({entra_user.id}); "
            f"in configured groups: {names}"
        )
        if user.status == "active":
            answers.append(answer("one_way"))
        link = _last_entry(doc, model.LINK_USER)
        if link is not None and link.get("reason") == model.ENTRA_ACCOUNT_REPLACED:
            reasons.append(
                f"linked again (entra_account_replaced): {link.get('message')} "
                f"(run {link.get('runId')}, {link.get('at')})"
            )

    if user.status == "deactivated":
        if user.deactivated_by == "sync":
            reasons.append(
                f"deactivated by the sync, reason {user.deactivation_reason}: "
                + _last_message(doc, model.DEACTIVATE_USER)
            )
            answers.append(answer("deactivated"))
            if user.deactivation_reason == model.REMOVED_FROM_GROUPS:
                answers.append(answer("removed_from_group"))
        else:
            reasons.append(
                "deactivated in Emply (not by the sync): the sync never reactivates it"
            )

    employee = next((e for e in emply.employees if e.id == user.employee_id), None)
    if employee is not None:
        reasons.append(_employee_words(employee, now))
        if user.linked and (entra_user is None or not entra_user.account_enabled):
            answers.append(answer("deleted_still_employee"))

    if user.linked and user.status == "active":
        if not settings.sync_roles:
            reasons.append("roles not synced: 'Synchronize roles' is off")
            answers.append(answer("roles_single"))
        elif user.employee_id:
            reasons.append("roles not synced: the user has an employee profile")
            answers.append(answer("roles_employee_profile"))
        else:
            mapped = [mapping[g] for g in groups if mapping.get(g)]
            reasons.append(
                f"roles synced: its groups map to {', '.join(m for m in mapped if m) or 'no role'}"
            )
            answers.append(answer("roles_sync"))
        admin = {r.id for r in emply.roles if r.administrator} & set(user.roles)
        if admin:
            reasons.append(f"administrator role(s) {', '.join(sorted(admin))} are never removed")
            answers.append(answer("administrator"))

    written, keys = writeback.explain_words(user, entra, settings, plan, emply)
    reasons.extend(written)
    answers.extend(answer(k) for k in keys)
    # R13, R17: said when calendars are on, or kept, or the integration is removed.
    if settings.calendar_sync or not settings.enabled or any(
            c.user_id == user.id for c in emply.calendars):
        words, faq_key = calendars.explain(user, emply, settings, entra.mailboxes)
        reasons.append(words)
        reasons.extend(events.explain(user, emply, settings, now))  # R14
        answers.append(answer(faq_key))

    pushed = event_push.explain(user, emply, settings, entra.mailboxes)  # R15
    if pushed:
        reasons.extend(pushed)
        answers.append(answer("ms365_calendar"))

    next_run = [c.to_json() for c in plan.for_user(user.id)]
    held = {c.user_id for c in plan.held}
    return {
        "user": {k: doc.get(k) for k in (
            "id", "username", "email", "displayName", "status", "roles", "employeeId",
            "source", "entraId", "tenantId", "linkedAt", "deactivationReason", "deactivatedBy",
        )},
        "linked": user.linked,
        "groups": [
            {"groupId": g, "displayName": lifecycle.group_name(entra, g), "roleId": mapping.get(g)}
            for g in groups
        ],
        "why": reasons,
        "lastChange": doc.get("lastChange"),
        "history": doc.get("history") or [],
        "nextRun": {
            "changes": next_run,
            "heldByGuard": user.id in held,
            "problems": [p.to_json() for p in problems],
            "summary": _next_summary(next_run, user.id in held),
        },
        "faq": answers,
    }


def find_entra_user(key: str, entra: model.EntraSnapshot) -> model.EntraUser | None:
    """The Entra user with this object id, else UPN, else mail (R18: an Entra user that
    has no Emply user)."""
    by_id = entra.users.get(key) or entra.users.get(key.strip().lower())
    if by_id is not None:
        return by_id
    wanted = model.norm(key)
    for field in ("user_principal_name", "mail"):
        hits = [u for u in entra.users.values() if model.norm(getattr(u, field)) == wanted]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            ids = ", ".join(sorted(u.id for u in hits))
            raise AmbiguousUser(f"{len(hits)} Entra users have {key!r}: {ids}; ask by object id")
    return None


def _is_employee(key: str, employees: tuple[model.Employee, ...]) -> bool:
    wanted = model.norm(key)
    return any(e.id == key or model.norm(e.email) == wanted for e in employees)


# Why an Entra user has no Emply user, for each problem the plan can report about it.
_PROBLEM_WORDS = {
    model.AMBIGUOUS_MATCH: ("not created or linked: more than one Emply user matches "
                            "(ambiguous_match)", "matching"),
    model.EMPLOYEE_WITHOUT_ACCOUNT: ("not created: employee exists without a user account "
                                     "(employee_without_account)", "employee_without_account"),
    model.USERNAME_TAKEN: ("not created: an Emply user already has this username "
                           "(username_taken)", "matching"),
    model.EMAIL_TAKEN: ("not created: an Emply user already has this e-mail (email_taken)",
                        "matching"),
}


def _explain_entra_user(
    entra_user: model.EntraUser,
    entra: model.EntraSnapshot,
    settings: model.Settings,
    plan: model.Plan,
) -> dict[str, Any]:
    """R18 for an Entra user with no Emply user: why it was not created, in the FAQ's
    words where one applies, and what the next run does."""
    groups = scope.configured_groups_by_user(entra, settings).get(entra_user.id, ())
    mapping = settings.mapping
    reasons: list[str] = []
    answers: list[dict[str, str]] = []
    if not settings.enabled:
        reasons.append("not created: the integration is disabled (enabled false), so no new "
                       "users are created")
    if entra.tenant_id and entra.tenant_id.lower() != settings.tenant_id.lower():
        reasons.append(f"not created: the user is in tenant {entra.tenant_id}, but the "
                       f"integration is connected to tenant {settings.tenant_id} (other tenant)")
    if not entra_user.account_enabled:
        reasons.append("not created: the Entra account is disabled (accountEnabled false), "
                       "so it is not in scope (R2)")
    if not groups:
        reasons.append("not created: not a member of any configured group (directly or "
                       "through nested groups), so it is not in scope (R2)")
        answers.append(answer("roles_single"))
    if not scope.domain_allowed(entra_user, settings):
        reasons.append(
            f"not created: its domain {model.upn_domain(entra_user.user_principal_name)} is "
            f"not one of the allowed domains ({', '.join(settings.allowed_domains)}) (R2)"
        )
        answers.append(answer("deactivated"))
    problems = [p for p in plan.errors if p.entra_id == entra_user.id]
    for problem in problems:
        words, faq_key = _PROBLEM_WORDS.get(
            problem.reason, (f"not created: {problem.reason}", "")
        )
        reasons.append(f"{words}: {problem.message}")
        if faq_key and answer(faq_key) not in answers:
            answers.append(answer(faq_key))
    changes = [c.to_json() for c in plan.changes if c.entra_id == entra_user.id]
    if not reasons and not changes:
        reasons.append("in scope, and nothing keeps it from being created")
    elif changes and not problems:
        reasons.append("in scope: not created yet; the next run creates or links it")
    return {
        "entraUser": {
            "id": entra_user.id,
            "userPrincipalName": entra_user.user_principal_name,
            "mail": entra_user.mail,
            "displayName": entra_user.display_name,
            "accountEnabled": entra_user.account_enabled,
        },
        "linked": False,
        "groups": [
            {"groupId": g, "displayName": lifecycle.group_name(entra, g), "roleId": mapping.get(g)}
            for g in groups
        ],
        "why": reasons,
        "nextRun": {
            "changes": changes,
            "problems": [p.to_json() for p in problems],
            "summary": _next_summary(changes, False)
            if changes
            else "nothing: the sync will not create a user for this Entra user",
        },
        "faq": answers,
    }


def _explain_employee_only(
    key: str,
    entra: model.EntraSnapshot,
    emply: model.EmplySnapshot,
    plan: model.Plan,
    now: dt.datetime,
    settings: model.Settings | None = None,
) -> dict[str, Any]:
    wanted = model.norm(key)
    employee = next(
        (e for e in emply.employees if e.id == key or model.norm(e.email) == wanted), None
    )
    if employee is None:
        raise NotFound(f"no Emply user or employee has id, username or e-mail {key!r}")
    # The planner's own test (R4): the Entra mail, or the UPN when mail is empty.
    entra_match = [
        u for u in entra.users.values() if model.norm(u.mail_or_upn) == model.norm(employee.email)
    ]
    problems = [
        p.to_json() for p in plan.errors
        if p.reason == model.EMPLOYEE_WITHOUT_ACCOUNT
        and any(p.entra_id == u.id for u in entra_match)
    ]
    why = [
        "not linked: employee exists without a user account"
        + (f" while Entra user {entra_match[0].user_principal_name} has the same e-mail"
           if entra_match else ""),
        _employee_words(employee, now),
    ]
    if settings is not None and writeback.CREATE in settings.write_back:
        why.append("not created in Entra (writeBack.create): the employee has no Emply user "
                   "account; an Entra user is created only for a user account")
    return {
        "employee": {"id": employee.id, "email": employee.email, "status": employee.status,
                     "resignationDate": employee.resignation_date.isoformat()
                     if employee.resignation_date else None},
        "linked": False,
        "why": why,
        "nextRun": {"problems": problems,
                    "summary": "nothing: the sync will not create a user for this employee"},
        "faq": [answer("employee_without_account")],
    }


def _employee_words(employee: model.Employee, now: dt.datetime) -> str:
    target = lifecycle.employee_target_status(employee, now.astimezone(dt.UTC).date())
    if employee.resignation_date is None:
        return (
            f"employee {employee.id} is {employee.status.capitalize()}: no resignation date "
            "(Entra never changes an employee's status)"
        )
    return (
        f"employee {employee.id} is {employee.status.capitalize()}: resignation date "
        f"{employee.resignation_date.isoformat()} (next status: {target})"
    )


def _last_entry(doc: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for entry in reversed(doc.get("history") or []):
        if isinstance(entry, Mapping) and entry.get("kind") == kind:
            return entry
    return None


def _last_message(doc: Mapping[str, Any], kind: str) -> str:
    entry = _last_entry(doc, kind)
    if entry is not None:
        return f"{entry.get('message')} (run {entry.get('runId')}, {entry.get('at')})"
    return "no record of the change in this user's history"


def _next_summary(changes: list[dict[str, Any]], held: bool) -> str:
    if held:
        return "deactivation pending approval (held by the guard)"
    if not changes:
        return "nothing"
    return "; ".join(f"{c['kind']} ({c['reason']}): {c['message']}" for c in changes)
