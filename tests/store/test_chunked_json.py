"""chunked_json: any JSON value survives encode → gzip blocks → gunzip → decode."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.store import chunked_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=8),
    max_leaves=60,
)


def round_trip(value: Any, *, block: int, piece: int, window: int) -> Any:
    raw = b"".join(chunked_json.gzip_blocks(chunked_json.encode_lines(value), level=1,
                                            block_size=block))
    pieces = [raw[i:i + piece] for i in range(0, len(raw), piece)]
    return chunked_json.decode_lines(chunked_json.gunzip_lines(pieces, window=window))


@settings(max_examples=200, deadline=None)
@given(value=json_values, chunk=st.integers(1, 4), block=st.integers(1, 64),
       piece=st.integers(1, 50), window=st.integers(1, 64))
def test_any_value_round_trips(value: Any, chunk: int, block: int, piece: int,
                               window: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunked_json, "CHUNK", chunk)
        before = json.dumps(value)
        assert round_trip(value, block=block, piece=piece, window=window) == value
        assert json.dumps(value) == before  # the value itself is not touched


@settings(max_examples=200, deadline=None)
@given(value=json_values, chunk=st.integers(1, 4), block=st.integers(1, 64))
def test_plain_pieces_are_one_ordinary_json_text(value: Any, chunk: int, block: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunked_json, "CHUNK", chunk)
        pieces = list(chunked_json.plain_pieces(value))
        text = b"".join(chunked_json.text_blocks(pieces, block_size=block)).decode()
        assert json.loads(text) == value
        assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_big_containers_are_cut_into_lines_of_at_most_chunk_entries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunked_json, "CHUNK", 10)
    value = {"users": {f"u{i}": {"id": f"u{i}", "groups": ["g"] * 3} for i in range(95)},
             "groups": [{"members": list(range(25))}], "head": {"link": "x"}}
    lines = list(chunked_json.encode_lines(value))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    pieces = [json.loads(line) for line in lines[1:]]
    assert all(len(piece) <= 10 for _path, piece in pieces)
    assert [p for p, _ in pieces].count(["users"]) == 10
    assert [p for p, _ in pieces].count(["groups", 0, "members"]) == 3
    assert chunked_json.decode_lines(lines) == value


def test_a_stream_written_as_one_json_value_is_still_read() -> None:
    value = {"generation": "g1", "data": {"users": {"a": {"id": "a"}}}}
    assert chunked_json.decode_lines(
        chunked_json.gunzip_lines([gzip.compress(json.dumps(value).encode())])) == value


@pytest.mark.parametrize("lines, words", [
    ([], "empty"),
    (['{"chunkedJson": 1, "skeleton": {}}', '{"not": "a piece"}'], "line 2"),
    (['{"chunkedJson": 1, "skeleton": {}}', '[["missing"], {"a": 1}]'], "not in the value"),
    (['{"chunkedJson": 1, "skeleton": {"a": []}}', '[["a"], {"b": 1}]'], "does not fit"),
    (['{"a": 1}', '{"b": 2}'], "no chunkedJson header"),
])
def test_malformed_streams_are_refused_with_what_is_wrong(lines: list[str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        chunked_json.decode_lines(lines)


def test_a_truncated_gzip_stream_is_refused() -> None:
    raw = b"".join(chunked_json.gzip_blocks(chunked_json.encode_lines(list(range(5000))),
                                            level=1, block_size=1 << 20))
    with pytest.raises(ValueError, match="truncated"):
        list(chunked_json.gunzip_lines([raw[: len(raw) // 2]]))
