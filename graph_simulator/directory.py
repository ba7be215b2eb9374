"""Directory reads: `/organization`, users, groups, members and memberOf.

All reads answer from `sim.current`, except a continued listing, which `odata.paged`
answers from the version its skiptoken names. A user is addressed by id or by
userPrincipalName (case-insensitive), a group only by id, as in Graph.
Membership listings return directoryObjects typed by `@odata.type`; transitive
ones walk nested groups breadth-first and list each object once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graph_simulator import odata
from graph_simulator.protocol import Req, Resp, not_found, require
from graph_simulator.tenant import (
    JSON,
    Snapshot,
    render_group,
    render_object,
    render_user,
    select_properties,
)

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

Render = Callable[[Mapping[str, Any], Sequence[str] | None], JSON]


def user_id(sim: Simulator, req: Req) -> str:
    """The id of the user `{id}` names (an id or a UPN); 404 when there is none."""
    return require(sim.current.find_user(req.params["id"]), req.params["id"])


def group_id(sim: Simulator, req: Req) -> str:
    gid = req.params["id"]
    if gid not in sim.current.groups:
        raise not_found(gid)
    return gid


def get_organization(sim: Simulator, req: Req) -> Resp:
    select = odata.select(req)
    org = select_properties(sim.current.organization, select, None)
    return Resp(200, {"@odata.context": odata.context(req, "organization", select),
                      "value": [org]})


def _list_objects(
    sim: Simulator,
    req: Req,
    entity_set: str,
    objects: Callable[[Snapshot], Mapping[str, JSON]],
    render: Render,
) -> Resp:
    """`/users` or `/groups`, with `$filter` on the stored properties."""
    select = odata.select(req)
    flt = odata.parse_filter(req.query.get("$filter"))
    return odata.paged(
        sim,
        req,
        lambda s: list(objects(s)),
        lambda s, oid: render(objects(s)[oid], select),
        entity_set,
        extra_filter=(lambda s, oid: flt(objects(s)[oid])) if flt else None,
    )


def _entity(req: Req, entity_set: str, props: Mapping[str, Any], render: Render) -> Resp:
    select = odata.select(req)
    return Resp(200, {"@odata.context": odata.context(req, f"{entity_set}/$entity", select),
                      **render(props, select)})


def list_users(sim: Simulator, req: Req) -> Resp:
    return _list_objects(sim, req, "users", lambda s: s.users, render_user)


def get_user(sim: Simulator, req: Req) -> Resp:
    return _entity(req, "users", sim.current.users[user_id(sim, req)], render_user)


def list_groups(sim: Simulator, req: Req) -> Resp:
    return _list_objects(sim, req, "groups", lambda s: s.groups, render_group)


def get_group(sim: Simulator, req: Req) -> Resp:
    return _entity(req, "groups", sim.current.groups[group_id(sim, req)], render_group)


def _directory_objects(
    sim: Simulator, req: Req, build: Callable[[Snapshot], Sequence[str]]
) -> Resp:
    select = odata.select(req)
    return odata.paged(
        sim, req, build, lambda s, oid: render_object(s, oid, select), "directoryObjects"
    )


def group_members(sim: Simulator, req: Req) -> Resp:
    gid = group_id(sim, req)
    return _directory_objects(sim, req, lambda snap: snap.members.get(gid, ()))


def group_transitive_members(sim: Simulator, req: Req) -> Resp:
    gid = group_id(sim, req)
    return _directory_objects(sim, req, lambda snap: snap.transitive_members(gid))


def _groups_containing(snap: Snapshot, object_id: str) -> list[str]:
    return [g for g, m in snap.members.items() if object_id in m]


def _transitive_groups(snap: Snapshot, uid: str) -> list[str]:
    """The groups `uid` is in directly or through nested groups, nearest first."""
    out: list[str] = []
    seen: set[str] = set()
    queue = _groups_containing(snap, uid)
    while queue:
        gid = queue.pop(0)
        if gid in seen:
            continue
        seen.add(gid)
        out.append(gid)
        queue.extend(_groups_containing(snap, gid))
    return out


def member_of(sim: Simulator, req: Req) -> Resp:
    uid = user_id(sim, req)
    return _directory_objects(sim, req, lambda snap: _groups_containing(snap, uid))


def transitive_member_of(sim: Simulator, req: Req) -> Resp:
    uid = user_id(sim, req)
    return _directory_objects(sim, req, lambda snap: _transitive_groups(snap, uid))
