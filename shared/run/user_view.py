"""An on-demand run's directory: one user, read directly from Graph, not through delta.

What answers to the key (as `explain` takes it): an Emply user by id, username or
e-mail (or the holder of an employee profile with that id or e-mail); else an employee
without an account; else an Entra user by object id, UPN or mail. Which Entra users are
then read (`shared.graph.one_user`):

- an Emply user linked in the configured tenant: its Entra user, by object id;
- otherwise (unlinked, linked in another tenant, or its Entra user is gone): every Entra
  user whose UPN or mail is the user's username, e-mail or employee profile's e-mail —
  R3's steps 2–4 compare exactly those, so the plan matches as a full run would;
- no Emply user: the Entra user the key names;
- and the other Entra users that answer to the R3 keys of the unlinked Emply users
  those may match: one of them may claim such an Emply user at an earlier step, and a
  full run would give it to that one (they are in the view, and not acted on).

Each with its groups (`transitiveMemberOf`), the configured groups it is not in (do
they still exist: R6 `group_removed`), and whether the Entra users of the Emply users
that R3 could hand to it still exist (a user whose Entra user is gone may be linked
again, `entra_account_replaced`): a one-user view must not take "not read" for "gone".

A key that names nobody is `explain.NotFound` (nothing recorded). An address of another
tenant (a domain that is not one of the tenant's verified domains) is refused with that
reason. The view becomes the run's directory (`shared.graph.reader.EntraRead`) and a
`shared.reconcile.focus.Focus`; its step (`STEP`) adds the other users found to exist
to the planner's snapshot, where they are looked at and never acted on.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.graph import client as graph_client
from shared.graph import middleware, one_user, reader
from shared.reconcile import convert, explain, focus, matching, model
from shared.run.context import Run
from shared.run.steps import base

Json = dict[str, Any]
OTHER_TENANT = "other_tenant"


@dataclasses.dataclass(frozen=True)
class UserView:
    """What an on-demand run read for a key, and whom it concerns."""

    key: str
    user: Mapping[str, Any] | None
    """The Emply user that answers to the key, if any."""
    employee: model.Employee | None
    """The employee profile that answers to the key (or the user's), if any."""
    entra_users: tuple[Json, ...]
    """The Entra users read for the key (as Graph gave them): the run acts on these."""
    directory: reader.EntraRead
    others: tuple[Json, ...] = ()
    """Entra users found to exist that the run only looks at."""
    claimants: tuple[Json, ...] = ()
    """Entra users read because they may claim an Emply user of the key's Entra users at
    an earlier R3 step: in the directory (with their groups), looked at, not acted on."""
    refusal: tuple[str, str] | None = None
    """(reason, words) when the key is refused (another tenant's address)."""

    @property
    def focused(self) -> focus.Focus:
        entra_ids = [u["id"] for u in self.entra_users]
        user_ids = []
        if self.user is not None:
            user_ids.append(str(self.user["id"]))
            if self.user.get("entraId"):
                entra_ids.append(str(self.user["entraId"]))
        return focus.Focus.of(entra_ids, user_ids)


def emply_side(key: str, doc: Mapping[str, Any]
               ) -> tuple[Mapping[str, Any] | None, model.Employee | None]:
    """The Emply user and the employee profile that answer to the key (`explain`'s
    look-up); raises `explain.AmbiguousUser` when several users do."""
    users = {str(u["id"]): u for u in doc.get("users", ())}
    employees = convert.emply_snapshot({"employees": doc.get("employees", ())}).employees
    user = explain.find_user(key, users, employees)
    wanted = model.norm(key)
    profile_id = user.get("employeeId") if user is not None else None
    employee = next((e for e in employees if e.id == profile_id or (
        user is None and (e.id == key or model.norm(e.email) == wanted))), None)
    return user, employee


async def read(graph: graph_client.GraphClient, doc: Mapping[str, Any],
               settings: model.Settings, key: str) -> UserView:
    """The view for `key` (see the module's docstring)."""
    user, employee = emply_side(key, doc)
    with middleware.track() as stats:
        org = await one_user.organization(graph, settings.tenant_id)
        found = await _entra_users(graph, key, user, employee, settings)
        if not found and user is None and employee is None:
            refusal = _other_tenant(key, org, settings)
            if refusal is None:
                raise explain.NotFound(
                    f"no Emply user or employee, and no Entra user of tenant "
                    f"{settings.tenant_id}, has id, username or e-mail {key!r}")
            mirror = one_user.view(settings.tenant_id, org, (), {}, {})
            return UserView(key, None, None, (), _read(mirror, stats), refusal=refusal)
        candidates = _Candidates(doc, settings)
        claimants = await _claimants(graph, candidates, found)
        read = [*found, *claimants]
        memberships = dict(zip((u["id"] for u in read), await asyncio.gather(
            *(one_user.member_groups(graph, u["id"]) for u in read)), strict=True))
        configured = await _configured(graph, settings, memberships.values())
        others = await one_user.existing(graph, _rivals(candidates, read))
    mirror = one_user.view(settings.tenant_id, org, read, memberships, configured)
    return UserView(key, user, employee, tuple(found), _read(mirror, stats), tuple(others),
                    claimants=tuple(claimants))


def refused(key: str, doc: Mapping[str, Any], settings: model.Settings) -> UserView:
    """The view of a run refused before it reads Graph: the integration is removed (R17)."""
    user, employee = emply_side(key, doc)
    mirror = one_user.view(settings.tenant_id, {}, (), {}, {})
    return UserView(key, user, employee, (), _read(mirror, middleware.GraphStats()),
                    refusal=(model.INTEGRATION_DISABLED, (
                        "the integration is disabled (enabled false): an on-demand run "
                        "reads nothing from Entra and changes nothing (R17)")))


def _read(mirror: Json, stats: middleware.GraphStats) -> reader.EntraRead:
    return reader.EntraRead(mirror=mirror, full_read=False, full_read_reason=None,
                            requests=stats.total_requests, throttled=stats.throttled)


async def _entra_users(graph: graph_client.GraphClient, key: str,
                       user: Mapping[str, Any] | None, employee: model.Employee | None,
                       settings: model.Settings) -> list[Json]:
    linked = user.get("entraId") if user is not None else None
    link_tenant = (user or {}).get("tenantId")
    if linked and (not link_tenant or str(link_tenant).lower() == settings.tenant_id.lower()):
        found = await one_user.user(graph, str(linked))
        if found is not None:
            return [found]
    if user is None and employee is None:
        if "@" not in key:
            found = await one_user.user(graph, key)
            return [found] if found is not None else []
        return await one_user.by_address(graph, key)
    answers = await asyncio.gather(*(one_user.by_address(graph, a) for a in _addresses(
        user, employee.email if employee is not None else None)))
    unique: dict[str, Json] = {}
    for entra_user in (u for found in answers for u in found):
        unique.setdefault(entra_user["id"], entra_user)
    return list(unique.values())


def _addresses(user: Mapping[str, Any] | None, profile_email: str | None) -> list[str]:
    """R3's keys of an Emply user: its username, its e-mail, its profile's e-mail."""
    out: dict[str, str] = {}
    for value in ((user or {}).get("username"), (user or {}).get("email"), profile_email):
        if isinstance(value, str) and "@" in value:
            out.setdefault(model.norm(value), value.strip())
    return list(out.values())


async def _configured(graph: graph_client.GraphClient, settings: model.Settings,
                      memberships: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The configured groups that exist, with their names (from the memberships read,
    else read one by one)."""
    known: dict[str, Any] = {}
    for groups in memberships:
        known.update(groups)
    configured = {g: known[g] for g in settings.group_ids if g in known}
    missing = [g for g in settings.group_ids if g not in known]
    return {**configured, **(await one_user.groups(graph, missing) if missing else {})}


class _Candidates:
    """R3's steps 2–4 over the Emply side, as if every Entra user were gone: which Emply
    users an Entra user read could be handed (one index for the whole view)."""

    def __init__(self, doc: Mapping[str, Any], settings: model.Settings) -> None:
        snapshot = convert.emply_snapshot({"users": doc.get("users", ()),
                                           "employees": doc.get("employees", ())})
        self.tenant_id = settings.tenant_id
        self.docs = {str(u["id"]): u for u in doc.get("users", ())}
        self.employee_emails = {e.id: e.email for e in snapshot.employees}
        self.index = matching.UserIndex(snapshot.users, settings.tenant_id,
                                        snapshot.employees, entra_ids=frozenset())

    def of(self, found: Iterable[Json], *, linked: bool) -> list[Mapping[str, Any]]:
        """Unlinked ones (or linked in another tenant), or with `linked`, those linked
        here (whose Entra user, were it gone, would let R3 hand them on)."""
        out: dict[str, Mapping[str, Any]] = {}
        for raw in found:
            entra_user = convert.entra_user([raw.get(f) for f in reader.USER_FIELDS])
            keys = (model.norm(entra_user.user_principal_name),
                    model.norm(entra_user.mail_or_upn))
            index = self.index
            for table in (index.by_username, index.by_email, index.by_employee_email):
                for user in (u for k in keys for u in table.get(k, ())):
                    here = user.entra_id is not None and not matching.is_stale_link(
                        user, self.tenant_id)
                    if here == linked:
                        out.setdefault(user.id, self.docs[user.id])
        return list(out.values())


async def _claimants(graph: graph_client.GraphClient, candidates: _Candidates,
                     found: Sequence[Json]) -> list[Json]:
    """The other Entra users that answer to the R3 keys of the unlinked Emply users a
    user read may match: one of them may claim such an Emply user at an earlier step
    (its UPN is the username, say, where the user read only has the e-mail), and then
    a full run gives it that Emply user. Read so the plan resolves R3 the same way."""
    addresses: dict[str, str] = {}
    for candidate in candidates.of(found, linked=False):
        profile = candidates.employee_emails.get(str(candidate.get("employeeId")))
        for address in _addresses(candidate, profile):
            addresses.setdefault(model.norm(address), address)
    for entra_user in found:  # already read as themselves
        for value in (entra_user.get("userPrincipalName"), entra_user.get("mail")):
            addresses.pop(model.norm(value), None)
    answers = await asyncio.gather(*(one_user.by_address(graph, a)
                                     for a in addresses.values()))
    read_ids = {u["id"] for u in found}
    out: dict[str, Json] = {}
    for entra_user in (u for found_ in answers for u in found_):
        if entra_user["id"] not in read_ids:
            out.setdefault(entra_user["id"], entra_user)
    return list(out.values())


def _rivals(candidates: _Candidates, found: Sequence[Json]) -> list[str]:
    """The Entra ids of the Emply users R3 could hand to a user read, had their own
    Entra user gone (`matching.is_replaceable`): whether those exist decides it."""
    read_ids = {u["id"] for u in found}
    return sorted({str(u["entraId"]) for u in candidates.of(found, linked=True)
                   if u["entraId"] not in read_ids})


def _other_tenant(key: str, org: Mapping[str, Any], settings: model.Settings
                  ) -> tuple[str, str] | None:
    """An address whose domain is not one of the tenant's verified domains names a user
    of another tenant (or a guest's home address): refused, with why."""
    if "@" not in key:
        return None
    domain = model.upn_domain(key)
    verified = [str(d) for d in org.get("verifiedDomains") or ()]
    if domain in {model.norm(d) for d in verified}:
        return None
    return OTHER_TENANT, (
        f"{key.strip()} is not a user of tenant {settings.tenant_id}: its domain {domain} "
        f"is not one of the tenant's verified domains ({', '.join(verified) or 'none'}); "
        "the integration synchronizes only the users of the tenant it is connected to")


def view_of(run: Run) -> UserView | None:
    found = run.reads.get(STEP.name)
    return found if isinstance(found, UserView) else None


class UserViewStep(base.Step):
    """Read before the steps (`shared.run.on_demand`); adds the Entra users found to
    exist to the planner's snapshot."""

    name = "user_view"

    def plan_input(self, run: Run, entra: model.EntraSnapshot) -> model.EntraSnapshot:
        found = view_of(run)
        if found is None or not found.others:
            return entra
        users = dict(entra.users)
        for raw in found.others:
            users.setdefault(raw["id"], convert.entra_user(
                [raw.get(f) for f in reader.USER_FIELDS]))
        return dataclasses.replace(entra, users=users)


STEP = UserViewStep()
