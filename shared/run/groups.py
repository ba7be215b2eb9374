"""The Entra groups as the sync keeps them: each group's number, name and nested groups.

Users' direct memberships live with the users (`shared.run.entra_index`), by group
number; this graph holds what is small whatever the tenant's size: the groups
themselves and which groups are members of which. R2's nested groups are resolved
here: `configured_of_all` says, for every group inside a configured group (at any
depth), which configured groups it is in. Cycles are harmless: each group is visited
once per configured group.

Invariant: a group's number never changes while it exists (a removed group's number is
not reused), so users can hold numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.reconcile import model


class GroupGraph:
    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.names: list[Any] = []
        self.nested: list[list[int]] = []
        """Group number -> the numbers of the groups that are its direct members."""
        self._numbers: dict[str, int] = {}

    def number(self, group_id: str) -> int | None:
        return self._numbers.get(group_id)

    def add(self, group_id: str) -> int:
        """The group's number, a new one for a group not seen before."""
        found = self._numbers.get(group_id)
        if found is not None:
            return found
        number = len(self.ids)
        self.ids.append(group_id)
        self.names.append(None)
        self.nested.append([])
        self._numbers[group_id] = number
        return number

    def remove(self, group_id: str) -> None:
        number = self._numbers.pop(group_id, None)
        if number is None:
            return
        self.ids[number], self.names[number], self.nested[number] = None, None, []
        for children in self.nested:
            if number in children:
                children.remove(number)

    def nest(self, parent: int, child_id: str, present: bool) -> None:
        """Group `child_id` is (or is no longer) a direct member of group `parent`."""
        child = self.add(child_id)
        children = self.nested[parent]
        if present and child not in children:
            children.append(child)
        elif not present and child in children:
            children.remove(child)

    def existing(self) -> list[int]:
        return [n for n, group_id in enumerate(self.ids) if group_id is not None]

    def configured_of_all(self, configured: Sequence[str]) -> dict[int, tuple[str, ...]]:
        """Group number -> the configured groups it is in (itself included, nesting
        resolved), in the order of `configured`; groups in none are left out."""
        out: dict[int, list[str]] = {}
        for group_id in configured:
            start = self._numbers.get(group_id)
            if start is None:
                continue
            seen = {start}
            stack = [start]
            while stack:
                number = stack.pop()
                found = out.setdefault(number, [])
                if group_id not in found:
                    found.append(group_id)
                for child in self.nested[number]:
                    if child not in seen:
                        seen.add(child)
                        stack.append(child)
        return {number: tuple(found) for number, found in out.items()}

    def snapshot(self, members: Mapping[int, set[str]]) -> dict[str, model.EntraGroup]:
        """The planner's groups: every group, with its nested groups and the users of
        `members` (number -> user ids) as its members."""
        out: dict[str, model.EntraGroup] = {}
        for number in self.existing():
            group_id = self.ids[number]
            assert group_id is not None
            children = {self.ids[c] for c in self.nested[number]}
            out[group_id] = model.EntraGroup(
                id=group_id, display_name=self.names[number],
                members=frozenset({*(c for c in children if c is not None),
                                   *members.get(number, ())}))
        return out

    def mirror_groups(self, members: Mapping[int, list[str]]) -> dict[str, dict[str, Any]]:
        """The groups as a whole mirror holds them (`shared.graph.mirror`)."""
        out: dict[str, dict[str, Any]] = {}
        for number in self.existing():
            group_id = self.ids[number]
            assert group_id is not None
            children = [c for c in (self.ids[n] for n in self.nested[number]) if c is not None]
            out[group_id] = {"id": group_id, "displayName": self.names[number],
                             "members": [*children, *members.get(number, ())]}
        return out

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "names": self.names, "nested": self.nested}

    @classmethod
    def from_json(cls, value: Any) -> GroupGraph:
        """ValueError when `value` is not what `to_json` made."""
        graph = cls()
        if not isinstance(value, dict):
            raise ValueError("groups: expected an object")
        ids, names, nested = value.get("ids"), value.get("names"), value.get("nested")
        if not (isinstance(ids, list) and isinstance(names, list) and isinstance(nested, list)
                and len(ids) == len(names) == len(nested)
                and all(i is None or isinstance(i, str) for i in ids)
                and all(isinstance(n, list) and all(isinstance(c, int) and 0 <= c < len(ids)
                                                    for c in n) for n in nested)):
            raise ValueError("groups: ids, names and nested groups do not match")
        graph.ids, graph.names, graph.nested = ids, names, nested
        graph._numbers = {group_id: n for n, group_id in enumerate(ids) if group_id is not None}
        return graph

    def copy(self) -> GroupGraph:
        return GroupGraph.from_json({"ids": list(self.ids), "names": list(self.names),
                                     "nested": [list(n) for n in self.nested]})
