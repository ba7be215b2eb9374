"""Table keys and account connection strings.

Table Storage refuses `/ \\ # ?` and control characters in PartitionKey and
RowKey; ids come from operators and from Graph, so they are percent-encoded
(reversibly: `%` itself is encoded too). `'` and `|` are encoded as well: `'`
because OData filters quote with it, `|` because it joins compound keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

_UNSAFE = re.compile(r"[%/\\#?'|\x00-\x1f\x7f-\x9f]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_MAX_PART = 160
"""A compound key's part over this is a digest (65 characters): three parts then fit
Table keys' limit (1 KiB of UTF-16; Azurite: 512 characters)."""

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public, documented by Microsoft.
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")


def encode_key(value: str) -> str:
    """Make `value` a valid Table key; `decode_key` reverses it."""
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def decode_key(key: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), key)


def compound_key(parts: Sequence[str]) -> str:
    """A row key for an entity identified by several ids (user + calendar id).

    Entities keep their ids as properties too, so an over-long part may fall back to a
    digest without losing anything (`key_part`). Each part on its own, so the key still
    starts with its user, and a calendar's events share the key prefix
    `user|calendar|` (what `shared.store.codec` buckets and filters by).
    """
    return "|".join(key_part(p) for p in parts)


def key_part(value: str) -> str:
    """One part of a compound key: encoded, or a digest when that is too long (three
    parts then still fit a key)."""
    encoded = encode_key(value)
    if len(encoded) <= _MAX_PART:
        return encoded
    return "~" + hashlib.sha256(encoded.encode()).hexdigest()


BUCKETS = 256
ALL_BUCKETS: tuple[str, ...] = tuple(f"{n:02x}" for n in range(BUCKETS))


def bucket(row_key: str) -> str:
    """The bucket (two hex digits) of a bucketed kind's RowKey: stable across runs,
    processes and machines (not Python's salted `hash`)."""
    return hashlib.blake2b(row_key.encode(), digest_size=1).hexdigest()


def user_bucket(user_id: str) -> str:
    """The bucket of an Emply user's calendars and events (and of its mailbox state):
    the bucket of the first part of their RowKeys."""
    return bucket(key_part(user_id))


def azurite_connection_string(host: str = "http://127.0.0.1", *, blob_port: int = 10000,
                              queue_port: int = 10001, table_port: int = 10002) -> str:
    """The explicit form of `UseDevelopmentStorage=true` (the SDKs differ on it)."""
    host = host.rstrip("/")
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={host}:{blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint={host}:{queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint={host}:{table_port}/{AZURITE_ACCOUNT};")


def expand_connection_string(conn: str) -> str:
    """Expand the `UseDevelopmentStorage=true` shorthand; other strings pass."""
    parts = {}
    for item in conn.split(";"):
        name, sep, value = item.partition("=")
        if sep:
            parts[name.strip().lower()] = value.strip()
    if parts.get("usedevelopmentstorage", "").lower() != "true":
        return conn
    return azurite_connection_string(parts.get("developmentstorageproxyuri", "http://127.0.0.1"))
