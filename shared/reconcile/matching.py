"""R3: find the Emply user for an in-scope Entra user, in the FAQ's order.

1. the user whose `entraId` is the Entra object id;
2. an unlinked user whose username equals the UPN;
3. an unlinked user whose e-mail equals the Entra mail (UPN when mail is empty);
4. an unlinked user whose employee profile's e-mail equals the Entra mail (UPN when
   mail is empty): "Emply files user and employee connected to an e-mail address".

The first step that finds exactly one user wins; a step with two or more
candidates stops the search with `ambiguous_match`. Counted as unlinked at
steps 2–4: a user linked in another tenant than the configured one (its link is
stale, R6 `tenant_changed`), and a user whose Entra user no longer exists — the
sync deactivated it for that (`deleted_in_entra`), or it is still active because
the deletion happened since the last run — so an account deleted and re-created
with the same UPN or e-mail connects again (`entra_account_replaced`). Counting the
still-active ones too makes the plan reach in one run what it would reach in two
(deactivate, then relink): applying a plan and planning again yields nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable, Mapping, Sequence

from shared.reconcile import model

STEPS = (1, 2, 3, 4)


@dataclasses.dataclass(frozen=True, slots=True)
class Match:
    user: model.EmplyUser | None
    step: int  # 1..4, or 0 when nothing matched
    ambiguous: tuple[model.EmplyUser, ...] = ()


class UserIndex:
    """Look-ups over the Emply users, built once per plan (O(n))."""

    def __init__(
        self,
        users: Iterable[model.EmplyUser],
        tenant_id: str,
        employees: Iterable[model.Employee] = (),
        entra_ids: Container[str] = frozenset(),
    ) -> None:
        """`entra_ids`: the Entra users that exist now (a user whose Entra user is gone
        may be linked again, see the module docstring)."""
        employee_emails = {e.id: model.norm(e.email) for e in employees}
        self.by_entra_id: dict[str, list[model.EmplyUser]] = {}
        self.by_username: dict[str, list[model.EmplyUser]] = {}
        self.by_email: dict[str, list[model.EmplyUser]] = {}
        self.by_employee_email: dict[str, list[model.EmplyUser]] = {}
        self.by_employee_id: dict[str, list[model.EmplyUser]] = {}
        for user in users:
            if user.employee_id:
                self.by_employee_id.setdefault(user.employee_id, []).append(user)
            if user.entra_id is not None and not is_stale_link(user, tenant_id):
                self.by_entra_id.setdefault(user.entra_id.lower(), []).append(user)
                if not is_replaceable(user, entra_ids):
                    continue
            if user.status == "deleted":
                continue  # deleted in Emply: never linked again (write-back could act on it)
            self.by_username.setdefault(model.norm(user.username), []).append(user)
            if user.email:
                self.by_email.setdefault(model.norm(user.email), []).append(user)
            employee_email = employee_emails.get(user.employee_id or "")
            if employee_email:
                self.by_employee_email.setdefault(employee_email, []).append(user)

    def find(
        self, entra_user: model.EntraUser, taken: Container[str] = frozenset()
    ) -> Match:
        """R3 for one Entra user; `taken` are unlinked users already given to another Entra
        user in this run, which count as linked (as they will be at the next run)."""
        # Step by step, so the common case (already linked) costs one dict look-up.
        candidates: Sequence[model.EmplyUser]
        for number in STEPS:
            if number == 1:
                candidates = self.by_entra_id.get(entra_user.id.lower(), ())
            elif number == 2:
                candidates = self.by_username.get(model.norm(entra_user.user_principal_name), ())
            elif number == 3:
                candidates = self.by_email.get(model.norm(entra_user.mail_or_upn), ())
            else:
                candidates = self.by_employee_email.get(model.norm(entra_user.mail_or_upn), ())
            if number > 1 and taken:
                candidates = [u for u in candidates if u.id not in taken]
            if len(candidates) == 1:
                return Match(candidates[0], number)
            if len(candidates) > 1:
                return Match(None, number, tuple(candidates))
        return Match(None, 0)


def is_stale_link(user: model.EmplyUser, tenant_id: str) -> bool:
    """Linked, but in another tenant than the one the integration is connected to."""
    return (
        user.entra_id is not None
        and user.link_tenant_id is not None
        and user.link_tenant_id.lower() != tenant_id.lower()
    )


def is_replaceable(user: model.EmplyUser, entra_ids: Container[str]) -> bool:
    """Linked to an Entra user that no longer exists, and active or deactivated by the sync
    for that very reason: the link may move to a re-created account (R3,
    `entra_account_replaced`)."""
    return (
        user.entra_id is not None
        and user.entra_id not in entra_ids
        and (
            user.status == "active"
            or (
                user.status == "deactivated"
                and user.deactivated_by == "sync"
                and user.deactivation_reason == model.DELETED_IN_ENTRA
            )
        )
    )


STEP_WORDS = {
    1: "Entra object id",
    2: "username = UPN",
    3: "e-mail = Entra mail",
    4: "employee profile e-mail = Entra mail",
}
STEP_REASONS = {
    2: model.LINKED_BY_USERNAME,
    3: model.LINKED_BY_EMAIL,
    4: model.LINKED_BY_EMPLOYEE_EMAIL,
}

Claims = dict[str, list[tuple[int, str, bool]]]
"""Emply user id → the claims on it at its earliest step: (step, Entra id, unique?)."""


@dataclasses.dataclass(frozen=True)
class Resolution:
    """R3 for every in-scope Entra user of a plan, resolved to a fixpoint (`resolve`)."""

    won: dict[str, Match]
    """Entra id → its match, for the Entra users that were given an Emply user."""
    taken: dict[str, str]
    """Emply user id → the Entra id it goes to."""
    found: dict[str, Match]
    """Entra id → its match in the last round, for those not given one."""
    claims: Claims
    """The claims of the last round."""


def resolve(index: UserIndex, entra_users: Sequence[model.EntraUser]) -> Resolution:
    """Each round gives every Emply user claimed at a strictly earliest R3 step by exactly
    one Entra user to that user; users given away count as linked in the next round,
    which may make other matches unique. The result does not depend on the order of the
    Entra users, and is what the next run also finds (plan → apply → plan yields nothing)."""
    taken: dict[str, str] = {}
    won: dict[str, Match] = {}
    pending = list(entra_users)
    while True:
        found = {e.id: index.find(e, taken) for e in pending}
        rounds_claims = claims(found)
        winners = {
            rivals[0][1]: user_id
            for user_id, rivals in rounds_claims.items()
            if len(rivals) == 1 and rivals[0][2]
        }
        if not winners:
            return Resolution(won, taken, found, rounds_claims)
        for entra_id, user_id in winners.items():
            taken[user_id] = entra_id
            won[entra_id] = found[entra_id]
        pending = [e for e in pending if e.id not in won]


def claims(found: Mapping[str, Match]) -> Claims:
    """Emply user id → the claims at its earliest step: (step, Entra id, unique?).

    An ambiguous match claims each of its candidates too (not uniquely), so a tie
    elsewhere cannot quietly hand one of them to a weaker match."""
    out: Claims = {}
    for entra_id, match in found.items():
        unique = match.user is not None
        for user in (match.user,) if match.user is not None else match.ambiguous:
            mine = out.setdefault(user.id, [])
            if mine and mine[0][0] < match.step:
                continue
            if mine and mine[0][0] > match.step:
                mine.clear()
            mine.append((match.step, entra_id, unique))
    return out


def ambiguous_problem(entra_user: model.EntraUser, step: int,
                      candidates: Iterable[model.EmplyUser],
                      rivals: Iterable[str] = ()) -> model.Problem:
    """`ambiguous_match`: several Emply users at one step, or one Emply user that several
    Entra users claim at the same step."""
    what = STEP_WORDS[step]
    ids = sorted(u.id for u in candidates)
    others = [e for e in rivals if e != entra_user.id]
    if others:
        detail = (f"Emply user {ids[0]} matches by {what} both this and Entra user(s) "
                  f"{', '.join(others)}")
    else:
        detail = f"more than one Emply user matches by {what}: {', '.join(ids)}"
    return model.Problem(
        model.AMBIGUOUS_MATCH,
        f"{entra_user.user_principal_name}: {detail}; nothing changed until a person "
        "makes the match unique",
        entra_id=entra_user.id, rule="R3", candidates=tuple(ids))
