"""Many records of one shape as columns, repeated values stored once.

The snapshot holds 100,000 Entra users and as many Emply users. As JSON objects
every record repeated its keys, and every parsed record had its own copy of values
that most records share (the tenant id, the time of the run that linked them, the
roles, the groups, "active"): measured at 100,000 users, about 120 MB of a run's
memory was such copies. Here a column whose values repeat is a table of distinct
values plus one small integer per record, so decoding gives every record the same
objects; JSON arrays of values also parse faster than objects.

Shared values are shared objects: treat decoded records as read-only.

    {"fields": [name, ...], "count": n,
     "columns": [{"values": [...]} | {"table": [...], "codes": [int, ...]}, ...]}
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_MAX_TABLE_SHARE = 4
"""A column is tabled when its distinct values are at most a quarter of its records."""


def _key(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal exactly when the values are."""
    if type(value) is str:
        return value
    if isinstance(value, list):
        return ("l", *(_key(v) for v in value))
    if isinstance(value, dict):
        return ("d", *sorted((k, _key(v)) for k, v in value.items()))
    # Typed: True, 1 and 1.0 are equal in Python, not in JSON.
    return (type(value).__name__, value)


_ONE_OF = frozenset({str, bool, int})


def _fast_keys(values: list[Any]) -> list[Any] | None:
    """Keys for `values` computed in C when that is exact: values of one type among
    str, bool and int, and None (no True/1 or 0.0/-0.0 clash possible), or lists of
    strings; None when the exact slow path is needed."""
    types = set(map(type, values))
    types.discard(type(None))
    if not types or (len(types) == 1 and types <= _ONE_OF):
        return values
    if (types == {list} and None not in values
            and set(map(type, itertools.chain.from_iterable(values))) <= {str}):
        return list(map(tuple, values))
    if types == {dict}:
        # JSON objects (a user's role basis): their canonical JSON text is an exact key
        # (it tells true from 1 and 1.0 from 1), and json's C encoder makes it fast.
        return [None if v is None else _canonical(v) for v in values]
    return None


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _column(values: list[Any]) -> dict[str, Any]:
    limit = max(1, len(values) // _MAX_TABLE_SHARE)
    keys = _fast_keys(values)
    if keys is not None:
        first = dict(zip(keys, range(len(keys)), strict=True))  # key -> a position, in C
        if len(first) > limit:
            return {"values": values}
        index = {key: code for code, key in enumerate(first)}
        positions = list(first.values())
        # first.values() are the last positions; any position of a key gives its value.
        return {"table": [values[i] for i in positions], "codes": list(map(index.__getitem__,
                                                                            keys))}
    index_: dict[Any, int] = {}
    table: list[Any] = []
    codes: list[int] = []
    for value in values:
        key = _key(value)
        code = index_.get(key)
        if code is None:
            if len(table) >= limit:
                return {"values": values}
            code = index_[key] = len(table)
            table.append(value)
        codes.append(code)
    return {"table": table, "codes": codes}


def _values(column: Mapping[str, Any], count: int, where: str) -> list[Any]:
    if "values" in column:
        values = column["values"]
    elif "table" in column and "codes" in column:
        table, codes = column["table"], column["codes"]
        if not isinstance(table, list) or not isinstance(codes, list):
            raise ValueError(f"{where}: table and codes must be arrays")
        try:
            values = [table[c] for c in codes]
        except (IndexError, TypeError) as exc:
            raise ValueError(f"{where}: a code is not an index into its table") from exc
    else:
        raise ValueError(f"{where}: a column needs 'values' or 'table' and 'codes'")
    if not isinstance(values, list) or len(values) != count:
        raise ValueError(f"{where}: expected {count} values")
    return values


def pack_rows(rows: Iterable[Sequence[Any]], fields: Sequence[str]) -> dict[str, Any]:
    """Rows of values in `fields` order, as columns."""
    rows = rows if isinstance(rows, list) else list(rows)
    width = len(fields)
    if any(len(row) != width for row in rows):
        bad = next(row for row in rows if len(row) != width)
        raise ValueError(f"a row has {len(bad)} values for {width} fields")
    transposed = [list(column) for column in zip(*rows, strict=True)] if rows else \
        [[] for _ in fields]
    return {"fields": list(fields), "count": len(rows),
            "columns": [_column(c) for c in transposed]}


def pack_records(records: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> dict[str, Any]:
    """Dicts as columns of `fields` (a missing field is None; other keys are refused)."""
    allowed = frozenset(fields)
    rows = []
    for record in records:
        if record.keys() - allowed:
            raise ValueError(f"fields {sorted(record.keys() - allowed)} are not columns")
        rows.append([record.get(f) for f in fields])
    return pack_rows(rows, fields)


def _columns(packed: Any, where: str) -> tuple[list[str], list[list[Any]]]:
    if not isinstance(packed, dict):
        raise ValueError(f"{where}: expected packed columns")
    fields, count, columns = packed.get("fields"), packed.get("count"), packed.get("columns")
    if not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)
            and isinstance(count, int) and isinstance(columns, list)
            and len(columns) == len(fields)):
        raise ValueError(f"{where}: needs 'fields', 'count' and one column per field")
    return fields, [_values(c, count, f"{where}.{f}")
                    for f, c in zip(fields, columns, strict=True)]


def unpack_rows(packed: Any, fields: Sequence[str], where: str = "columns") -> list[list[Any]]:
    """The rows `pack_rows` packed; their fields must be `fields`, in order."""
    names, columns = _columns(packed, where)
    if names != list(fields):
        raise ValueError(f"{where}: fields {names} are not {list(fields)}")
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def unpack_records(packed: Any, where: str = "columns") -> list[dict[str, Any]]:
    """The dicts `pack_records` packed (every field present)."""
    names, columns = _columns(packed, where)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
