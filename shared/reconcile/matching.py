"""R3: find the Emply user for an in-scope Entra user, in the FAQ's order.

1. the user whose `entraId` is the Entra object id;
2. an unlinked user whose username equals the UPN;
3. an unlinked user whose e-mail equals the Entra mail (UPN when mail is empty).

The first step that finds exactly one user wins; a step with two or more
candidates stops the search with `ambiguous_match`. A user linked in another
tenant than the configured one counts as unlinked (its link is stale, R6
`tenant_changed`), so it can be linked again in the new tenant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable, Sequence

from shared.reconcile import model


@dataclasses.dataclass(frozen=True, slots=True)
class Match:
    user: model.EmplyUser | None
    step: int  # 1..3, or 0 when nothing matched
    ambiguous: tuple[model.EmplyUser, ...] = ()


class UserIndex:
    """Look-ups over the Emply users, built once per plan (O(n))."""

    def __init__(self, users: Iterable[model.EmplyUser], tenant_id: str) -> None:
        self.by_entra_id: dict[str, list[model.EmplyUser]] = {}
        self.by_username: dict[str, list[model.EmplyUser]] = {}
        self.by_email: dict[str, list[model.EmplyUser]] = {}
        self.by_employee_id: dict[str, list[model.EmplyUser]] = {}
        for user in users:
            if user.employee_id:
                self.by_employee_id.setdefault(user.employee_id, []).append(user)
            if user.entra_id is not None and not is_stale_link(user, tenant_id):
                self.by_entra_id.setdefault(user.entra_id.lower(), []).append(user)
                continue
            if user.status == "deleted":
                continue  # deleted in Emply: never linked again (write-back could act on it)
            self.by_username.setdefault(model.norm(user.username), []).append(user)
            if user.email:
                self.by_email.setdefault(model.norm(user.email), []).append(user)

    def find(
        self, entra_user: model.EntraUser, taken: Container[str] = frozenset()
    ) -> Match:
        """R3 for one Entra user; `taken` are unlinked users already given to another Entra
        user in this run, which count as linked (as they will be at the next run)."""
        # Step by step, so the common case (already linked) costs one dict look-up.
        candidates: Sequence[model.EmplyUser]
        for number in (1, 2, 3):
            if number == 1:
                candidates = self.by_entra_id.get(entra_user.id.lower(), ())
            elif number == 2:
                candidates = self.by_username.get(model.norm(entra_user.user_principal_name), ())
            else:
                candidates = self.by_email.get(model.norm(entra_user.mail_or_upn), ())
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
