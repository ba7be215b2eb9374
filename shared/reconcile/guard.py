"""R6's deactivations of linked users out of scope, and R7's guard over them.

`out_of_scope` lists the deactivations a plan would make; `judge` decides whether they
apply or are held: more than `maxCount`, or at least `minCount` and more than
`maxPercent` % of the linked active users, counting the deactivations applied without
approval within `model.GUARD_WINDOW` too (a slow leak of leavers is held like a burst).
Held deactivations are approved by their count and the digest of the set, or by their
count alone when they are the very set the last run held (the one the operator saw).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping

from shared.reconcile import lifecycle, model

Window = tuple[tuple[dt.datetime, int], ...]


def out_of_scope(users: Iterable[model.EmplyUser], kept: set[str],
                 entra: model.EntraSnapshot, settings: model.Settings,
                 groups_by_user: Mapping[str, tuple[str, ...]],
                 acts_on: Callable[[model.EmplyUser], bool] | None = None
                 ) -> list[model.Change]:
    """R6: every linked active user not `kept` in scope is deactivated, with the first
    reason that applies. `acts_on`: only the users it accepts (an on-demand run's)."""
    out = []
    for user in users:
        if user.entra_id is None or user.id in kept or user.status != "active":
            continue
        if acts_on is not None and not acts_on(user):
            continue
        reason, words = lifecycle.deactivation_reason(
            user, entra, settings, groups_by_user.get(user.entra_id, ()))
        out.append(model.Change(
            model.DEACTIVATE_USER, "R6", reason, user.id, user.entra_id,
            {"status": "active"},
            {"status": "deactivated", "deactivationReason": reason, "deactivatedBy": "sync"},
            words))
    return out


def recent(window: Window, now: dt.datetime) -> Window:
    """The entries of R7's rolling window still within `GUARD_WINDOW` of `now`."""
    return tuple((at, n) for at, n in window
                 if dt.timedelta(0) <= now - at < model.GUARD_WINDOW)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The guard's decision on a plan's deactivations."""

    applied: tuple[model.Change, ...] = ()
    held: tuple[model.Change, ...] = ()
    problems: tuple[model.Problem, ...] = ()
    window: Window = ()
    """R7's window after this plan (its unapproved deactivations added)."""
    held_digest: str | None = None


def judge(deactivations: list[model.Change], *, window: Window, now: dt.datetime,
          guard: model.DeactivationGuard, linked_active: int,
          approval: model.Approval | None, last_held: str | None) -> Verdict:
    """R7 over `deactivations`; `window`: the recent entries (`recent`); `linked_active`:
    the percentage's base (`linked_active_after`); `last_held`: the digest of the set the
    last run held."""
    count = len(deactivations)
    if not count:
        return Verdict(window=window)
    earlier = sum(n for _, n in window)
    digest = model.held_digest(c.user_id for c in deactivations)
    if not guard.holds(count + earlier, linked_active + earlier):
        return Verdict(applied=tuple(deactivations), window=(*window, (now, count)))
    mismatch = approval_mismatch(approval, count, digest, last_held)
    if approval is not None and mismatch is None:
        # Approved: applied, and not counted in the window.
        return Verdict(applied=tuple(deactivations), window=window)
    since = (
        f" (with {earlier} applied without approval in the last "
        f"{model.GUARD_WINDOW.total_seconds() / 3600:g} h)" if earlier else ""
    )
    limit = (
        f"{count} deactivations{since} exceed the guard (maxCount {guard.max_count}, "
        f"or from minCount {guard.min_count} on maxPercent {guard.max_percent:g}% of "
        f"{linked_active + earlier} linked active users)"
    )
    problems = [] if mismatch is None else [
        model.Problem(model.APPROVAL_MISMATCH, mismatch, rule="R7")]
    problems.append(model.Problem(
        model.HELD_BY_GUARD,
        f"{limit}: held (set {digest}); approve exactly these with "
        f"--approve-deactivations {count}:{digest} "
        f'or {{"approveDeactivations": "{count}:{digest}"}}',
        rule="R7"))
    return Verdict(held=tuple(deactivations), problems=tuple(problems), window=window,
                   held_digest=digest)


def approval_mismatch(approval: model.Approval | None, count: int, digest: str,
                      last_held: str | None) -> str | None:
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
    if approval.digest is None and last_held is not None and last_held != digest:
        return (
            f"approval of {count} deactivations was given, but the last run held set "
            f"{last_held} and this run would deactivate set {digest} (other users than those "
            f"shown); nothing was approved: approve with {count}:{digest} after checking them"
        )
    return None


def linked_active_after(users: Iterable[model.EmplyUser],
                        changes: Iterable[model.Change]) -> int:
    """The guard's base: linked active users once a plan's creations, links and
    reactivations land (before any deactivation). Counting those too keeps the guard
    from holding, say, the one leaver of an initial sync that creates hundreds."""
    before: set[str] = set()
    statuses: dict[str, str] = {}
    for user in users:
        statuses[user.id] = user.status
        if user.entra_id is not None and user.status == "active":
            before.add(user.id)
    gained = {
        c.user_id
        for c in changes
        if c.user_id is not None
        and c.user_id not in before
        and (
            c.kind in (model.CREATE_USER, model.REACTIVATE_USER)
            or (c.kind == model.LINK_USER and statuses.get(c.user_id) == "active")
        )
    }
    return len(before) + len(gained)
