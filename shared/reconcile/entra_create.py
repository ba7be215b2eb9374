"""R9 `writeBack.create`: which Emply users get an Entra user, planned as data.

An Emply user gets an Entra user (`entra_create`) when all hold:
- it is active, not linked, and holds an employee profile that is active or pending
  (FAQ: "you must create an account for the employee first": an employee without a
  user account gets nothing);
- the employee's e-mail is in one of the tenant's verified domains (and in
  `allowedDomains` when that is set, else the new user would be out of scope at once);
  an external address is not created (`external_domain`: "External users that are not
  part of the connected Microsoft Entra ID can be created in Emply");
- no Entra user has that e-mail as UPN or mail, ignoring case (`entra_user_exists`:
  when it is in a configured group, R3 links it instead);
- no other candidate has the same e-mail (`ambiguous_match`);
- the e-mail is a userPrincipalName Graph accepts (`shared.reconcile.upn`): one it
  would refuse is never sent, and is an error on that user (`upn_invalid`).

The change's `after` holds the new Entra user's properties, never a password (the
writer makes one when it sends the request). `mailNickname` is the e-mail's local part
made safe; the writer makes it unique against the directory.

A create the sync began but could not finish (a crash between Graph's POST and the
Emply link) is finished, not repeated: the writer marks the Emply user (`entraCreate`:
the UPN) before it posts, and a marked user whose Entra user exists and is linked to no
one is planned again with that user's id, so the writer adds it to the group and links
it; it also looks the UPN up before every POST.

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from shared.reconcile import model
from shared.reconcile import upn as upn_rules

CREATED_IN_ENTRA = "created_in_entra"
EXTERNAL_DOMAIN = "external_domain"
ENTRA_USER_EXISTS = "entra_user_exists"
CURRENT_EMPLOYEE = frozenset({"active", "pending"})
NICKNAME_LENGTH = 64
_NICKNAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# Employee field → Entra user property, set on the new user when the employee has it.
PROFILE_FIELDS: tuple[tuple[str, str], ...] = (
    ("given_name", "givenName"),
    ("surname", "surname"),
    ("job_title", "jobTitle"),
    ("department", "department"),
    ("mobile_phone", "mobilePhone"),
)


def mail_nickname(email: str) -> str:
    """The e-mail's local part as Graph takes a mailNickname (ASCII letters, digits and
    `._-`, no leading or trailing dot, at most 64 characters)."""
    local = email.strip().rpartition("@")[0] or email.strip()
    safe = _NICKNAME_UNSAFE.sub("", local).strip(".")[:NICKNAME_LENGTH].strip(".")
    return safe or "user"


def unique_nickname(base: str, taken: frozenset[str]) -> str:
    """`base`, or `base` with the smallest number from 2 on that makes it free (`taken`
    holds lower-case nicknames)."""
    if base.lower() not in taken:
        return base
    n = 2
    while True:
        suffix = str(n)
        candidate = base[:NICKNAME_LENGTH - len(suffix)] + suffix
        if candidate.lower() not in taken:
            return candidate
        n += 1


def new_user_fields(employee: model.Employee, upn: str) -> dict[str, object]:
    """The properties the new Entra user gets (what a real run POSTs, without password)."""
    name = (employee.display_name or "").strip() or " ".join(
        p for p in (employee.given_name, employee.surname) if p) or upn.rpartition("@")[0]
    after: dict[str, object] = {
        "accountEnabled": True,
        "displayName": name,
        "userPrincipalName": upn,
        "mailNickname": mail_nickname(upn),
    }
    for attr, prop in PROFILE_FIELDS:
        value = getattr(employee, attr)
        if value:
            after[prop] = value
    return after


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """Why one Emply user is (or is not) created in Entra: the reason and the words;
    `entra_id`: the Entra user an unfinished create made."""

    reason: str
    words: str
    entra_id: str | None = None


class CreatePlanner:
    """Decides `writeBack.create` for each Emply user of one run."""

    def __init__(
        self,
        entra: model.EntraSnapshot,
        emply: model.EmplySnapshot,
        settings: model.Settings,
        links: Mapping[str, str],
    ) -> None:
        self.entra = entra
        self.settings = settings
        self.links = links
        self.employees = {e.id: e for e in emply.employees}
        self.verified = frozenset(model.norm(d) for d in entra.verified_domains)
        self.by_address: dict[str, model.EntraUser] = {}
        for u in entra.users.values():
            for address in (u.user_principal_name, u.mail):
                if address and address.strip():
                    self.by_address.setdefault(model.norm(address), u)
        self.linked_entra = frozenset(u.entra_id for u in emply.users if u.entra_id) | frozenset(
            links.values())
        self.group = settings.groups[0].group_id if settings.groups else None

    def verdict(self, user: model.EmplyUser) -> Verdict | None:
        """None: create is not the question for this user (linked, or no employee)."""
        if user.entra_id is not None or user.id in self.links or user.employee_id is None:
            return None
        employee = self.employees.get(user.employee_id)
        if employee is None:
            return None
        email = employee.email.strip()
        if user.status != "active":
            return Verdict("user_not_active", f"not created in Entra: the Emply user is "
                           f"{user.status}")
        if employee.status not in CURRENT_EMPLOYEE:
            return Verdict("employee_not_current", f"not created in Entra: employee "
                           f"{employee.id} is {employee.status} (only active or pending "
                           "employees get an Entra user)")
        domain = model.upn_domain(email)
        if "@" not in email or domain not in self.verified:
            return Verdict(EXTERNAL_DOMAIN, f"not created in Entra ({EXTERNAL_DOMAIN}): "
                           f"{email}'s domain is not a verified domain of tenant "
                           f"{self.entra.tenant_id}, so it stays an external user in Emply")
        allowed = self.settings.allowed_domain_keys
        if allowed and domain not in allowed:
            return Verdict(EXTERNAL_DOMAIN, f"not created in Entra ({EXTERNAL_DOMAIN}): "
                           f"{domain} is not in allowedDomains, so the new user would be out "
                           "of scope")
        if self.group is None or self.group not in self.entra.groups:
            return Verdict(model.GROUP_NOT_FOUND, "not created in Entra: the first configured "
                           "group, which a new user joins, does not exist in the tenant")
        match = self.by_address.get(model.norm(email))
        if match is not None:
            resumed = (model.norm(user.entra_create) == model.norm(email)
                       and model.norm(match.user_principal_name) == model.norm(email)
                       and match.id not in self.linked_entra)
            if resumed:
                return Verdict(model.ENTRA_CREATE, f"created in Entra as {email} by an "
                               "earlier run that did not finish; the next run adds it to "
                               f"group {self.group} and links it", match.id)
            return Verdict(ENTRA_USER_EXISTS, f"not created in Entra ({ENTRA_USER_EXISTS}): "
                           f"Entra user {match.user_principal_name} already has the e-mail "
                           f"{email}; it is linked when it is in a configured group")
        refused = upn_rules.upn_problem(email)
        if refused is not None:
            return Verdict(upn_rules.UPN_INVALID,
                           f"not created in Entra ({upn_rules.UPN_INVALID}): {refused}, so "
                           "Graph would refuse it and it is never sent; correct the "
                           "employee's e-mail")
        return Verdict(model.ENTRA_CREATE, f"created in Entra at the next run "
                       f"(writeBack.create) as {email}, added to group {self.group} and "
                       "linked to this user")


def plan_creates(
    entra: model.EntraSnapshot,
    emply: model.EmplySnapshot,
    settings: model.Settings,
    links: Mapping[str, str],
) -> tuple[list[model.Change], list[model.Problem], dict[str, int]]:
    """(entra_create changes, problems, skip counts by reason)."""
    planner = CreatePlanner(entra, emply, settings, links)
    wanted: dict[str, list[tuple[model.EmplyUser, Verdict]]] = {}
    skips: dict[str, int] = {}
    problems: list[model.Problem] = []
    for user in emply.users:
        verdict = planner.verdict(user)
        if verdict is None:
            continue
        if verdict.reason == upn_rules.UPN_INVALID:  # an error on that user: someone must act
            problems.append(model.Problem(upn_rules.UPN_INVALID, verdict.words,
                                          user_id=user.id, rule="R9"))
            continue
        if verdict.reason != model.ENTRA_CREATE:
            if verdict.reason in (EXTERNAL_DOMAIN, ENTRA_USER_EXISTS):
                skips[verdict.reason] = skips.get(verdict.reason, 0) + 1
            continue
        employee = planner.employees[user.employee_id or ""]
        wanted.setdefault(model.norm(employee.email), []).append((user, verdict))
    changes: list[model.Change] = []
    for key, claims in wanted.items():
        if len(claims) > 1:
            ids = tuple(sorted(u.id for u, _ in claims))
            problems.append(model.Problem(
                model.AMBIGUOUS_MATCH, f"{len(ids)} Emply users ({', '.join(ids)}) want an "
                f"Entra user with the e-mail {key}: none is created until a person makes "
                "the e-mail unique", rule="R9", candidates=ids))
            continue
        ((user, verdict),) = claims
        employee = planner.employees[user.employee_id or ""]
        upn = employee.email.strip()
        changes.append(model.Change(
            model.ENTRA_CREATE, "R9", model.ENTRA_CREATE, user.id, verdict.entra_id,
            {}, new_user_fields(employee, upn),
            f"Emply user {user.id} (employee {employee.id}) gets Entra user {upn} "
            f"(writeBack.create): enabled, a random password to change at first sign-in, "
            f"added to group {planner.group}, then linked",
        ))
    return changes, problems, skips
