"""The Emply index an on-demand run was served from, kept current by the run.

An on-demand run (`shared.run.on_demand`) serves the Emply side from the index the
last run saved while the store's version marker still has the value the index was
saved at. Its writes move the marker; left at that, the next run (on-demand or full)
would find the index stale and read the whole Emply table. So the run keeps the ETags
the index gave it (`ServedIndex.entries`), and after its writes (`current_after`):

- when the marker moved only by its own writes (`LoadedEmply.version()` is not None:
  the store says so), the entities whose ETag differs from the one served, or that
  the index did not hold, are exactly what its writes changed: they are put in the
  index (`indexes.fold`, as the indexed run puts a part's writes) and the index takes
  the marker the writes left;
- otherwise (another writer moved the marker, nothing was written, an entity was
  deleted, the Entra index cannot be read) the index is left as it was: its marker
  no longer matches, so the next run reads the Emply side from the table.

The caller saves both indexes and the state that names them
(`indexes.save_with_state`, as a full run does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shared.run import emply_index, indexes
from shared.run import state as sync_state
from shared.run.emply_index import EmplyIndex, Entry
from shared.run.entra_index import EntraIndex
from shared.store import protocols

Key = str | tuple[str, ...]


def _key(kind: str, item: dict[str, Any]) -> Key:
    return str(item["id"]) if kind in emply_index.KINDS else emply_index.other_key(kind, item)


class ServedIndex:
    """An Emply index being served to a run, and the ETags it served."""

    def __init__(self, index: EmplyIndex) -> None:
        self.index = index
        self._served: dict[str, dict[Key, str | None]] = {k: {} for k in indexes.ALL_KINDS}

    def entries(self, kind: str) -> Iterator[Entry]:
        """The index's entities of `kind` (`EmplyIndex.entries`), their ETags noted."""
        served = self._served[kind]
        for entry in self.index.entries(kind):
            served[_key(kind, entry[1])] = entry[0]
            yield entry

    def written(self, ledger: protocols.Ledger) -> dict[str, list[Entry]] | None:
        """The entities whose ETag the ledger holds differs from the one served (kind ->
        entries as written); None when one served is gone (a deletion: not folded)."""
        out: dict[str, list[Entry]] = {}
        for kind, served in self._served.items():
            seen = 0
            for etag, item in ledger.entries(kind):
                key = _key(kind, item)
                seen += key in served
                if key not in served or served[key] != etag:
                    out.setdefault(kind, []).append((etag, item))
            if seen != len(served):
                return None
        return out

    async def current_after(self, store: protocols.SyncStateStore,
                            state: sync_state.SyncState, loaded: protocols.LoadedEmply
                            ) -> tuple[EntraIndex, EmplyIndex] | None:
        """Both indexes to save, the Emply one with the run's writes folded in and the
        marker they left; None when the saved ones stay as they are (see the module)."""
        version = loaded.version()
        if version is None or version == self.index.version:
            return None
        written = self.written(loaded.ledger)
        if written is None:
            return None
        entra = await indexes.load_entra(store, state)
        if entra is None:
            return None
        indexes.fold(self.index, written)
        self.index.version = version
        return entra, self.index
