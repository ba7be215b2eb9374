"""`/users/delta` and `/groups/delta`: change tracking between snapshot versions.

A deltaLink's token names the version it was issued at; the next round reports
exactly the difference from that version to the current one, paged with
nextLinks whose tokens pin both ends (`f` → `to`), so a tenant change during a
paged round does not leak into it. `$deltatoken=latest` starts tracking from now
with no data. With `deltaLagSeconds` switched on (`graph_simulator.quirks`), a round
shows only the versions made at least that long ago. Tokens carry the simulator nonce
and the token epoch: a token from another run, or issued before
`/_sim/expire-delta-tokens`, answers 410 syncStateNotFound (Graph's "start a full
resync"). The `$select` of the first request is kept in the tokens, so every later
page has the same shape.

A group whose `members@delta` is long is split over pages as Graph does (concepts/
delta-query-groups.md, "Paging through members in a large group"): the same group
again, its properties repeated, with the next part of its members. A page holds at
most `GROUP_MEMBERS_PER_PAGE` member entries; a client merges a group's parts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeGuard

from graph_simulator import odata, quirks
from graph_simulator.protocol import GraphError, Req, Resp, decode_token, encode_token
from graph_simulator.tenant import (
    JSON,
    Change,
    group_changes,
    render_group_change,
    render_user_change,
    user_changes,
)

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

DEFAULT_DELTA_PAGE = 200
GROUP_MEMBERS_PER_PAGE = 2000
"""Member entries in one page of `/groups/delta` (Graph documents the split, not its
size; a client must not depend on either)."""
# Differences kept per simulator; a paged round asks for the same one on every page.
DELTA_CACHE_SIZE = 16


def _changes(sim: Simulator, kind: str, old: int | None, new: int) -> list[Change]:
    key = (kind, old, new, GROUP_MEMBERS_PER_PAGE)
    cached = sim.delta_cache.get(key)
    if cached is not None:
        return cached
    before = None if old is None else sim.snapshots[old]
    after = sim.snapshots[new]
    changes = (user_changes(before, after) if kind == "users"
               else _split(group_changes(before, after)))
    if len(sim.delta_cache) >= DELTA_CACHE_SIZE:
        sim.delta_cache.pop(next(iter(sim.delta_cache)))
    sim.delta_cache[key] = changes
    return changes


def _split(changes: list[Change]) -> list[Change]:
    """Each group change in parts cut where a page's GROUP_MEMBERS_PER_PAGE member
    entries are full (counted over the round), so the pages `_page_end` makes are full."""
    out: list[Change] = []
    limit = GROUP_MEMBERS_PER_PAGE
    used = 0  # member entries of the page being filled
    for change in changes:
        added, removed = change.added_members, change.removed_members
        entries = len(added) + len(removed)
        if used + entries <= limit:
            out.append(change)
            used = (used + entries) % limit if entries else used
            continue
        start = 0
        while start < entries:
            end = min(entries, start + limit - used)
            out.append(dataclasses.replace(
                change, added_members=added[start:end],
                removed_members=removed[max(0, start - len(added)):max(0, end - len(added))]))
            used = (used + end - start) % limit
            start = end
    return out


def _page_end(changes: list[Change], offset: int, size: int) -> int:
    """Where the page that starts at `offset` ends: `size` entries, fewer when their
    member entries would pass GROUP_MEMBERS_PER_PAGE (never fewer than one)."""
    end, members = offset, 0
    while end < len(changes) and end - offset < size:
        more = len(changes[end].added_members) + len(changes[end].removed_members)
        if end > offset and members + more > GROUP_MEMBERS_PER_PAGE:
            break
        members += more
        end += 1
    return end


def _sync_state_not_found() -> GraphError:
    return GraphError(
        410,
        "syncStateNotFound",
        "The sync state generation is not found or has expired. Start a new full "
        "synchronization (resyncRequired).",
    )


def _token(sim: Simulator, raw: str, kind: str, tag: str) -> dict[str, Any]:
    """A delta (`tag` "d") or skip ("s") token of this run and epoch, else 410."""
    data = decode_token(raw)
    if (
        data is None
        or data.get("n") != sim.nonce
        or data.get("e") != sim.token_epoch
        or data.get("k") != kind
        or data.get("t") != tag
    ):
        raise _sync_state_not_found()
    return data


def _is_version(value: Any, sim: Simulator) -> TypeGuard[int]:
    """Whether `value` (from a token) names a version this run still holds."""
    return isinstance(value, int) and value in sim.snapshots


def _delta(sim: Simulator, req: Req, kind: str) -> Resp:
    size, applied = odata.page_size(req, DEFAULT_DELTA_PAGE)
    select = odata.select(req)
    offset = 0
    old: int | None = None
    # The newest version delta shows: the current one, or an older one while a
    # change is still lagging behind its notification (graph_simulator.quirks).
    new = quirks.delta_version(sim)
    if req.query.get("$deltatoken") == "latest":
        old = new  # Graph: no data, just a deltaLink for "from now on"
    elif "$deltatoken" in req.query:
        data = _token(sim, req.query["$deltatoken"], kind, "d")
        old = data.get("v")
        if not _is_version(old, sim):
            raise _sync_state_not_found()
        new = max(new, old)  # a lag made longer never shows a round backwards
        if select is None:
            select = data.get("s")
    elif "$skiptoken" in req.query:
        data = _token(sim, req.query["$skiptoken"], kind, "s")
        old_raw, new_raw, offset_raw = data.get("f"), data.get("to"), data.get("o")
        if (
            not _is_version(new_raw, sim)
            or not isinstance(offset_raw, int)
            or (old_raw is not None and not _is_version(old_raw, sim))
        ):
            raise _sync_state_not_found()
        old, new, offset = old_raw, new_raw, offset_raw
        if select is None:
            select = data.get("s")
        # A page size asked for on the first request holds for the whole round.
        if not applied and req.query.get("$top") is None:
            size = int(data.get("p") or size)
    changes = _changes(sim, kind, old, new)
    snap = sim.snapshots[new]
    end = _page_end(changes, offset, size)
    page = changes[offset:end]
    render = render_user_change if kind == "users" else render_group_change
    value = [render(snap, c, select) for c in page]
    body: JSON = {"@odata.context": odata.context(req, kind, select), "value": value}
    base = {"n": sim.nonce, "e": sim.token_epoch, "k": kind, "s": select}
    if end < len(changes):
        token = encode_token({**base, "t": "s", "f": old, "to": new, "o": end, "p": size})
        body["@odata.nextLink"] = f"{req.base}/{kind}/delta?$skiptoken={token}"
    else:
        token = encode_token({**base, "t": "d", "v": new})
        body["@odata.deltaLink"] = f"{req.base}/{kind}/delta?$deltatoken={token}"
    return odata.with_preference(Resp(200, body), applied, size)


def users_delta(sim: Simulator, req: Req) -> Resp:
    return _delta(sim, req, "users")


def groups_delta(sim: Simulator, req: Req) -> Resp:
    return _delta(sim, req, "groups")
