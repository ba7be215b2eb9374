"""Both indexes of a run: read back from the sync state, brought up to date with what
changed on each side, and what changed named.

- The Emply side (`emply_side`): the index is current while the store's version
  marker has the value it was saved at; otherwise the Emply side is read from the table
  and what differs from the saved index (by ETag) is what changed.
- The Entra side (`entra_side`): a delta round is folded into the index
  (`EntraIndex.fold`); when only a full read will do (first run, expired delta link,
  another tenant) the directory is read into a new index, groups first so that users
  outside the configured groups keep only their ids, and what differs from the saved
  index is what changed.

Either side without a saved index to compare with changed as a whole (`everything`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from shared.graph import client as graph_client
from shared.graph import delta, reader
from shared.run import emply_index, entra_index
from shared.run import groups as group_graph
from shared.run import state as sync_state
from shared.run.emply_index import EmplyIndex
from shared.run.entra_index import EntraIndex
from shared.run.records import Builder
from shared.store import protocols

ALL_KINDS = (*emply_index.OTHER_KINDS, *emply_index.KINDS)

_Index = TypeVar("_Index", EntraIndex, EmplyIndex)


async def load(store: protocols.SyncStateStore, state: sync_state.SyncState
               ) -> tuple[EntraIndex | None, EmplyIndex | None, tuple[dict[str, Any], ...]]:
    """The indexes the state names, whole and with their delta (None for a part that is
    missing or unreadable: that side is then read as a whole, which is always safe)."""
    warnings: list[dict[str, Any]] = []
    entra = await _load_part(store, state, "entra", EntraIndex.from_bytes, warnings)
    emply = await load_emply(store, state, warnings)
    return entra, emply, tuple(warnings)


async def load_entra(store: protocols.SyncStateStore, state: sync_state.SyncState
                     ) -> EntraIndex | None:
    """The Entra index the state names (None: none, or unreadable)."""
    return await _load_part(store, state, "entra", EntraIndex.from_bytes, [])


async def load_emply(store: protocols.SyncStateStore, state: sync_state.SyncState,
                     warnings: list[dict[str, Any]] | None = None) -> EmplyIndex | None:
    """The Emply index the state names (None: none, or unreadable)."""
    return await _load_part(store, state, "emply", EmplyIndex.from_bytes,
                            [] if warnings is None else warnings)


async def _load_part(store: protocols.SyncStateStore, state: sync_state.SyncState, part: str,
                     parse: Callable[[bytes | bytearray], _Index],
                     warnings: list[dict[str, Any]]
                     ) -> _Index | None:
    if state.index is None:
        return None
    try:
        data = await store.load_index(state.index, part)
        index = None if data is None else parse(data)
        del data
        if index is not None and state.index_delta is not None:
            delta = await store.load_index(state.index_delta, part + "delta")
            if delta is None:
                raise ValueError(f"the {part} index's delta is missing")
            index.apply_delta(bytes(delta))  # a run's changes: small
        return index
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.append(sync_state.unreadable_warning(exc))
        return None


REBASE_SHARE = 0.1
"""A run saves the indexes whole once this share of either changed since they were
(else only what changed: a run's cost stays with its changes)."""


async def save(store: protocols.SyncStateStore, entra: EntraIndex, emply: EmplyIndex,
               saved: tuple[str | None, str | None]) -> tuple[str, str | None]:
    """Save the indexes: whole, or what changed since `saved` (generation, delta) holds
    them whole. Returns the (generation, delta) that now hold them; the caller names them
    in the state, then deletes the old ones (`stale`)."""
    base, _delta = saved
    generation = uuid.uuid4().hex
    try:
        if base is None or max(entra.changed_share(), emply.changed_share()) > REBASE_SHARE:
            await store.save_index(generation, "entra", entra.pieces())
            await store.save_index(generation, "emply", emply.pieces())
            return generation, None
        await store.save_index(generation, "entradelta", [entra.delta_bytes()])
        await store.save_index(generation, "emplydelta", [emply.delta_bytes()])
        return base, generation
    except BaseException:
        with contextlib.suppress(Exception):  # nothing names it: do not leave it behind
            await store.delete_index(generation)
        raise


def stale(before: tuple[str | None, str | None], after: tuple[str, str | None]) -> list[str]:
    """The generations `before` named that `after` does not."""
    return [g for g in before if g is not None and g not in after]


async def save_with_state(store: protocols.SyncStateStore, entra: EntraIndex,
                          emply: EmplyIndex, state: sync_state.SyncState,
                          state_after: Callable[[tuple[str, str | None]], sync_state.SyncState]
                          ) -> None:
    """Save the indexes (`save`, over those `state` names), then the state that names
    them (`state_after` of their (generation, delta)), then delete the old generations.
    A failure before the state is saved leaves the old state naming the old indexes."""
    before = (state.index, state.index_delta)
    saved = await save(store, entra, emply, before)
    await sync_state.save_state(store, state_after(saved))
    for generation in stale(before, saved):
        with contextlib.suppress(Exception):  # a leftover costs storage, not correctness
            await store.delete_index(generation)


def fold(index: EmplyIndex, written: Mapping[str, Iterable[emply_index.Entry]]) -> None:
    """Entities as a run read or wrote them (kind -> entries), put in the index."""
    for kind, entries in written.items():
        for entry in entries:
            index.put(kind, entry)
        if kind in emply_index.KINDS:
            index.kinds[kind].table.settle()


# --- the Emply side ---------------------------------------------------------------


@dataclasses.dataclass
class EmplySide:
    index: EmplyIndex
    changed_users: set[str] = dataclasses.field(default_factory=set)
    changed_employees: set[str] = dataclasses.field(default_factory=set)
    previous: EmplyIndex | None = None
    """The saved index, when the Emply side changed since (its entities as they were)."""
    everything: bool = False


async def emply_side(store: protocols.EmplyTables, saved: EmplyIndex | None) -> EmplySide:
    version = await store.current_version()
    if saved is not None and version is not None and saved.version == version:
        return EmplySide(saved)
    building = emply_index.Building()
    index = building.index(await store.scan(building.take))
    if saved is None:
        return EmplySide(index, everything=True)
    side = EmplySide(index, previous=saved)
    for kind, changed in (("users", side.changed_users),
                          ("employees", side.changed_employees)):
        changed.update(_differing(saved.kinds[kind], index.kinds[kind]))
    if _whole_run_inputs(saved) != _whole_run_inputs(index):
        side.everything = True
    return side


def _differing(old: emply_index._Kind, new: emply_index._Kind) -> set[str]:
    """Ids of the entities added, removed or written (another ETag) between the two."""
    def tags(kind: emply_index._Kind) -> dict[str, str | None]:
        return {str(item["id"]): etag for etag, item in (
            kind.entry(row) or (None, {"id": None}) for row in kind.table.rows())}

    before, after = tags(old), tags(new)
    return {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}


def _whole_run_inputs(index: EmplyIndex) -> Any:
    """What every user's plan depends on: the settings and the roles (which ones are
    administrators). Another value means everyone is planned again."""
    return (index.settings, sorted((str(i.get("id")), bool(i.get("administrator")))
                                   for _e, i in index.other["roles"]))


# --- the Entra side ---------------------------------------------------------------


@dataclasses.dataclass
class EntraSide:
    index: EntraIndex
    read: reader.EntraRead
    """How it was read (the mirror in it is empty: the index holds the directory)."""
    changed: set[str] = dataclasses.field(default_factory=set)
    before: dict[str, list[Any] | None] = dataclasses.field(default_factory=dict)
    """The changed users' records as they were (None: not there)."""
    groups_before: group_graph.GroupGraph | None = None
    missing: set[str] = dataclasses.field(default_factory=set)
    everything: bool = False


async def entra_side(graph: graph_client.GraphClient, saved: EntraIndex | None,
                     head: Mapping[str, Any] | None, changes: reader.Changes | None, *,
                     tenant_id: str, keep: entra_index.Keep,
                     configured: Sequence[str]) -> EntraSide:
    """The directory now, with what changed since `saved` (whose head is `head`)."""
    usable = saved if saved is not None and head is not None and saved.head_usable() else None
    if changes is None or not _same(changes.tenant_id, tenant_id):
        # The state's head: a run that found nothing changed moved its links on.
        changes = await reader.read_changes(graph, head if usable else None,
                                            tenant_id=tenant_id)
    if (isinstance(changes, reader.DeltaRound) and usable is not None
            and _same(str(usable.head.get("tenantId", "")), tenant_id)):
        groups_before = usable.groups.copy()
        folded = usable.fold(changes.users, changes.groups, keep, configured)
        usable.head.update(organization=changes.organization,
                           deltaLinks=dict(changes.delta_links))
        read = reader.EntraRead(mirror={}, full_read=False, full_read_reason=None,
                                requests=changes.requests, throttled=changes.throttled)
        return EntraSide(usable, read, folded.touched, folded.before, groups_before,
                         folded.missing)
    reason: reader.FullReadReason = (
        changes.reason if isinstance(changes, reader.FullReadNeeded) else "initial")
    same_tenant = usable is not None and _same(str(usable.head.get("tenantId", "")),
                                               tenant_id)
    build = FullBuild(keep, configured, usable.groups.copy() if same_tenant and usable
                      else None)
    full = await reader.read_full(graph, users=build.users, groups=build.groups,
                                  groups_first=True)
    head_now = {"version": reader.MIRROR_VERSION, "tenantId": tenant_id,
                "organization": changes.organization, "deltaLinks": full.delta_links}
    index = build.index(head_now)
    read = reader.EntraRead(mirror={}, full_read=True, full_read_reason=reason,
                            requests=changes.requests + full.requests,
                            throttled=changes.throttled + full.throttled)
    if not same_tenant or usable is None:
        return EntraSide(index, read, everything=True)
    changed, before = _diff(usable, index)
    return EntraSide(index, read, changed, before, usable.groups.copy())


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def _diff(old: EntraIndex, new: EntraIndex) -> tuple[set[str], dict[str, list[Any] | None]]:
    """Users whose record differs (group numbers are kept across the two)."""
    def records(index: EntraIndex) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for row in index.table.rows():
            raw = index.table.raw(row)
            record = index.table.get(row)
            if raw is not None and record is not None:
                out[str(record[0])] = raw
        return out

    before, after = records(old), records(new)
    changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
    return changed, {i: old.record(i) for i in changed}


class FullBuild:
    """A new index from a full read: groups first (their direct members give each user
    its groups), then users, each kept whole or as its id (`keep`)."""

    def __init__(self, keep: entra_index.Keep, configured: Sequence[str],
                 numbering: group_graph.GroupGraph | None) -> None:
        self.graph = numbering or group_graph.GroupGraph()
        self._seen: set[int] = set()
        self._memberships: dict[str, int | list[int]] = {}
        """User id -> its direct groups' numbers: one number, else a list (most users of
        a large tenant are in one group; a list per user cost 7 MB in 100,000)."""
        self._keep = keep
        self._configured = configured
        self._builder = Builder(entra_index.keys, entra_index.INDEXES)
        self._conf: dict[int, tuple[str, ...]] | None = None
        self.groups = _Applier(self._group_items)
        self.users = _Applier(self._user_items)

    def _group_items(self, items: Iterable[Any]) -> None:
        for item in items:
            group_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(group_id, str) or "@removed" in item:
                continue
            number = self.graph.add(group_id)
            self._seen.add(number)
            if "displayName" in item:
                self.graph.names[number] = item["displayName"]
            for member in item.get("members@delta") or ():
                if not isinstance(member, dict) or not isinstance(member.get("id"), str):
                    continue
                kind = member.get("@odata.type")
                if kind == "#microsoft.graph.group":
                    self.graph.nest(number, member["id"], "@removed" not in member)
                elif (kind is None or kind in delta.MEMBER_TYPES) and "@removed" not in member:
                    self._add_membership(member["id"], number)

    def _add_membership(self, user_id: str, number: int) -> None:
        held = self._memberships.get(user_id)
        if held is None:
            self._memberships[user_id] = number
        elif isinstance(held, int):
            self._memberships[user_id] = [held, number]
        else:
            held.append(number)

    def _user_items(self, items: Iterable[Any]) -> None:
        if self._conf is None:  # the groups are all read: drop those Graph no longer has
            for number in self.graph.existing():
                group_id = self.graph.ids[number]
                if number not in self._seen and group_id is not None:
                    self.graph.remove(group_id)
            self._conf = self.graph.configured_of_all(self._configured)
        for item in items:
            user_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(user_id, str) or "@removed" in item:
                continue
            held = self._memberships.pop(user_id, [])
            groups = [held] if isinstance(held, int) else sorted(set(held))
            if self._keep(user_id, groups, self._conf):
                self._builder.add([*(item.get(f) for f in entra_index.FIELDS), groups])
            else:
                self._builder.add([user_id, groups])

    def index(self, head: Mapping[str, Any]) -> EntraIndex:
        if self._conf is None:
            self._user_items(())
        self._memberships = {}  # members Graph named that are no user: not kept
        return EntraIndex(self._builder.table(), self.graph, head)


class _Applier:
    def __init__(self, take: Any) -> None:
        self._take = take
        self.delta_link = ""

    def apply(self, items: Iterable[Any]) -> None:
        self._take(items)


def keeper(emply: EmplyIndex) -> entra_index.Keep:
    """`Keep` for this run: a user in a configured group (at any depth) or one an Emply
    user is linked to keeps its attributes."""
    def keep(entra_id: str, groups: Sequence[int],
             conf: Mapping[int, tuple[str, ...]]) -> bool:
        return any(g in conf for g in groups) or bool(
            emply.users.find("entra", entra_id.lower()))
    return keep
