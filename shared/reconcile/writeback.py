"""R9 and R10: what the sync writes back to Entra, planned as data like everything else.

`plan_writeback` reads the same snapshots as the rest of the planner and returns the
`entra_*` changes (with the Entra values in `before` and Emply's in `after`) and the
problems to report. It does no I/O: `--dry-run`, `explain` and the run report see the
very changes that `shared.graph.writer` then sends.

Invariants:
- The employee profile wins (FAQ: "the employee profile is in control of the data"):
  a field that differs is set to Emply's value; a field equal on both sides is never
  sent, so a run after a successful write-back plans nothing. Nothing flows the other
  way (R5), so there is no ping-pong.
- A hybrid tenant (the organization's `onPremisesSyncEnabled`) gets no write-back at
  all (`hybrid_tenant`, once per run); a user mastered on-premises is never written,
  in any tenant (`hybrid_user`, when a write would otherwise be made).
- Only a user linked in the configured tenant is written: a link made in another
  tenant does not name a user of this one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shared.reconcile import entra_create, model, plan_model

UPDATE = "update"
CREATE = "create"
DELETE = "delete"
BUILT_OPTIONS = frozenset({UPDATE, CREATE, DELETE})
"""The write-back options this version carries out (all three)."""

# Employee field → Entra user property, in the order a change lists them.
FIELDS: tuple[tuple[str, str], ...] = (
    ("display_name", "displayName"),
    ("given_name", "givenName"),
    ("surname", "surname"),
    ("job_title", "jobTitle"),
    ("department", "department"),
    ("mobile_phone", "mobilePhone"),
)
REQUIRED = frozenset({"displayName"})
"""Entra refuses to clear these; an empty Emply value leaves them as they are."""

APPROVAL_UNUSED = "approval_unused"

HYBRID_TENANT_WORDS = (
    "the tenant synchronizes its directory from on-premises (onPremisesSyncEnabled): "
    "write-back cannot be enabled in a hybrid setup (FAQ: \"it can only synchronize data "
    "from Microsoft Entra ID to Emply\"), so nothing was written to Entra; turn the "
    "writeBack options off"
)


@dataclasses.dataclass(frozen=True, slots=True)
class WriteBackPlan:
    changes: tuple[model.Change, ...] = ()
    problems: tuple[model.Problem, ...] = ()
    skips: Mapping[str, int] = dataclasses.field(default_factory=dict)


def plan_writeback(
    entra: model.EntraSnapshot,
    emply: model.EmplySnapshot,
    settings: model.Settings,
    links: Mapping[str, str] | None = None,
) -> WriteBackPlan:
    """`links`: Emply user id → Entra id of the links this run makes (they are written
    back in the same run, so a dry run shows what the real run then does)."""
    options = frozenset(settings.write_back) & BUILT_OPTIONS
    if not options or not settings.enabled:
        return WriteBackPlan()  # R17: an integration turned off runs no write-back
    if entra.on_premises_sync_enabled:
        return WriteBackPlan(problems=(
            model.Problem(model.HYBRID_TENANT, HYBRID_TENANT_WORDS, rule="R10"),))
    employees = {e.id: e for e in emply.employees}
    changes: list[model.Change] = []
    problems: list[model.Problem] = []
    skips: dict[str, int] = {}
    links = links or {}
    if CREATE in options:
        created, refused, skips = entra_create.plan_creates(entra, emply, settings, links)
        changes.extend(created)
        problems.extend(refused)
    for user in emply.users:
        if user.id in links:
            user = dataclasses.replace(user, entra_id=links[user.id],
                                       link_tenant_id=settings.tenant_id)
        if DELETE in options and user.status == "deleted":
            _plan_delete(user, entra, settings, changes, problems)
            continue
        if UPDATE not in options or user.entra_id is None or user.employee_id is None:
            continue
        employee = employees.get(user.employee_id)
        entra_user = entra.users.get(user.entra_id)
        if employee is None or entra_user is None or user.status == "deleted":
            continue
        if user.link_tenant_id not in (None, settings.tenant_id):
            continue
        change = update_change(user.id, employee, entra_user)
        if change is None:
            continue
        if entra_user.on_premises_sync_enabled:
            problems.append(hybrid_user(user.id, entra_user))
            continue
        changes.append(change)
    return _without_refused(WriteBackPlan(tuple(changes), tuple(problems), skips), entra)


def update_change(user_id: str, employee: model.Employee, entra_user: model.EntraUser
                  ) -> model.Change | None:
    """The `entra_update` that gives `entra_user` the employee's values; None when they
    are equal."""
    before, after = field_differences(employee, entra_user)
    if not after:
        return None
    return model.Change(
        model.ENTRA_UPDATE, "R9", model.ENTRA_UPDATE, user_id, entra_user.id, before, after,
        f"Entra user {entra_user.user_principal_name} takes {', '.join(after)} from "
        f"employee {employee.id} (writeBack.update: the employee profile is in control "
        "of the data)",
    )


def delete_change(user_id: str, entra_user: model.EntraUser) -> model.Change:
    return model.Change(
        model.ENTRA_DELETE, "R9", model.ENTRA_DELETE, user_id, entra_user.id,
        {"userPrincipalName": entra_user.user_principal_name,
         "displayName": entra_user.display_name},
        {},
        f"Entra user {entra_user.user_principal_name} is deleted because Emply user "
        f"{user_id} is deleted (writeBack.delete): it moves to Entra's deleted users, "
        "restorable there for 30 days",
    )


def refusal_of(change: model.Change, entra: model.EntraSnapshot) -> model.RefusedWrite | None:
    """The refusal of this very write by Graph, as a privileged user's, if it was refused
    (`entra_user_protected`): it is not sent again until the write changes."""
    found = (entra.refused_writes or {}).get(change.entra_id or "")
    if found is None or found.kind != change.kind \
            or found.digest != plan_model.write_digest(change):
        return None
    return found


def _without_refused(planned: WriteBackPlan, entra: model.EntraSnapshot) -> WriteBackPlan:
    """`planned` less the writes Graph refused as a privileged user's (each counted under
    `skips`, reported as an error once, by the run Graph refused it in)."""
    if not entra.refused_writes:
        return planned
    kept = tuple(c for c in planned.changes if refusal_of(c, entra) is None)
    if len(kept) == len(planned.changes):
        return planned
    skips = dict(planned.skips)
    skips[model.ENTRA_USER_PROTECTED] = len(planned.changes) - len(kept)
    return WriteBackPlan(kept, planned.problems, skips)


def _plan_delete(
    user: model.EmplyUser,
    entra: model.EntraSnapshot,
    settings: model.Settings,
    changes: list[model.Change],
    problems: list[model.Problem],
) -> None:
    """FAQ A2: "By allowing Emply to delete the Microsoft Entra ID user, the Microsoft
    Entra ID user is moved to deleted users in Microsoft Entra ID." Once it is gone the
    next run finds nothing to delete."""
    entra_user = entra.users.get(user.entra_id or "")
    if entra_user is None or user.link_tenant_id not in (None, settings.tenant_id):
        return
    if entra_user.on_premises_sync_enabled:
        problems.append(hybrid_user(user.id, entra_user))
        return
    changes.append(delete_change(user.id, entra_user))


@dataclasses.dataclass(frozen=True, slots=True)
class GuardedDeletions:
    applied: tuple[model.Change, ...] = ()
    held: tuple[model.Change, ...] = ()
    problems: tuple[model.Problem, ...] = ()
    digest: str | None = None


def guard_deletions(
    deletions: list[model.Change],
    guard: model.DeactivationGuard,
    linked_active: int,
    approval: model.Approval | None,
) -> GuardedDeletions:
    """R7 for Entra deletions: the deactivation guard's limits, counted on their own, with
    their own held set. A held set is approved only exactly: its count and its digest
    (`N:DIGEST`, or the digest alone); a bare count is never enough, since a deleted
    directory account is the costliest change the sync makes."""
    count = len(deletions)
    if not count or not guard.holds(count, linked_active):
        unused = () if approval is None else (model.Problem(
            APPROVAL_UNUSED, f"--approve-deletions {approval} was given but this run holds "
            "no Entra deletions; nothing was approved", rule="R7"),)
        return GuardedDeletions(applied=tuple(deletions), problems=unused)
    digest = model.held_digest(c.user_id for c in deletions)
    problems: list[model.Problem] = []
    if approval is not None:
        if approval.digest == digest and approval.count in (None, count):
            return GuardedDeletions(applied=tuple(deletions))
        problems.append(model.Problem(
            model.APPROVAL_MISMATCH,
            f"approval {approval} of Entra deletions does not name this run's {count} "
            f"deletions (set {digest}); deletions are approved only by count and digest, "
            "nothing was approved", rule="R7"))
    problems.append(model.Problem(
        model.HELD_BY_GUARD,
        f"{count} Entra deletions (writeBack.delete) exceed the guard (maxCount "
        f"{guard.max_count}, or from minCount {guard.min_count} on maxPercent "
        f"{guard.max_percent:g}% of {linked_active} linked active users): held (set "
        f"{digest}); approve exactly these with --approve-deletions {count}:{digest} or "
        f'{{"approveDeletions": "{count}:{digest}"}}',
        rule="R7"))
    return GuardedDeletions(held=tuple(deletions), problems=tuple(problems), digest=digest)


def field_differences(
    employee: model.Employee, entra_user: model.EntraUser
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Entra's values, Emply's values) of the fields that differ; empty when none do."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr, prop in FIELDS:
        wanted = _value(getattr(employee, attr))
        current = _value(getattr(entra_user, attr))
        if wanted == current or (wanted is None and prop in REQUIRED):
            continue
        before[prop] = current
        after[prop] = wanted
    return before, after


def _value(value: str | None) -> str | None:
    # Entra stores no empty strings (it answers null): "" and null are the same value.
    return value if value else None


def hybrid_user(user_id: str, entra_user: model.EntraUser) -> model.Problem:
    return model.Problem(
        model.HYBRID_USER,
        f"Entra user {entra_user.user_principal_name} is synchronized from on-premises "
        "(onPremisesSyncEnabled): Microsoft does not allow it to be changed in the cloud, "
        "so Emply's values were not written back (change it on-premises)",
        entra_id=entra_user.id,
        user_id=user_id,
        rule="R10",
    )


def explain_words(
    user: model.EmplyUser,
    entra: model.EntraSnapshot,
    settings: model.Settings,
    plan: model.Plan,
    emply: model.EmplySnapshot | None = None,
) -> tuple[list[str], list[str]]:
    """R18 for write-back: why a linked user with an employee profile is (or is not)
    written back to Entra, and why an unlinked one is (or is not) created there (with
    `emply`); the sentences, and the keys of the FAQ answers that apply."""
    if user.entra_id is None:
        return create_words(user, entra, emply, settings, plan) if emply else ([], [])
    entra_user = entra.users.get(user.entra_id or "")
    if entra_user is None:
        return [], []
    if user.status == "deleted":
        if DELETE not in settings.write_back:
            return ["deleted in Emply; its Entra user is not deleted: writeBack.delete is "
                    "off"], []
        protected = _protected_words(user, entra, emply, model.ENTRA_DELETE)
        if protected is not None:
            return [protected], ["delete"]
        held = any(c.user_id == user.id and c.kind == model.ENTRA_DELETE for c in plan.held)
        return [f"deleted in Emply: its Entra user is deleted by the next run "
                f"(writeBack.delete){', once the held deletions are approved' if held else ''}"
                "; it moves to Entra's deleted users, restorable for 30 days"], ["delete"]
    if user.employee_id is None:
        return [], []
    if UPDATE not in settings.write_back:
        return ["not written back to Entra: writeBack.update is off"], []
    if entra.on_premises_sync_enabled:
        return [f"not written back to Entra ({model.HYBRID_TENANT}): the tenant is a hybrid "
                "setup, where write-back cannot be enabled"], ["hybrid_setup"]
    if entra_user.on_premises_sync_enabled:
        return [f"never written back to Entra ({model.HYBRID_USER}): the Entra user is "
                "synchronized from on-premises, which Microsoft does not allow to be changed "
                "in the cloud"], ["hybrid_update"]
    protected = _protected_words(user, entra, emply, model.ENTRA_UPDATE)
    if protected is not None:
        return [protected], ["write_back"]
    update = next((c for c in plan.changes
                   if c.kind == model.ENTRA_UPDATE and c.user_id == user.id), None)
    if update is not None:
        return [f"written back to Entra at the next run (writeBack.update): "
                f"{', '.join(update.after)} take the employee profile's values"], ["write_back"]
    return ["written back to Entra (writeBack.update): Entra already has the employee "
            "profile's name, job title, department and mobile phone"], ["write_back"]


def create_words(
    user: model.EmplyUser,
    entra: model.EntraSnapshot,
    emply: model.EmplySnapshot,
    settings: model.Settings,
    plan: model.Plan,
) -> tuple[list[str], list[str]]:
    """R18 for `writeBack.create`: why an unlinked user with an employee profile is (or is
    not) created in Entra; the sentences, and the keys of the FAQ answers that apply."""
    if user.employee_id is None:
        return [], []
    if CREATE not in settings.write_back or not settings.enabled:
        return ["not created in Entra: writeBack.create is off"], []
    if entra.on_premises_sync_enabled:
        return [f"not created in Entra ({model.HYBRID_TENANT}): the tenant is a hybrid setup, "
                "where write-back cannot be enabled"], ["hybrid_setup"]
    problem = next((p for p in plan.errors if p.reason == model.AMBIGUOUS_MATCH
                    and p.rule == "R9" and user.id in p.candidates), None)
    if problem is not None:
        return [f"not created in Entra ({model.AMBIGUOUS_MATCH}): {problem.message}"], []
    links = {c.user_id: c.entra_id for c in plan.changes
             if c.kind == model.LINK_USER and c.user_id and c.entra_id}
    verdict = entra_create.CreatePlanner(entra, emply, settings, links).verdict(user)
    if verdict is None:
        return [], []
    keys = {model.ENTRA_CREATE: ["write_back_option"],
            entra_create.EXTERNAL_DOMAIN: ["matching"],
            entra_create.ENTRA_USER_EXISTS: ["matching"]}.get(verdict.reason, [])
    return [verdict.words], keys


def _protected_words(user: model.EmplyUser, entra: model.EntraSnapshot,
                     emply: model.EmplySnapshot | None, kind: str) -> str | None:
    """R18: why the write the planner would make is not sent: Graph refused this very
    write before (`entra_user_protected`)."""
    entra_user = entra.users.get(user.entra_id or "")
    if entra_user is None or not entra.refused_writes:
        return None
    if kind == model.ENTRA_DELETE:
        change: model.Change | None = delete_change(user.id, entra_user)
    else:
        employee = next((e for e in (emply.employees if emply else ())
                         if e.id == user.employee_id), None)
        change = update_change(user.id, employee, entra_user) if employee else None
    found = refusal_of(change, entra) if change is not None else None
    if found is None:
        return None
    words = {model.ENTRA_UPDATE: "written back", model.ENTRA_DELETE: "deleted"}[kind]
    return (f"not {words} in Entra ({model.ENTRA_USER_PROTECTED}): Graph refused this "
            f"very {kind} on {found.at.date().isoformat()} (HTTP 403) while it accepted "
            "other writes: the Entra user "
            "holds a privileged administrator role the app may not change. It is sent "
            "again once the employee profile or the Entra user changes, or a week after "
            "the refusal")
