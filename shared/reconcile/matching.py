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
from collections.abc import Container, Iterable, Sequence

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
