"""R4: a new Emply user for an in-scope Entra user with no match, or the reason why not.

`Creator.refusal` says why a user may not be created (an employee without an account,
a username or e-mail another user has, an id in use); it remembers what the plan has
created so far, so two Entra users of one plan never get the same username or e-mail.
`create_change` is the `create_user` change itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.reconcile import matching, model, roles


class Creator:
    """R4's conditions for creating a user, with what this plan has created so far."""

    def __init__(self, emply: model.EmplySnapshot, index: matching.UserIndex) -> None:
        self.index = index
        self.employees_by_email = {model.norm(e.email): e for e in emply.employees}
        self.users_by_name = {model.norm(u.username): u for u in emply.users}
        self.users_by_email = {model.norm(u.email): u for u in emply.users if u.email}
        self.user_ids = {u.id for u in emply.users}
        self.not_acted_on: set[str] = set()
        """Users counted as created for Entra users a focused plan does not act on."""

    def refusal(self, entra_user: model.EntraUser, *, acted_on: bool = True
                ) -> tuple[str, str] | None:
        """(reason, words) when no user may be created for `entra_user`; None when one is
        (and it is then counted as created; with `acted_on` false, by a full run only: an
        on-demand run's rival, `shared.reconcile.focus`)."""
        taken = self._employee_without_account(entra_user) or self._taken(entra_user)
        if taken is not None:
            return taken
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
        if not acted_on:
            self.not_acted_on.add(user_id)
        return None

    def _employee_without_account(self, entra_user: model.EntraUser
                                  ) -> tuple[str, str] | None:
        employee = self.employees_by_email.get(model.norm(entra_user.mail_or_upn))
        if employee is None or employee.id in self.index.by_employee_id:
            return None
        return model.EMPLOYEE_WITHOUT_ACCOUNT, (
            f"{entra_user.mail_or_upn}: employee {employee.id} has this e-mail but no "
            "user account; create an account for the employee first, then the sync "
            "connects it"
        )

    def _taken(self, entra_user: model.EntraUser) -> tuple[str, str] | None:
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
        if email_holder is None:
            return None
        if email_holder.id in self.not_acted_on:
            return model.EMAIL_TAKEN, (
                f"{entra_user.mail_or_upn}: Entra user {email_holder.username} has this "
                "e-mail too and is in scope; a full run creates its user "
                f"{email_holder.id} first, and no second user with the e-mail is created. "
                "Give one of them another e-mail"
            )
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


def create_change(entra_user: model.EntraUser, groups: tuple[str, ...],
                  settings: model.Settings, *, stamp: str, domain: str,
                  basis: Mapping[str, str | None] | None, group_names: str) -> model.Change:
    """`create_user` for `entra_user`, member of the configured `groups` (R4, roles per
    R11; `basis`: the user's R11 basis when roles are synced)."""
    user_id = new_user_id(entra_user.id)
    user_roles = roles.roles_for_new_user(groups, settings)
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
        "tenantId": settings.tenant_id,
        "linkedAt": stamp,
        "calendarSync": True,
        "syncGroups": list(groups),
        "linkedDomain": domain,
    }
    if basis is not None:
        after["roleBasis"] = basis
    return model.Change(
        model.CREATE_USER, "R4", model.CREATE_USER, user_id, entra_user.id, {}, after,
        f"created from Entra user {entra_user.user_principal_name} "
        f"(member of {group_names}) with roles {', '.join(user_roles)}",
    )


def new_user_id(entra_id: str) -> str:
    """Deterministic, so a run that crashed after creating a user does not create it twice."""
    return f"entra-{entra_id.lower()}"
