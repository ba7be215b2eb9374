"""R10 at the door: settings that turn write-back on are refused for a hybrid tenant.

The FAQ: in a hybrid setup the integration "can only synchronize data from Microsoft
Entra ID to Emply. This means that the three extra options (create, update, delete)
are not possible to enable." So an import whose settings turn any `writeBack` option
on first asks Graph for the organization; a hybrid one (`onPremisesSyncEnabled`) is
refused with `hybrid_tenant` and nothing is written. A tenant that turns hybrid after
the import is caught by the planner instead (`hybrid_tenant` in every report).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.emply.document import DocumentError
from shared.graph import client as graph_client
from shared.graph import reader
from shared.reconcile import model


class HybridTenant(DocumentError):
    """The settings turn write-back on, and the tenant is hybrid (`hybrid_tenant`)."""

    reason = model.HYBRID_TENANT


def write_back_options(doc: object) -> tuple[str, ...]:
    """The write-back options a document's settings turn on (none for a malformed one:
    the document's own validation names that)."""
    settings = doc.get("settings") if isinstance(doc, Mapping) else None
    options = settings.get("writeBack") if isinstance(settings, Mapping) else None
    if not isinstance(options, Mapping):
        return ()
    return tuple(sorted(str(k) for k, on in options.items() if on is True))


async def refuse_hybrid(graph: graph_client.GraphClient, doc: object) -> None:
    """Raise `HybridTenant` when `doc` turns write-back on for a hybrid tenant; a Graph
    failure propagates (the import cannot tell, so it does not go ahead)."""
    options = write_back_options(doc)
    if not options:
        return
    organization: Mapping[str, Any] = await reader.read_organization(graph)
    if organization.get("onPremisesSyncEnabled"):
        named = ", ".join(f"writeBack.{o}" for o in options)
        raise HybridTenant(
            "settings.writeBack",
            f"{model.HYBRID_TENANT}: tenant {organization.get('id')} is a hybrid setup (its "
            "directory is synchronized from on-premises, onPremisesSyncEnabled), where the "
            "integration can only synchronize data from Microsoft Entra ID to Emply and "
            f"the write-back options cannot be enabled; turn off {named} (R10)",
        )
