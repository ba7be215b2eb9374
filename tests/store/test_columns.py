"""columns: records survive packing exactly; repeated values are stored once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.store import columns

values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 0.0, -0.5])
    | st.sampled_from(["a", "b", "ü"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xy"), inner,
                                                                max_size=2),
    max_leaves=6,
)
FIELDS = ("f0", "f1", "f2")


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(values, min_size=3, max_size=3), max_size=40))
def test_rows_and_records_round_trip_through_json_exactly(rows: list[list[Any]]) -> None:
    packed = json.loads(json.dumps(columns.pack_rows(rows, FIELDS)))
    back = columns.unpack_rows(packed, FIELDS)
    # Exactly: True stays True and 1 stays 1 (equal in Python, not in JSON). An object's
    # key order is not kept: equal objects share one table entry.
    assert json.dumps(back, sort_keys=True) == json.dumps(rows, sort_keys=True)
    records = [dict(zip(FIELDS, row, strict=True)) for row in rows]
    packed = json.loads(json.dumps(columns.pack_records(records, FIELDS)))
    assert json.dumps(columns.unpack_records(packed), sort_keys=True) == json.dumps(
        records, sort_keys=True)


def test_a_repeated_value_is_one_object_after_unpacking() -> None:
    rows = [[f"id-{i}", "tenant-1", ["role-1", "role-2"]] for i in range(100)]
    packed = json.loads(json.dumps(columns.pack_rows(rows, FIELDS)))
    assert "values" in packed["columns"][0]  # every id differs: stored as they are
    assert packed["columns"][1]["table"] == ["tenant-1"]
    back = columns.unpack_rows(packed, FIELDS)
    assert back == rows
    assert len({id(row[1]) for row in back}) == 1 and len({id(row[2]) for row in back}) == 1


@pytest.mark.parametrize("packed, words", [
    (None, "expected packed columns"),
    ({"fields": ["f0"], "count": 1, "columns": []}, "one column per field"),
    ({"fields": ["f0"], "count": 2, "columns": [{"values": [1]}]}, "expected 2 values"),
    ({"fields": ["f0"], "count": 1, "columns": [{"table": [1], "codes": [3]}]}, "not an index"),
    ({"fields": ["f0"], "count": 1, "columns": [{}]}, "needs 'values'"),
])
def test_malformed_columns_are_refused_with_what_is_wrong(packed: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        columns.unpack_records(packed)


def test_rows_of_other_fields_are_refused() -> None:
    packed = columns.pack_rows([[1, 2, 3]], FIELDS)
    with pytest.raises(ValueError, match="are not"):
        columns.unpack_rows(packed, ("a", "b", "c"))
    with pytest.raises(ValueError, match="3 fields"):
        columns.pack_rows([[1, 2]], FIELDS)


def test_objects_are_tabled_exactly_by_their_json() -> None:
    """A column of JSON objects (users' role bases) takes the fast path: equal objects
    share one table entry whatever their key order; true, 1 and 1.0 stay apart."""
    rows = [[{"g1": "employee", "g2": None}], [{"g2": None, "g1": "employee"}],
            [{"g1": True}], [{"g1": 1}], [{"g1": 1.0}], [None]] * 4
    packed = columns.pack_rows(rows, ("basis",))
    (column,) = packed["columns"]
    assert len(column["table"]) == 5
    assert columns.unpack_rows(packed, ("basis",), "test") == rows
