"""The pieces of every answer to "why" (R18), in the FAQ's words: scope, match, status,
roles, changes, and the FAQ answers that go with them.

`shared.reconcile.explain` (what the next run would do) and `shared.reconcile.answer`
(what an on-demand run did, step by step) say the same things with the same pieces, so
an operator reads one vocabulary. Each piece returns `Words`: the sentences, and the
keys of the FAQ answers (`shared.reconcile.faq`) they call for. Pure, like the planner.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.reconcile import lifecycle, matching, model, scope
from shared.reconcile.faq import answer


@dataclasses.dataclass
class Words:
    """Sentences of an answer, and the FAQ answers (by key) they call for."""

    why: list[str] = dataclasses.field(default_factory=list)
    faq: list[str] = dataclasses.field(default_factory=list)

    def say(self, words: str, faq_key: str | None = None) -> None:
        self.why.append(words)
        if faq_key is not None:
            self.faq.append(faq_key)

    def extend(self, other: Words) -> None:
        self.why.extend(other.why)
        self.faq.extend(other.faq)

    def answers(self) -> list[dict[str, str]]:
        """The FAQ answers, each once, in the order first called for."""
        out: list[dict[str, str]] = []
        for key in self.faq:
            found = answer(key)
            if found not in out:
                out.append(found)
        return out


# -- scope (R2) ---------------------------------------------------------------------


def scope_reasons(entra_user: model.EntraUser, groups: tuple[str, ...],
                  entra: model.EntraSnapshot, settings: model.Settings
                  ) -> list[tuple[str, str, str | None]]:
    """Why an Entra user is not in scope (R2, R17, another tenant): (code, words, FAQ
    key) for each reason that holds; none when it is in scope."""
    out: list[tuple[str, str, str | None]] = []
    if not settings.enabled:
        out.append((model.INTEGRATION_DISABLED, "the integration is disabled (enabled "
                    "false), so no new users are created", "removed"))
    if entra.tenant_id and entra.tenant_id.lower() != settings.tenant_id.lower():
        out.append((OTHER_TENANT, f"the user is in tenant {entra.tenant_id}, but the "
                    f"integration is connected to tenant {settings.tenant_id} (other tenant)",
                    None))
    if not entra_user.account_enabled:
        out.append((model.DISABLED_IN_ENTRA, "the Entra account is disabled (accountEnabled "
                    "false), so it is not in scope (R2)", None))
    if not groups:
        out.append((NOT_IN_GROUP, "not a member of any configured group (directly or "
                    "through nested groups), so it is not in scope (R2)", "roles_single"))
    if not scope.domain_allowed(entra_user, settings):
        out.append((DOMAIN_NOT_ALLOWED, f"its domain "
                    f"{model.upn_domain(entra_user.user_principal_name)} is not one of the "
                    f"allowed domains ({', '.join(settings.allowed_domains)}) (R2)",
                    "deactivated"))
    return out


OTHER_TENANT = "other_tenant"
NOT_IN_GROUP = "not_in_configured_group"
DOMAIN_NOT_ALLOWED = "domain_not_allowed"


def groups_of(groups: Iterable[str], entra: model.EntraSnapshot,
              settings: model.Settings) -> list[dict[str, Any]]:
    """The configured groups an Entra user is in, with their names and roles."""
    mapping = settings.mapping
    return [{"groupId": g, "displayName": lifecycle.group_name(entra, g),
             "roleId": mapping.get(g)} for g in groups]


# -- match (R3, R4) ------------------------------------------------------------------

# Why an Entra user has no Emply user, for each problem the plan can report about it.
PROBLEM_WORDS = {
    model.AMBIGUOUS_MATCH: ("not created or linked: more than one Emply user matches "
                            "(ambiguous_match)", "matching"),
    model.EMPLOYEE_WITHOUT_ACCOUNT: ("not created: employee exists without a user account "
                                     "(employee_without_account)", "employee_without_account"),
    model.USERNAME_TAKEN: ("not created: an Emply user already has this username "
                           "(username_taken)", "matching"),
    model.EMAIL_TAKEN: ("not created: an Emply user already has this e-mail (email_taken)",
                        "matching"),
}


def problem_words(problems: Iterable[model.Problem]) -> Words:
    """Why an Entra user was not created or linked, for each problem about it."""
    out = Words()
    for problem in problems:
        words, faq_key = PROBLEM_WORDS.get(problem.reason,
                                           (f"not created: {problem.reason}", ""))
        out.say(f"{words}: {problem.message}", faq_key or None)
    return out


def link_words(user: model.EmplyUser, doc: Mapping[str, Any],
               entra_user: model.EntraUser | None, groups: Sequence[str],
               entra: model.EntraSnapshot, settings: model.Settings,
               problems: Sequence[model.Problem]) -> Words:
    """R3 for an Emply user: linked to whom (and how it came to be), or why not."""
    out = Words()
    ambiguous = [p for p in problems if p.reason == model.AMBIGUOUS_MATCH]
    if not user.linked and ambiguous:
        out.say("not linked: more than one match (ambiguous_match), so the sync changes "
                "nothing until a person makes the match unique: " + ambiguous[0].message,
                "matching")
    elif not user.linked:
        out.say("not linked: no in-scope Entra user has this user's username (as UPN) or "
                "e-mail, so the sync never touches it (external or manual user)", "matching")
    elif matching.is_stale_link(user, settings.tenant_id):
        out.say(f"linked in tenant {user.link_tenant_id}, but the integration is now "
                f"connected to tenant {settings.tenant_id}; no user there matches it "
                "(tenant_changed)", "deactivated")
    elif entra_user is None:
        out.say(f"linked to Entra user {user.entra_id}, which no longer exists in Entra")
    else:
        names = ", ".join(lifecycle.group_name(entra, g) for g in groups) or "none"
        out.say(f"linked to Entra user {entra_user.user_principal_name} ({entra_user.id}); "
                f"in configured groups: {names}")
        if user.status == "active":
            out.faq.append("one_way")
        link = last_entry(doc, model.LINK_USER)
        if link is not None and link.get("reason") == model.ENTRA_ACCOUNT_REPLACED:
            out.say(f"linked again (entra_account_replaced): {link.get('message')} "
                    f"(run {link.get('runId')}, {link.get('at')})")
    return out


# -- status (R6, R8) -----------------------------------------------------------------


def status_words(user: model.EmplyUser, doc: Mapping[str, Any]) -> Words:
    """R6: why a deactivated user is deactivated, and whether the sync may undo it."""
    out = Words()
    if user.status != "deactivated":
        return out
    if user.deactivated_by == "sync":
        out.say(f"deactivated by the sync, reason {user.deactivation_reason}: "
                + last_message(doc, model.DEACTIVATE_USER), "deactivated")
        if user.deactivation_reason == model.REMOVED_FROM_GROUPS:
            out.faq.append("removed_from_group")
    else:
        out.say("deactivated in Emply (not by the sync): the sync never reactivates it")
    return out


def employee_words(employee: model.Employee, now: dt.datetime) -> str:
    """R8: the employee's status, and what its resignation date makes of it."""
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


# -- roles (R11) ---------------------------------------------------------------------


def role_words(user: model.EmplyUser, groups: Sequence[str], settings: model.Settings,
               emply: model.EmplySnapshot) -> Words:
    """R11 for a linked active user: whether its roles follow its groups, and why not."""
    out = Words()
    if not (user.linked and user.status == "active"):
        return out
    if not settings.sync_roles:
        out.say("roles not synced: 'Synchronize roles' is off", "roles_single")
    elif user.employee_id:
        out.say("roles not synced: the user has an employee profile", "roles_employee_profile")
    else:
        mapping = settings.mapping
        mapped = [mapping[g] for g in groups if mapping.get(g)]
        out.say(f"roles synced: its groups map to "
                f"{', '.join(m for m in mapped if m) or 'no role'}", "roles_sync")
    admin = {r.id for r in emply.roles if r.administrator} & set(user.roles)
    if admin:
        out.say(f"administrator role(s) {', '.join(sorted(admin))} are never removed",
                "administrator")
    return out


# -- changes -------------------------------------------------------------------------


def summary(changes: Sequence[Mapping[str, Any]], held: bool) -> str:
    """The changes in one line: kind (reason): message, …"""
    if held:
        return "deactivation pending approval (held by the guard)"
    if not changes:
        return "nothing"
    return "; ".join(f"{c['kind']} ({c['reason']}): {c['message']}" for c in changes)


def last_entry(doc: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for entry in reversed(doc.get("history") or []):
        if isinstance(entry, Mapping) and entry.get("kind") == kind:
            return entry
    return None


def last_message(doc: Mapping[str, Any], kind: str) -> str:
    entry = last_entry(doc, kind)
    if entry is not None:
        return f"{entry.get('message')} (run {entry.get('runId')}, {entry.get('at')})"
    return "no record of the change in this user's history"
