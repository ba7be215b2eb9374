"""Page cursors handed out over HTTP (`next`, `after`): sealed, so what comes back is a
position this service made, or a 400 naming the parameter.

The store and the run make positions (a table key, a section, a feed chunk and index);
this module seals each with `shared.emply.gate.seal` under the store's cursor key
(`protocols.CursorKeys`: 32 random bytes made once, kept in storage, the same for
every instance) and opens what a caller sends back with `unseal` before anything of
it is decoded. A cursor handed out under another key (the key deleted from storage,
another deployment's) is refused like a forged one: page again from the start.
"""

from __future__ import annotations

from shared.emply import gate
from shared.store import protocols


async def seal(store: protocols.CursorKeys, position: str | None) -> str | None:
    """The cursor of `position` (None stays None: there is no next page)."""
    if position is None:
        return None
    return gate.seal(await store.cursor_key(), position)


async def unseal(store: protocols.CursorKeys, cursor: str | None, field: str) -> str | None:
    """The position `cursor` holds (None for None); `gate.GateError` naming `field` for
    anything this service did not hand out."""
    if cursor is None:
        return None
    return gate.unseal(await store.cursor_key(), cursor, field)
