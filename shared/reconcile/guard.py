"""R6's deactivations and R7's guard in the plan: who leaves scope, and whether this
run may deactivate them all."""

from __future__ import annotations

from shared.reconcile import lifecycle, model
from shared.reconcile.plan_state import PlanState


class Guarding(PlanState):
    def _deactivate_out_of_scope(self, kept: set[str]) -> None:
        for user in self.emply.users:
            if user.entra_id is None or user.id in kept or user.status != "active":
                continue
            reason, words = lifecycle.deactivation_reason(
                user, self.entra, self.settings, self.groups_by_user.get(user.entra_id, ())
            )
            self.deactivations.append(
                model.Change(
                    model.DEACTIVATE_USER,
                    "R6",
                    reason,
                    user.id,
                    user.entra_id,
                    {"status": "active"},
                    {
                        "status": "deactivated",
                        "deactivationReason": reason,
                        "deactivatedBy": "sync",
                    },
                    words,
                )
            )

    def _guard(self, approval: model.Approval | None) -> tuple[model.Change, ...]:
        """R7. Deactivations applied without approval in the last `GUARD_WINDOW` count too
        (and so do the users they deactivated, in the percentage's base). Held
        deactivations are approved by their count and digest, or by their count alone
        when they are the very set the last run held (the one the operator was shown)."""
        count = len(self.deactivations)
        if not count:
            return ()
        recent = sum(n for _, n in self.window)
        linked_active = self._linked_active_after_this_run()
        guard = self.settings.guard
        digest = model.held_digest(c.user_id for c in self.deactivations)
        if not guard.holds(count + recent, linked_active + recent):
            self.changes.extend(self.deactivations)
            self.window = (*self.window, (self.now, count))
            return ()
        mismatch = self._approval_mismatch(approval, count, digest)
        if approval is not None and mismatch is None:
            self.changes.extend(self.deactivations)  # approved: not counted in the window
            return ()
        self.held_digest = digest
        earlier = (
            f" (with {recent} applied without approval in the last "
            f"{model.GUARD_WINDOW.total_seconds() / 3600:g} h)" if recent else ""
        )
        limit = (
            f"{count} deactivations{earlier} exceed the guard (maxCount {guard.max_count}, "
            f"or from minCount {guard.min_count} on maxPercent {guard.max_percent:g}% of "
            f"{linked_active + recent} linked active users)"
        )
        if mismatch is not None:
            self.problems.append(model.Problem(model.APPROVAL_MISMATCH, mismatch, rule="R7"))
        self.problems.append(
            model.Problem(
                model.HELD_BY_GUARD,
                f"{limit}: held (set {digest}); approve exactly these with "
                f"--approve-deactivations {count}:{digest} "
                f'or {{"approveDeactivations": "{count}:{digest}"}}',
                rule="R7",
            )
        )
        return tuple(self.deactivations)

    def _approval_mismatch(
        self, approval: model.Approval | None, count: int, digest: str
    ) -> str | None:
        """Why `approval` does not approve these `count` deactivations; None if it does."""
        if approval is None:
            return None
        if approval.count is not None and approval.count != count:
            return (
                f"approval was for {approval.count} deactivations but this run would make "
                f"{count}; nothing was approved"
            )
        if approval.digest is not None and approval.digest != digest:
            return (
                f"approval was for the held set {approval.digest} but this run would "
                f"deactivate set {digest} (other users than those shown); nothing was approved"
            )
        last = self.state.held_digest
        if approval.digest is None and last is not None and last != digest:
            return (
                f"approval of {count} deactivations was given, but the last run held set "
                f"{last} and this run would deactivate set {digest} (other users than those "
                f"shown); nothing was approved: approve with {count}:{digest} after checking them"
            )
        return None

    def _linked_active_after_this_run(self) -> int:
        """The guard's base: linked active users once this run's creations, links and
        reactivations land (before any deactivation). Counting those too keeps the guard
        from holding, say, the one leaver of an initial sync that creates hundreds."""
        before = {u.id for u in self.emply.users if u.entra_id is not None and u.status == "active"}
        elsewhere = self.outside.linked_active if self.outside is not None else 0
        statuses = {u.id: u.status for u in self.emply.users}
        gained = {
            c.user_id
            for c in self.changes
            if c.user_id is not None
            and c.user_id not in before
            and (
                c.kind in (model.CREATE_USER, model.REACTIVATE_USER)
                or (c.kind == model.LINK_USER and statuses.get(c.user_id) == "active")
            )
        }
        return len(before) + len(gained) + elsewhere
