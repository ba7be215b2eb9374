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
    model,
    scope,
    why,
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
            return explain_entra_user(entra_only, entra, settings, plan)
        return _explain_employee_only(key, entra, emply, plan, now, settings)
    user = next(u for u in emply.users if u.id == doc["id"])
    groups = scope.configured_groups_by_user(entra, settings).get(user.entra_id or "", ())
    problems = [p for p in plan.errors if p.concerns(user.id, user.entra_id)]
    words = user_words(user, doc, entra, emply, settings, plan, now)
    next_run = [c.to_json() for c in plan.for_user(user.id)]
    held = user.id in {c.user_id for c in plan.held}
    return {
        "user": user_summary(doc),
        "linked": user.linked,
        "groups": why.groups_of(groups, entra, settings),
        "why": words.why,
        "lastChange": doc.get("lastChange"),
        "history": doc.get("history") or [],
        "nextRun": {
            "changes": next_run,
            "heldByGuard": held,
            "problems": [p.to_json() for p in problems],
            "summary": why.summary(next_run, held),
        },
        "faq": words.answers(),
    }


USER_FIELDS = ("id", "username", "email", "displayName", "status", "roles", "employeeId",
               "source", "entraId", "tenantId", "linkedAt", "deactivationReason",
               "deactivatedBy")
"""What an answer shows of an Emply user."""


def user_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in USER_FIELDS}


def user_words(user: model.EmplyUser, doc: Mapping[str, Any], entra: model.EntraSnapshot,
               emply: model.EmplySnapshot, settings: model.Settings, plan: model.Plan,
               now: dt.datetime) -> why.Words:
    """Why an Emply user is in its state: its link (R3), status (R6), employee (R8),
    roles (R11), write-back (R9), calendars and events (R13–R15)."""
    entra_user = entra.users.get(user.entra_id or "")
    groups = scope.configured_groups_by_user(entra, settings).get(user.entra_id or "", ())
    problems = [p for p in plan.errors if p.concerns(user.id, user.entra_id)]
    words = why.link_words(user, doc, entra_user, groups, entra, settings, problems)
    words.extend(why.status_words(user, doc))
    employee = next((e for e in emply.employees if e.id == user.employee_id), None)
    if employee is not None:
        words.say(why.employee_words(employee, now))
        if user.linked and (entra_user is None or not entra_user.account_enabled):
            words.faq.append("deleted_still_employee")
    words.extend(why.role_words(user, groups, settings, emply))
    written, keys = writeback.explain_words(user, entra, settings, plan, emply)
    words.why.extend(written)
    words.faq.extend(keys)
    # R13, R17: said when calendars are on, or kept, or the integration is removed.
    if settings.calendar_sync or not settings.enabled or any(
            c.user_id == user.id for c in emply.calendars):
        said, faq_key = calendars.explain(user, emply, settings, entra.mailboxes)
        words.say(said, faq_key)
        words.why.extend(events.explain(user, emply, settings, now))  # R14
    pushed = event_push.explain(user, emply, settings, entra.mailboxes)  # R15
    if pushed:
        words.why.extend(pushed)
        words.faq.append("ms365_calendar")
    return words


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


def explain_entra_user(
    entra_user: model.EntraUser,
    entra: model.EntraSnapshot,
    settings: model.Settings,
    plan: model.Plan,
) -> dict[str, Any]:
    """R18 for an Entra user with no Emply user: why it was not created, in the FAQ's
    words where one applies, and what the next run does."""
    groups = scope.configured_groups_by_user(entra, settings).get(entra_user.id, ())
    words = why.Words()
    for _code, said, faq_key in why.scope_reasons(entra_user, groups, entra, settings):
        words.say(f"not created: {said}", faq_key)
    problems = [p for p in plan.errors if p.entra_id == entra_user.id]
    words.extend(why.problem_words(problems))
    changes = [c.to_json() for c in plan.changes if c.entra_id == entra_user.id]
    if not words.why and not changes:
        words.say("in scope, and nothing keeps it from being created")
    elif changes and not problems:
        words.say("in scope: not created yet; the next run creates or links it")
    return {
        "entraUser": entra_summary(entra_user),
        "linked": False,
        "groups": why.groups_of(groups, entra, settings),
        "why": words.why,
        "nextRun": {
            "changes": changes,
            "problems": [p.to_json() for p in problems],
            "summary": why.summary(changes, False)
            if changes
            else "nothing: the sync will not create a user for this Entra user",
        },
        "faq": words.answers(),
    }


def entra_summary(entra_user: model.EntraUser) -> dict[str, Any]:
    """What an answer shows of an Entra user."""
    return {
        "id": entra_user.id,
        "userPrincipalName": entra_user.user_principal_name,
        "mail": entra_user.mail,
        "displayName": entra_user.display_name,
        "accountEnabled": entra_user.account_enabled,
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
    reasons = [
        "not linked: employee exists without a user account"
        + (f" while Entra user {entra_match[0].user_principal_name} has the same e-mail"
           if entra_match else ""),
        why.employee_words(employee, now),
    ]
    if settings is not None and writeback.CREATE in settings.write_back:
        reasons.append("not created in Entra (writeBack.create): the employee has no Emply user "
                   "account; an Entra user is created only for a user account")
    return {
        "employee": {"id": employee.id, "email": employee.email, "status": employee.status,
                     "resignationDate": employee.resignation_date.isoformat()
                     if employee.resignation_date else None},
        "linked": False,
        "why": reasons,
        "nextRun": {"problems": problems,
                    "summary": "nothing: the sync will not create a user for this employee"},
        "faq": [answer("employee_without_account")],
    }
