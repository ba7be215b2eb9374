"""An on-demand run's answer: the steps one user went through, as Microsoft's
"provision on demand" shows them — scope, matching, the changes (applied, or with a dry
run what the real run applies), errors — and the FAQ answers that apply.

Pure: it reads the run's snapshots, its focused plan (`shared.reconcile.focus`) and what
the steps applied; the words are `shared.reconcile.why`'s, the same `explain` uses.

    {"key", "outcome": "applied" | "planned" | "held" | "nothing" | "refused",
     "emplyUser": {...} | null, "entraUsers": [{...}],
     "steps": [{"step": "scope", "status", "reason"?, "groups", "why"},
               {"step": "match", "status", "rule": "R3", "matchStep"?, "userId"?, "why"},
               {"step": "changes", "status", "changes", "held", "summary"},
               {"step": "errors", "status", "errors"}],
     "faq": [{"question", "answer"}]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from shared.reconcile import explain, lifecycle, matching, model, scope, why

Json = dict[str, Any]
STEP_OF_REASON = {reason: step for step, reason in matching.STEP_REASONS.items()}
MATCH_PROBLEMS = frozenset(why.PROBLEM_WORDS)


@dataclasses.dataclass(frozen=True)
class Asked:
    """What the key named, as the run read it (`shared.run.user_view`)."""

    key: str
    user: Mapping[str, Any] | None = None
    """The Emply user that answers to the key, as it was before the run."""
    entra_ids: tuple[str, ...] = ()
    """The Entra users read."""
    refusal: tuple[str, str] | None = None
    """(reason, words): the run was refused and read nothing more."""


@dataclasses.dataclass(frozen=True)
class Done:
    """What the run did (or, dry, would do)."""

    changes: Sequence[model.Change]
    errors: Sequence[Json] = ()
    dry_run: bool = False


def build(asked: Asked, entra: model.EntraSnapshot, emply: model.EmplySnapshot,
          settings: model.Settings, plan: model.Plan, done: Done) -> Json:
    words = why.Words()
    steps = [_scope(asked, entra, settings, words)]
    if asked.refusal is None:
        steps.append(_match(asked, entra, emply, settings, plan, words))
    steps.append(_changes(done, plan, settings, words))
    steps.append(_errors(plan, done))
    targets = [entra.users[i] for i in asked.entra_ids if i in entra.users]
    return {
        "key": asked.key,
        "outcome": _outcome(asked, plan, done),
        "emplyUser": None if asked.user is None else explain.user_summary(asked.user),
        "entraUsers": [explain.entra_summary(t) for t in targets],
        "steps": steps,
        "faq": words.answers(),
    }


def _outcome(asked: Asked, plan: model.Plan, done: Done) -> str:
    if asked.refusal is not None:
        return "refused"
    if plan.held:
        return "held"
    if not done.changes:
        return "nothing"
    return "planned" if done.dry_run else "applied"


# -- scope (R2) ---------------------------------------------------------------------


def _scope(asked: Asked, entra: model.EntraSnapshot, settings: model.Settings,
           words: why.Words) -> Json:
    if asked.refusal is not None:
        refused, because = asked.refusal
        words.say(because, "removed" if refused == model.INTEGRATION_DISABLED else None)
        return {"step": "scope", "status": "refused", "reason": refused, "groups": [],
                "why": [because]}
    targets = [entra.users[i] for i in asked.entra_ids if i in entra.users]
    if not targets:
        return _no_entra_user(asked, settings, words)
    by_user = scope.configured_groups_by_user(entra, settings)
    status, reason = "out_of_scope", ""
    said: list[str] = []
    groups: list[str] = []
    for target in targets:
        mine = by_user.get(target.id, ())
        groups.extend(g for g in mine if g not in groups)
        who = f"{target.user_principal_name}: " if len(targets) > 1 else ""
        found = why.scope_reasons(target, mine, entra, settings)
        if not found:
            status = "in_scope"
            names = ", ".join(lifecycle.group_name(entra, g) for g in mine)
            said.append(f"{who}in scope (R2): enabled, member of {names}"
                        + (", domain allowed" if settings.allowed_domains else ""))
        for code, text, faq_key in found:
            reason = reason or code
            said.append(f"{who}not in scope: {text}")
            # Why no user was created: a linked user's deactivation has its own answers.
            if faq_key is not None and not (asked.user or {}).get("entraId"):
                words.faq.append(faq_key)
    words.why.extend(said)
    return {"step": "scope", "status": status, **({"reason": reason} if reason else {}),
            "groups": why.groups_of(groups, entra, settings), "why": said}


def _no_entra_user(asked: Asked, settings: model.Settings, words: why.Words) -> Json:
    """No Entra user was read: the Emply user's link names one that is gone, or one of
    another tenant, or it has none and no Entra user has its username or e-mail."""
    user = asked.user or {}
    entra_id, tenant = user.get("entraId"), user.get("tenantId")
    if entra_id and tenant and str(tenant).lower() != settings.tenant_id.lower():
        reason, said = model.TENANT_CHANGED, (
            f"not in scope: linked to Entra user {entra_id} of tenant {tenant}, but the "
            f"integration is connected to tenant {settings.tenant_id} (other tenant), and "
            "no user there has its username or e-mail")
        words.faq.append("deactivated")
    elif entra_id:
        reason, said = model.DELETED_IN_ENTRA, (
            f"not in scope: its Entra user {entra_id} no longer exists in Entra, and no "
            "Entra user has its username or e-mail")
    elif asked.user is not None:
        reason, said = "no_entra_user", (
            f"no Entra user of tenant {settings.tenant_id} has this user's username (as "
            "UPN) or e-mail: an external or manual user, which the sync never touches")
        words.faq.append("matching")
    else:
        reason, said = "no_entra_user", (
            f"no Entra user of tenant {settings.tenant_id} has this employee's e-mail")
    words.why.append(said)
    return {"step": "scope", "status": "out_of_scope", "reason": reason, "groups": [],
            "why": [said]}


# -- match (R3, R4) ------------------------------------------------------------------


def _match(asked: Asked, entra: model.EntraSnapshot, emply: model.EmplySnapshot,
           settings: model.Settings, plan: model.Plan, words: why.Words) -> Json:
    """Which R3 step found the Emply user of each Entra user read, or why none did."""
    by_user = scope.configured_groups_by_user(entra, settings)
    found: list[Json] = []
    for entra_id in asked.entra_ids:
        target = entra.users.get(entra_id)
        if target is None:
            continue
        if scope.in_scope(target, by_user.get(entra_id, ()), settings):
            found.append(_match_of(target, emply, settings, plan, words))
    if not found:
        return _unmatched(asked, words)
    first = next((m for m in found if m["status"] == "matched"), found[0])
    said = [w for m in found for w in m.pop("why")]
    words.why.extend(said)
    return {**first, "why": said}


def _match_of(target: model.EntraUser, emply: model.EmplySnapshot,
              settings: model.Settings, plan: model.Plan, words: why.Words) -> Json:
    base: Json = {"step": "match", "rule": "R3", "entraId": target.id}
    link = next((c for c in plan.changes
                 if c.kind == model.LINK_USER and c.entra_id == target.id), None)
    if link is not None:
        words.faq.append("matching")
        return {**base, "status": "matched", "matchStep": STEP_OF_REASON.get(link.reason),
                "reason": link.reason, "userId": link.user_id, "why": [link.message]}
    holder = next((u for u in emply.users if u.entra_id is not None
                   and u.entra_id.lower() == target.id.lower()
                   and not matching.is_stale_link(u, settings.tenant_id)), None)
    if holder is not None:
        return {**base, "status": "matched", "matchStep": 1, "userId": holder.id,
                "why": [f"step 1 ({matching.STEP_WORDS[1]}): Emply user {holder.id} is "
                        f"linked to {target.user_principal_name}"]}
    problems = [p for p in plan.errors
                if p.entra_id == target.id and p.reason in MATCH_PROBLEMS]
    if problems:
        said = why.problem_words(problems)
        words.faq.extend(said.faq)
        return {**base, "status": "not_matched", "reason": problems[0].reason,
                "why": said.why}
    created = any(c.kind == model.CREATE_USER and c.entra_id == target.id
                  for c in plan.changes)
    return {**base, "status": "no_match", "why": [
        f"no Emply user matched {target.user_principal_name} at R3's steps 1–4 "
        "(object id, username = UPN, e-mail, employee profile e-mail)"
        + (": a new Emply user is created for it (R4)" if created else "")]}


def _unmatched(asked: Asked, words: why.Words) -> Json:
    user = asked.user or {}
    if user.get("entraId"):
        said = (f"R3 matches in-scope Entra users only; Emply user {user.get('id')} stays "
                f"linked to Entra user {user.get('entraId')}, and R6 decides its status")
        status = "linked"
    else:
        said = "R3 matches in-scope Entra users only: nothing to match"
        status = "skipped"
    words.why.append(said)
    return {"step": "match", "rule": "R3", "status": status, "why": [said]}


# -- changes, errors -----------------------------------------------------------------


def _changes(done: Done, plan: model.Plan, settings: model.Settings,
             words: why.Words) -> Json:
    changes = [c.to_json() for c in done.changes]
    held = [c.to_json() for c in plan.held]
    for change in (*done.changes, *plan.held):
        if change.kind == model.DEACTIVATE_USER:
            words.faq.append("deactivated")
            if change.reason == model.REMOVED_FROM_GROUPS:
                words.faq.append("removed_from_group")
        elif change.kind == model.SET_ROLES:
            words.faq.append("roles_sync")
        elif change.kind == model.CREATE_USER and not settings.sync_roles:
            words.faq.append("roles_single")
    if plan.skips.get(model.EMPLOYEE_PROFILE_CONTROLS_ROLES):
        words.faq.append("roles_employee_profile")
    if held:
        status = "held"
    elif not changes:
        status = "nothing"
    else:
        status = "would_apply" if done.dry_run else "applied"
    summary = why.summary(changes, False)
    if held:
        summary = ("held by the guard (R7): " + why.summary(held, False)
                   + ("; " + summary if changes else ""))
    return {"step": "changes", "status": status, "changes": changes, "held": held,
            "summary": summary}


def _errors(plan: model.Plan, done: Done) -> Json:
    errors = [*(p.to_json() for p in plan.errors), *done.errors]
    return {"step": "errors", "status": "errors" if errors else "none", "errors": errors}
