"""`shared.run.records`: rows found by key, changed in place, saved and read back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.run import entra_index, records
from shared.run.records import RecordTable

NAMES = ("id", "mail")


def keys(record: Any) -> Mapping[str, Iterable[str]]:
    return {"id": [record["id"]], "mail": [m.lower() for m in record.get("mail", ())]}


def found(table: RecordTable, index: str, key: str) -> list[Any]:
    """The records the index names for `key`, compared (as callers do)."""
    out = []
    for row in table.find(index, key):
        record = table.get(row)
        if record is not None and key in keys(record)[index]:
            out.append(record)
    return out


def test_find_put_free_and_bytes() -> None:
    table = RecordTable.build(
        [{"id": "a", "mail": ["A@x"]}, {"id": "b", "mail": ["b@x", "shared@x"]},
         {"id": "c", "mail": ["shared@x"]}], keys, NAMES)
    assert [r["id"] for r in found(table, "mail", "shared@x")] == ["b", "c"]
    assert found(table, "id", "a") == [{"id": "a", "mail": ["A@x"]}]
    row = table.find("id", "b")[0]
    table.put(row, {"id": "b", "mail": ["new@x"]})
    table.free(table.find("id", "c")[0])
    added = table.put(None, {"id": "d", "mail": ["shared@x"]})
    assert added == 3 and len(table) == 4
    assert [r["id"] for r in found(table, "mail", "shared@x")] == ["d"]
    assert found(table, "mail", "b@x") == []
    again = RecordTable.from_bytes(table.to_bytes(), keys, NAMES)
    assert [r for _row, r in again.records()] == [
        {"id": "a", "mail": ["A@x"]}, {"id": "b", "mail": ["new@x"]},
        {"id": "d", "mail": ["shared@x"]}]
    assert again.get(2) is None  # the freed row stays free: rows keep their numbers
    assert [r["id"] for r in found(again, "mail", "new@x")] == ["b"]


def test_a_long_header_reads_back() -> None:
    table = RecordTable.build([{"id": "a"}], keys, NAMES)
    table.meta = {"values": ["x" * 100] * 1000}  # a header line of 100 KB
    again = RecordTable.from_bytes(table.to_bytes(), keys, NAMES)
    assert again.meta == table.meta and found(again, "id", "a") == [{"id": "a"}]


def test_not_a_table_is_refused() -> None:
    with pytest.raises(ValueError):
        RecordTable.from_bytes(b'{"format": 99}\n', keys, NAMES)
    table = RecordTable.build([{"id": "a"}], keys, NAMES)
    with pytest.raises(ValueError):
        RecordTable.from_bytes(table.to_bytes()[:-3], keys, NAMES)
    with pytest.raises(ValueError):
        RecordTable.from_bytes(table.to_bytes(), keys, ("id",))


def test_keys_sharing_a_hash_are_both_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 bits of hash: two keys may share one; `find` gives both rows, the caller
    compares."""
    monkeypatch.setattr(records, "key_hash", lambda key: 7)
    table = RecordTable.build([{"id": "a"}, {"id": "b"}], keys, NAMES)
    assert sorted(table.find("id", "a")) == [0, 1]
    assert [r["id"] for r in found(table, "id", "a")] == ["a"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "free", "save"]), st.integers(0, 7),
                          st.lists(st.sampled_from(["m1", "m2", "m3"]), max_size=2)),
                max_size=40))
def test_indexes_always_describe_the_rows(steps: list[tuple[str, int, list[str]]]) -> None:
    """Whatever puts, frees and saves happen, every index finds exactly the rows whose
    record has the key, and `held` counts the rows holding one (checked against a plain
    dict)."""
    table = RecordTable.build([{"id": "first", "mail": ["m1", "m1"]}], keys, NAMES)
    model: dict[int, dict[str, Any]] = {0: {"id": "first", "mail": ["m1", "m1"]}}
    for op, n, mails in steps:
        if op == "put":
            row = n if n < len(table) else None
            record = {"id": f"u{n}", "mail": mails}
            model[table.put(row, record)] = record
        elif op == "free" and n < len(table):
            table.free(n)
            model.pop(n, None)
        elif op == "save":
            table = RecordTable.from_bytes(table.to_bytes(), keys, NAMES)
            assert table._held == len(model)  # read back with the table, not counted
        for mail in ("m1", "m2", "m3"):
            want = sorted(r for r, rec in model.items() if mail in rec["mail"])
            assert sorted(r for r in table.find("mail", mail)) == want
        assert table.held() == len(model) == sum(1 for _ in table.rows())


def test_a_delta_is_what_changed_since_the_table_was_saved_whole() -> None:
    table = RecordTable.build([{"id": f"u{i}", "mail": [f"m{i}"]} for i in range(50)],
                              keys, NAMES)
    assert table.changed_share() == 1.0  # never saved whole: its next save is whole
    whole = table.to_bytes()
    assert table.changed_share() == 0.0
    table.put(table.find("id", "u3")[0], {"id": "u3", "mail": ["new"]})
    table.free(table.find("id", "u4")[0])
    table.put(None, {"id": "u50", "mail": ["m50"]})
    table.meta = {"note": "after"}
    assert 0 < table.changed_share() < 0.1
    delta = table.delta_bytes()
    assert len(delta) < len(whole) / 10
    again = RecordTable.from_bytes(whole, keys, NAMES)
    again.apply_delta(delta)
    assert list(again.records()) == list(table.records()) and again.meta == {"note": "after"}
    assert [r["id"] for r in found(again, "mail", "new")] == ["u3"]
    assert found(again, "id", "u4") == [] and found(again, "mail", "m3") == []



@given(st.lists(st.tuples(st.sampled_from(["put", "free", "save", "settle"]),
                          st.integers(0, 9), st.sampled_from(["m1", "m2"])), max_size=40))
@settings(max_examples=200)
def test_a_save_in_place_then_its_delta_rebuild_the_table(
        steps: list[tuple[str, int, str]]) -> None:
    """A table that keeps being used after a whole save (its rows then read from the
    loaded bytes and the changed ones, nothing copied): the last whole save plus the
    delta after it always read back as the table, and unchanged since a save is no delta."""
    table = RecordTable.build([{"id": f"u{i}", "mail": ["m1"]} for i in range(5)],
                              keys, NAMES)
    whole = table.to_bytes()
    for op, n, mail in steps:
        if op == "put":
            table.put(n if n < len(table) else None, {"id": f"v{n}", "mail": [mail]})
        elif op == "free" and n < len(table):
            table.free(n)
        elif op == "save":
            whole = table.to_bytes()
            assert table.changed_share() == 0.0
        elif op == "settle":
            table.settle()
        if table.changed_share() < 1.0:
            again = RecordTable.from_bytes(whole, keys, NAMES)
            again.apply_delta(table.delta_bytes())
            assert list(again.records()) == list(table.records())
            by_id = sorted(r["id"] for r in found(table, "mail", mail))
            assert sorted(r["id"] for r in found(again, "mail", mail)) == by_id


def test_many_changes_folded_in_mean_the_next_save_is_whole() -> None:
    table = RecordTable.build([{"id": f"u{i}"} for i in range(4000)], keys, NAMES)
    table.to_bytes()
    for row in range(1100):
        table.put(row, {"id": f"u{row}", "mail": ["x"]})
    table.settle()  # more than an eighth changed: folded into the table's bytes
    assert table.changed_share() == 1.0
    assert [r["id"] for r in found(table, "mail", "x")][:2] == ["u0", "u1"]


@given(st.text(), st.lists(st.integers(0, 2**24), max_size=14),
       st.lists(st.one_of(st.none(), st.text()), min_size=10, max_size=10))
def test_an_entra_record_kept_as_its_id_is_told_from_its_text(
        entra_id: str, groups: list[int], values: list[Any]) -> None:
    """`entra_index.id_only` reads the id of a record without attributes, and tells a
    record with attributes (a string or null second) from it, whatever the id holds."""
    bare = RecordTable.build([[entra_id, groups]], entra_index.keys, entra_index.INDEXES)
    kept = RecordTable.build([[entra_id, *values, groups]], entra_index.keys,
                             entra_index.INDEXES)
    assert entra_index.id_only(bare.raw(0) or b"") == entra_id
    assert entra_index.id_only(kept.raw(0) or b"") is None


def test_a_table_saved_without_its_count_counts_its_rows_once() -> None:
    table = RecordTable.build([{"id": f"u{i}"} for i in range(6)], keys, NAMES)
    table.free(2)
    data = table.to_bytes()
    line_end = data.index(b"\n")
    header = json.loads(data[:line_end])
    assert header.pop("held") == 5
    older = json.dumps(header, separators=(",", ":")).encode() + data[line_end:]
    again = RecordTable.from_bytes(older, keys, NAMES)
    assert again.held() == 5 and list(again.rows()) == [0, 1, 3, 4, 5]
