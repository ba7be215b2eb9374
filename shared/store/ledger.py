"""What one load of the Emply side read, and the writes made with it since: the
Azure store's `protocols.Ledger` (`AzureLedger`), and a load served from a compact copy
(`from_cache`). See `shared.store.emply_tables` for how loads and writes use it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from shared.store import codec, columns, keys
from shared.store.codec import CODECS
from shared.store.protocols import LoadedEmply

Known = dict[str, dict[str, dict[str, Any] | list[Any]]]
"""kind -> row key -> compact item: the Emply side as a load and its writes know it."""


class AzureLedger:
    """What one load read and the writes made with it since (`protocols.Ledger`)."""

    __slots__ = ("etags", "generation", "known", "marker", "marker_ours", "partial", "pinned")

    def __init__(self, *, generation: str | None = None,
                 marker: tuple[str, str] | None = None,
                 etags: dict[tuple[str, str], str] | None = None,
                 known: Known | None = None, partial: bool = False) -> None:
        self.partial = partial
        """It knows only some entities (`loaded_from`): it makes no cached copy."""
        self.generation = generation
        """The generation (table) the load read, as the marker named it."""
        self.pinned = marker is not None or known is not None
        """Whether `generation` is set: by the load, or for a ledger made without one by
        its first write (a write that finds another generation current then refuses)."""
        self.etags: dict[tuple[str, str], str] = etags if etags is not None else {}
        """(PartitionKey, RowKey) -> ETag of the entities read or written."""
        self.known = known
        self.marker = marker
        """The version marker (value, ETag) as last read or written with this ledger."""
        self.marker_ours = marker is not None
        """Whether the marker moved only by writes made with this ledger since the load."""

    def version(self) -> str | None:
        return self.marker[0] if self.marker is not None and self.marker_ours else None

    def cache(self) -> dict[str, Any] | None:
        """A compact copy of the Emply side as loaded plus the writes since, tagged with
        the version marker; None when another writer moved the marker (or nothing was
        loaded). Plain JSON in columns (`shared.store.columns`), for `save_snapshot`."""
        if (self.known is None or not self.marker_ours or self.marker is None
                or self.partial):
            return None
        kinds: dict[str, Any] = {}
        located: dict[str, dict[str, tuple[str, str]]] = {kind: {} for kind in self.known}
        for (pk, rk), tag in self.etags.items():
            kind = codec.PARTITION_KINDS.get(pk) or codec.PARTITION_KINDS.get(
                pk.rpartition("-")[0])
            if kind in located:
                located[kind][rk] = (pk, tag)
        for kind, items in self.known.items():
            kc = CODECS[kind]
            fields = kc.cache_fields
            keys_ = sorted(items)  # by RowKey, the order `query` gives
            where = located[kind]
            kinds[kind] = {
                "keys": keys_,
                "etags": columns.pack_rows(
                    (where.get(k, (kc.pk(k), None)) for k in keys_), ("pk", "etag")),
                "items": columns.pack_rows(
                    (codec.cache_values(items[k], fields) for k in keys_), fields),
            }
        return {"format": codec.CACHE_FORMAT, "version": self.marker[0], "kinds": kinds}


    def entries(self, kind: str, ids: Iterable[str] | None = None
                ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """`protocols.Ledger.entries`."""
        items = (self.known or {}).get(kind) or {}
        kc = CODECS[kind]
        row_keys: Iterable[str] = items if ids is None else (
            keys.encode_key(i) for i in ids)
        for rk in row_keys:
            item = items.get(rk)
            if item is None:
                continue
            etag = self.etags.get((kc.pk(rk), rk))
            if isinstance(item, list):
                item = {f: v for f, v in zip(kc.cache_fields, item, strict=True)
                        if v is not None}
            yield etag, item


def ledger_of(loaded: LoadedEmply | None) -> AzureLedger:
    """The Azure ledger of `loaded`; a fresh one (no load: writes unguarded) for None."""
    if loaded is None:
        return AzureLedger()
    if not isinstance(loaded.ledger, AzureLedger):
        raise TypeError("this LoadedEmply was not loaded from Table Storage")
    return loaded.ledger


def from_cache(cache: Mapping[str, Any], generation: str | None,
               marker: tuple[str, str], kinds: Collection[str]) -> LoadedEmply | None:
    """The Emply side's `kinds` from a `LoadedEmply.cache()` (the other kinds empty);
    None when the cache is malformed or does not hold one of them (a copy of a load
    that left that kind out: the table is read instead)."""
    known: Known = {}
    etags: dict[tuple[str, str], str] = {}
    doc: dict[str, Any] = {"settings": None, **{k: [] for k in codec.PARTITIONS}}
    try:
        for kind in kinds:
            part = cache["kinds"].get(kind)
            if part is None:
                return None
            keys_ = part["keys"]
            items = columns.unpack_records(part["items"], f"emply cache {kind}")
            tags = columns.unpack_rows(part["etags"], ("pk", "etag"), f"emply cache {kind}")
            if not (isinstance(keys_, list) and len(keys_) == len(items) == len(tags)):
                raise ValueError(f"emply cache {kind}: keys, etags and items differ")
            etags.update(((pk, rk), tag)
                         for rk, (pk, tag) in zip(keys_, tags, strict=True) if tag)
            known[kind] = dict(zip(keys_, items, strict=True))
            if kind == "settings":
                doc["settings"] = items[0] if items else None
            else:
                doc[kind] = items
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    ledger = AzureLedger(generation=generation, marker=marker, etags=etags, known=known)
    return LoadedEmply(doc=doc, served_from_cache=True, ledger=ledger)
