"""R3 (matching, linking), R4 (creation) and R6's reactivation in the plan: what each
in-scope Entra user becomes in Emply."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from shared.reconcile import matching, model, roles, scope
from shared.reconcile.role_sync import RoleSync


class Linking(RoleSync):
    def _match_in_scope_users(self) -> set[str]:
        """Links, creates, reactivates and sets roles; returns the Emply user ids kept in scope.

        The result must not depend on the order of Entra ids, and must be what the next run
        would also find (plan → apply → plan yields nothing), so matching is resolved to a
        fixpoint: each round gives every Emply user claimed at a strictly earliest R3 step by
        exactly one Entra user to that user; users given away count as linked in the next
        round, which may make other matches unique. What is left: ties at one step are
        `ambiguous_match` for all involved; an Entra user whose only candidate is held by a
        stronger (unresolved) claim has no match and is created (R4).
        """
        index = matching.UserIndex(
            self.emply.users, self.settings.tenant_id, self.emply.employees, self.entra.users
        )
        in_scope = self._in_scope_users()
        claimed = _Claimed.resolve(index, in_scope)
        kept: set[str] = set(claimed.taken)
        creator = Creator(self.emply, index)
        for entra_user, groups in in_scope:
            match = claimed.won.get(entra_user.id)
            if match is not None and match.user is not None:
                user = match.user
                # With allowed domains, being in scope already says the domain is allowed.
                if (match.step == 1 and not self.settings.allowed_domains
                        and user.linked_domain is not None
                        and not scope.domain_kept(entra_user, user.linked_domain, self.settings)):
                    kept.discard(user.id)  # R6 domain_changed: deactivated below
                    continue
                self._keep_linked(user, entra_user, groups, match.step)
            elif not self._unresolved(entra_user, claimed, kept):
                self._create_or_refuse(entra_user, groups, creator)
        return kept

    def _in_scope_users(self) -> list[tuple[model.EntraUser, tuple[str, ...]]]:
        """R2's users with their configured groups, by Entra id."""
        in_scope = []
        for entra_id in sorted(self.groups_by_user):
            entra_user = self.entra.users.get(entra_id)
            groups = self.groups_by_user[entra_id]
            if entra_user is not None and scope.in_scope(entra_user, groups, self.settings):
                in_scope.append((entra_user, groups))
        return in_scope

    def _unresolved(self, entra_user: model.EntraUser, claimed: _Claimed,
                    kept: set[str]) -> bool:
        """An Entra user the fixpoint gave no Emply user: a tie (`ambiguous_match`, True)
        or no match at all (False: created, R4)."""
        match = claimed.found[entra_user.id]
        if match.ambiguous:
            self._ambiguous(entra_user, match.step, match.ambiguous)
            kept.update(u.id for u in match.ambiguous)
            return True
        if match.user is not None:
            rivals = claimed.claims[match.user.id]
            if any(step == match.step for step, e, _ in rivals if e != entra_user.id):
                tied = sorted(e for step, e, _ in rivals if step == match.step)
                self._ambiguous(entra_user, match.step, (match.user,), tied)
                kept.add(match.user.id)
                return True
            # A stronger claim (itself unresolved) holds this Emply user: no match here.
        return False

    def _ambiguous(
        self,
        entra_user: model.EntraUser,
        step: int,
        candidates: Iterable[model.EmplyUser],
        rivals: Iterable[str] = (),
    ) -> None:
        what = STEP_WORDS[step]
        ids = sorted(u.id for u in candidates)
        others = [e for e in rivals if e != entra_user.id]
        if others:
            detail = (
                f"Emply user {ids[0]} matches by {what} both this and Entra user(s) "
                f"{', '.join(others)}"
            )
        else:
            detail = f"more than one Emply user matches by {what}: {', '.join(ids)}"
        self.problems.append(
            model.Problem(
                model.AMBIGUOUS_MATCH,
                f"{entra_user.user_principal_name}: {detail}; nothing changed until a person "
                "makes the match unique",
                entra_id=entra_user.id,
                rule="R3",
                candidates=tuple(ids),
            )
        )

    def _create_or_refuse(
        self,
        entra_user: model.EntraUser,
        groups: tuple[str, ...],
        creator: Creator,
    ) -> None:
        refusal = creator.refusal(entra_user)
        if refusal is not None:
            reason, words = refusal
            self.problems.append(
                model.Problem(reason, words, entra_id=entra_user.id, rule="R4")
            )
            return
        user_id = new_user_id(entra_user.id)
        user_roles = roles.roles_for_new_user(groups, self.settings)
        after: dict[str, Any] = {
            "id": user_id,
            "username": entra_user.user_principal_name.strip(),
            "email": entra_user.mail_or_upn.strip(),
            "displayName": entra_user.display_name,
            "status": "active",
            "roles": list(user_roles),
            "employeeId": None,
            "source": "entra",
            "entraId": entra_user.id,
            "tenantId": self.settings.tenant_id,
            "linkedAt": self.stamp,
            "calendarSync": True,
            "syncGroups": list(groups),
            "linkedDomain": self._domain(entra_user),
        }
        if self.settings.sync_roles:
            after["roleBasis"] = self._basis(groups)
        self.changes.append(
            model.Change(
                model.CREATE_USER,
                "R4",
                model.CREATE_USER,
                user_id,
                entra_user.id,
                {},
                after,
                f"created from Entra user {entra_user.user_principal_name} "
                f"(member of {self._group_names(groups)}) with roles {', '.join(user_roles)}",
            )
        )

    def _keep_linked(
        self,
        user: model.EmplyUser,
        entra_user: model.EntraUser,
        groups: tuple[str, ...],
        step: int,
    ) -> None:
        if step > 1 or user.entra_id != entra_user.id:
            self._link(user, entra_user, step)
        elif user.linked_domain is None or self.settings.allowed_domains:
            # A link from before the domain was recorded takes its current one (deactivating
            # nobody); under an allowed list, a move between allowed domains is followed, so
            # emptying the list later does not deactivate such users.
            domain = self._domain(entra_user)
            if domain != user.linked_domain:
                self._remember(user.id, linkedDomain=domain)
        status = user.status
        if user.status == "deactivated" and user.deactivated_by == "sync":
            status = "active"
            self.changes.append(
                model.Change(
                    model.REACTIVATE_USER,
                    "R6",
                    model.REACTIVATE_USER,
                    user.id,
                    entra_user.id,
                    {"status": "deactivated", "deactivationReason": user.deactivation_reason},
                    {"status": "active", "deactivationReason": None, "deactivatedBy": None},
                    f"back in scope (member of {self._group_names(groups)}); it was deactivated "
                    f"by the sync ({user.deactivation_reason})",
                )
            )
        if tuple(user.sync_groups) != groups:
            shared = self._group_lists.get(groups)
            if shared is None:  # one (read-only) list per set of groups, not one per user
                shared = self._group_lists[groups] = list(groups)
            self._remember(user.id, syncGroups=shared)
        self.looked_at.add(user.id)
        if status == "active" and self.settings.sync_roles:
            self._sync_roles(user, entra_user, groups)
        else:
            self._seed_role_basis(user, groups)

    def _link(self, user: model.EmplyUser, entra_user: model.EntraUser, step: int) -> None:
        """R3's `link_user`: found at `step`, or a re-created Entra account."""
        domain = self._domain(entra_user)
        how = STEP_WORDS.get(step, "Entra object id")
        reason = STEP_REASONS.get(step, model.LINK_USER)
        words = f"linked to Entra user {entra_user.user_principal_name} by {how}"
        if step > 1 and matching.is_replaceable(user, self.entra.users):
            reason = model.ENTRA_ACCOUNT_REPLACED
            words += (
                f"; its Entra user {user.entra_id} was deleted and this account was "
                "created in its place"
            )
        self.changes.append(
            model.Change(
                model.LINK_USER,
                "R3",
                reason,
                user.id,
                entra_user.id,
                {
                    "entraId": user.entra_id,
                    "tenantId": user.link_tenant_id,
                    "linkedDomain": user.linked_domain,
                },
                {
                    "entraId": entra_user.id,
                    "tenantId": self.settings.tenant_id,
                    "linkedAt": self.stamp,
                    "linkedDomain": domain,
                },
                words,
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


@dataclasses.dataclass
class _Claimed:
    """R3's fixpoint: which Emply user each Entra user won (`won`, `taken`), and the
    last round's matches and claims for those that won none."""

    taken: dict[str, str]
    """Emply user id -> the Entra id it goes to."""
    won: dict[str, matching.Match]
    found: dict[str, matching.Match]
    claims: dict[str, list[tuple[int, str, bool]]]

    @classmethod
    def resolve(cls, index: matching.UserIndex,
                in_scope: list[tuple[model.EntraUser, tuple[str, ...]]]) -> _Claimed:
        taken: dict[str, str] = {}
        won: dict[str, matching.Match] = {}
        pending = in_scope
        while True:
            found = {e.id: index.find(e, taken) for e, _ in pending}
            claims = _claims(found)
            winners = {
                rivals[0][1]: user_id
                for user_id, rivals in claims.items()
                if len(rivals) == 1 and rivals[0][2]
            }
            if not winners:
                return cls(taken, won, found, claims)
            for entra_id, user_id in winners.items():
                taken[user_id] = entra_id
                won[entra_id] = found[entra_id]
            pending = [(e, g) for e, g in pending if e.id not in won]


def _claims(found: dict[str, matching.Match]) -> dict[str, list[tuple[int, str, bool]]]:
    """Emply user id → the claims at its earliest step: (step, Entra id, unique?).

    An ambiguous match claims each of its candidates too (not uniquely), so a tie
    elsewhere cannot quietly hand one of them to a weaker match."""
    claims: dict[str, list[tuple[int, str, bool]]] = {}
    for entra_id, match in found.items():
        unique = match.user is not None
        for user in (match.user,) if match.user is not None else match.ambiguous:
            mine = claims.setdefault(user.id, [])
            if mine and mine[0][0] < match.step:
                continue
            if mine and mine[0][0] > match.step:
                mine.clear()
            mine.append((match.step, entra_id, unique))
    return claims


class Creator:
    """R4's conditions for creating a user, with what this run has created so far."""

    def __init__(self, emply: model.EmplySnapshot, index: matching.UserIndex) -> None:
        self.index = index
        self.employees_by_email = {model.norm(e.email): e for e in emply.employees}
        self.users_by_name = {model.norm(u.username): u for u in emply.users}
        self.users_by_email = {model.norm(u.email): u for u in emply.users if u.email}
        self.user_ids = {u.id for u in emply.users}

    def refusal(self, entra_user: model.EntraUser) -> tuple[str, str] | None:
        employee = self.employees_by_email.get(model.norm(entra_user.mail_or_upn))
        if employee is not None and employee.id not in self.index.by_employee_id:
            return model.EMPLOYEE_WITHOUT_ACCOUNT, (
                f"{entra_user.mail_or_upn}: employee {employee.id} has this e-mail but no "
                "user account; create an account for the employee first, then the sync "
                "connects it"
            )
        holder = self.users_by_name.get(model.norm(entra_user.user_principal_name))
        if holder is not None:
            # An unlinked active user would have matched, so the holder is linked (typically
            # an Entra account deleted and created again with the same UPN) or deleted in Emply.
            held_by = (
                f"is linked to Entra user {holder.entra_id}"
                if holder.entra_id
                else f"is {holder.status} in Emply"
            )
            return model.USERNAME_TAKEN, (
                f"{entra_user.user_principal_name}: Emply user {holder.id} already has this "
                f"username and {held_by}; no second user is created. If it is the same person, "
                "clear that user's entraId (emply export, edit, import --replace) and the next "
                "run links it"
            )
        email_holder = self.users_by_email.get(model.norm(entra_user.mail_or_upn))
        if email_holder is not None:
            # Emply files a user by its e-mail, and an Emply state with two users of one
            # e-mail cannot be imported again: no second user gets it.
            # The words name only what this run does not change (the holder may be linked
            # by this very run), so a plan made again after applying reports the same.
            return model.EMAIL_TAKEN, (
                f"{entra_user.mail_or_upn}: Emply user {email_holder.id} already has this "
                "e-mail; no second user with it is created. If it is the same person, clear "
                "that user's entraId if it has one (emply export, edit, import --replace) and "
                "the next run links it; if not, give one of them another e-mail"
            )
        user_id = new_user_id(entra_user.id)
        if user_id in self.user_ids:
            return model.USERNAME_TAKEN, (
                f"{entra_user.user_principal_name}: an Emply user with id {user_id} exists "
                "but is not linked to this Entra user; nothing created"
            )
        created = model.EmplyUser(
            id=user_id, username=entra_user.user_principal_name,
            email=entra_user.mail_or_upn, entra_id=entra_user.id,
        )
        self.users_by_name[model.norm(entra_user.user_principal_name)] = created
        self.users_by_email[model.norm(entra_user.mail_or_upn)] = created
        self.user_ids.add(user_id)
        return None


def new_user_id(entra_id: str) -> str:
    """Deterministic, so a run that crashed after creating a user does not create it twice."""
    return f"entra-{entra_id.lower()}"
