"""What Azure Table Storage refuses, checked on a row before it is written (pure).

Limits (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model):
a string property holds at most 64 KiB of UTF-16 (32,768 code units), a key 1 KiB
(512 code units), an entity at most 1 MiB by the service's size formula; Azurite
also refuses an entity whose JSON body exceeds 1 MiB of UTF-8, so both are checked.
A string with an unpaired surrogate (JSON allows "\\ud800") cannot be sent at all.

`row_problems` names the entity (its label, as the document validation does) and the
field, so an import can refuse the whole file before it writes anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MAX_STRING_UNITS = 32 * 1024
MAX_KEY_UNITS = 512
MAX_ENTITY_BYTES = 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
# Below this many bytes by the service's formula, the JSON body (at most 3 bytes of
# UTF-8 per UTF-16 byte, for escaped control characters) cannot reach 1 MiB either.
_SURELY_SMALL = MAX_ENTITY_BYTES // 3 - 4096


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units (characters beyond the BMP take two)."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _kib(size: int) -> str:
    return f"{size / 1024:,.1f} KiB"


def row_problems(row: Mapping[str, Any], label: str,
                 key_field: str = "id") -> list[tuple[str, str]]:
    """Why Table Storage would refuse `row` (PartitionKey, RowKey and properties), each as
    ``(path, detail)`` with `label` naming the entity; empty when it would take it."""
    text = "".join([v for v in row.values() if isinstance(v, str)])
    if len(text) <= MAX_KEY_UNITS and text.isascii():
        return []  # the usual row: a few hundred ASCII characters in all, nothing to refuse
    problems: list[tuple[str, str]] = []
    size = 4
    largest: tuple[int, str] = (0, "")
    for name, value in row.items():
        if name in ("PartitionKey", "RowKey"):
            units = utf16_units(value)
            size += 2 * units
            if units > MAX_KEY_UNITS:
                problems.append((f"{label}.{key_field}",
                                 f"too long for a Table Storage key once encoded ({units} "
                                 f"characters, at most {MAX_KEY_UNITS})"))
            continue
        size += 8 + 2 * len(name)
        if isinstance(value, str):
            units = utf16_units(value)
            size += 4 + 2 * units
            largest = max(largest, (2 * units, name))
            if units > MAX_STRING_UNITS:
                problems.append((f"{label}.{name}",
                                 f"{len(value):,} characters ({2 * units:,} bytes as "
                                 f"stored, UTF-16), more than Table Storage's 64 KiB "
                                 f"({2 * MAX_STRING_UNITS:,} bytes) per property"))
            if not value.isascii() and _SURROGATE.search(value):
                problems.append((f"{label}.{name}",
                                 "contains an unpaired UTF-16 surrogate (e.g. \\ud800): "
                                 "not valid Unicode text"))
        elif isinstance(value, bool):
            size += 1
        else:
            size += 8
    if size > _SURELY_SMALL:
        body = len(json.dumps(row, ensure_ascii=False, separators=(",", ":"))
                   .encode("utf-8", "surrogatepass"))
        stored = max(size, body)
        if stored > MAX_ENTITY_BYTES:
            problems.append((label, f"the entity is {_kib(stored)} stored, more than Table "
                                    f"Storage's 1 MiB per entity (largest field: "
                                    f"{largest[1]}, {_kib(largest[0])})"))
    return problems
