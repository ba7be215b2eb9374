"""What one plan is made of while it is made: its inputs and what it has decided so far.

`shared.reconcile.planner` is this state with its rules mixed in (`linking`,
`role_sync`, `guard`); each rule module adds methods that read the inputs and append
to `changes`, `problems`, `skips` and `bookkeeping`. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from shared.reconcile import lifecycle, model, roles, scope


class PlanState:
    def __init__(
        self,
        entra: model.EntraSnapshot,
        emply: model.EmplySnapshot,
        settings: model.Settings,
        state: model.SyncState,
        now: dt.datetime,
        outside: model.Outside | None = None,
    ) -> None:
        self.entra = entra
        self.emply = emply
        self.settings = settings
        self.state = state
        self.now = now
        self.stamp = now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        self.groups_by_user = scope.configured_groups_by_user(entra, settings)
        self.admin_roles = frozenset(r.id for r in emply.roles if r.administrator)
        self.changes: list[model.Change] = []
        self.deactivations: list[model.Change] = []
        self.problems: list[model.Problem] = []
        self.skips: dict[str, int] = {}
        self.bookkeeping: dict[str, model.Bookkeeping] = {}
        self.reconciled_roles: set[str] = set()
        self.looked_at: set[str] = set()
        """Linked users kept in scope by this run (their groups are known now)."""
        self.held_digest: str | None = None
        self.window: tuple[tuple[dt.datetime, int], ...] = ()
        self._bases: dict[tuple[str, ...], dict[str, str | None]] = {}
        self._domains: dict[str, str] = {}
        self._group_lists: dict[tuple[str, ...], list[str]] = {}
        self.approve_deletions: model.Approval | None = None
        self.outside = outside
        """The rest of the world, when the snapshots hold only part of it."""


    def _remember(self, user_id: str, **fields: Any) -> None:
        kept = self.bookkeeping.get(user_id) or model.Bookkeeping(user_id)
        self.bookkeeping[user_id] = dataclasses.replace(
            kept, **{model.BOOKKEPT[name]: value for name, value in fields.items()})


    def _basis(self, groups: tuple[str, ...]) -> dict[str, str | None]:
        """The basis for users in `groups`, one shared (read-only) dict per set of groups:
        100,000 users have a few dozen distinct ones, and each dict costs memory."""
        basis = self._bases.get(groups)
        if basis is None:
            basis = self._bases[groups] = roles.basis_of(groups, self.settings.mapping)
        return basis

    def _domain(self, entra_user: model.EntraUser) -> str:
        """The UPN's domain, one shared string per domain."""
        domain = model.upn_domain(entra_user.user_principal_name)
        return self._domains.setdefault(domain, domain)

    def _group_names(self, groups: Iterable[str]) -> str:
        names = [lifecycle.group_name(self.entra, g) for g in groups]
        return ", ".join(names) or "no configured group"
