"""The Emply side over HTTP: what `webhook_http.emply_api`'s handlers call.

Every body is checked by `shared.emply.document` (the schema table the import uses, with the
same messages) and by what Table Storage would refuse, against the stored ids and unique
values a plain import is checked against; a refused body raises `DocumentError` and
nothing is written. One entity is written conditionally on its ETag (`If-Match`) through
`shared.store.entities`; the whole document goes through `emply_import.import_emply`
(all or nothing, refused with `RunInProgress` while a run holds the lease).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from shared.app import cursors, emply_import, hybrid_check, outbound_events
from shared.emply import checks as emply_checks
from shared.emply import document as emply_doc
from shared.emply import file as emply_file
from shared.emply.document import DocumentError
from shared.graph import client as graph_client
from shared.run.mailboxes import notified
from shared.store import entities, protocols
from shared.store import errors as store_errors

KINDS = ("users", "employees", "outboundEvents")
"""The kinds with one route per entity (`/api/users/{id}`, `/api/employees/{id}`,
`/api/outbound-events/{id}`)."""
PreconditionFailed = entities.PreconditionFailed
BadCursor = entities.BadCursor
ANY = entities.ANY
ConcurrentChange = store_errors.ConcurrentChangeError

_LABEL = re.compile(r'^(settings|roles|users|employees|calendars|outboundEvents)(\[\d+\])?'
                    r'( \(id "(?:[^"\\]|\\.)*"\))?\.?')


class NotFound(LookupError):
    """No entity with that id."""


class OutcomeUnknown(Exception):
    """Storage took a write and its answer was lost: it may have been made."""

    def __init__(self, kind: str, entity_id: str) -> None:
        super().__init__(f"storage did not answer the write of this {kind[:-1]}; it may have "
                         "been made: GET it and compare its ETag before writing again")
        self.kind = kind
        self.entity_id = entity_id


def export_bytes(doc: Mapping[str, Any]) -> bytes:
    """The export as `emply-sync emply export` prints it, byte for byte."""
    return (json.dumps(doc, indent=2) + "\n").encode()


async def export_document(store: protocols.SyncStore) -> bytes:
    return export_bytes(await store.export_document())


async def import_document(store: protocols.SyncStore, body: bytes, *, replace: bool,
                          graph: graph_client.GraphClient) -> dict[str, int]:
    """As `emply-sync emply import`: parsed, R10's hybrid check (settings turning
    write-back on for a hybrid tenant are refused), then imported all or nothing."""
    doc = emply_file.parse_document_bytes(body, source="the body")
    await hybrid_check.refuse_hybrid(graph, doc)
    return await emply_import.import_emply(store, doc, replace=replace, trigger="http",
                                           source="the body")


def _relative(error: DocumentError) -> DocumentError:
    """The problems with paths relative to the one entity of a body (`status`, not
    `users[0] (id "u-1").status`): the body is the entity."""
    problems = [(_LABEL.sub("", path) or "body", detail) for path, detail in error.errors]
    relative = DocumentError.of(problems)
    relative.total = error.total
    return relative


async def _validate(store: protocols.SyncStore, section: str, value: object) -> dict[str, Any]:
    stored, known = await entities.identities(store)
    try:
        clean = emply_doc.validate_document(
            {section: value}, known_role_ids=known["roles"], known_user_ids=known["users"],
            known_employee_ids=known["employees"], stored=stored)
        problems = entities.table_problems(clean)
        if problems:
            raise DocumentError.of(problems)
    except DocumentError as exc:
        raise _relative(exc) from None
    return clean


async def get_entity(store: protocols.SyncStore, kind: str,
                     entity_id: str) -> tuple[dict[str, Any], str]:
    found = await entities.read(store, kind, entity_id)
    if found is None:
        raise NotFound(f"no {kind[:-1]} with that id")
    return found


async def put_entity(store: protocols.SyncStore, kind: str, entity_id: str, body: object,
                     if_match: str | None) -> tuple[dict[str, Any], str, bool]:
    """Replace (or create) one entity with `body` (the whole entity; `id`, when given,
    must be the path's). Returns the entity, its new ETag and whether it was created."""
    if not isinstance(body, dict):
        raise DocumentError("body", "expected a JSON object")
    if "id" in body and body["id"] != entity_id:
        raise DocumentError("id", "must be the id in the path")
    if kind == "outboundEvents":
        # The sync's own fields the body leaves out are kept: sending an event again with
        # other content updates its M365 copy instead of creating a second one.
        found = await entities.read(store, kind, entity_id)
        if found is not None:
            body = outbound_events.keep_sync_fields(found[0], body)
    clean = (await _validate(store, kind, [{**body, "id": entity_id}]))[kind][0]
    etag, created = await _write(store, kind, clean, if_match)
    return clean, etag, created


async def patch_entity(store: protocols.SyncStore, kind: str, entity_id: str, body: object,
                       if_match: str | None) -> tuple[dict[str, Any], str]:
    """JSON Merge Patch (RFC 7396) of one entity: fields given replace, null clears a
    field back to its default; the result is checked as a whole entity."""
    if not isinstance(body, dict):
        raise DocumentError("body", "expected a JSON object")
    if "id" in body and body["id"] != entity_id:
        raise DocumentError("id", "must be the id in the path")
    current, etag = await get_entity(store, kind, entity_id)
    if if_match is not None and if_match not in (ANY, etag):
        raise PreconditionFailed(f"{kind} entity changed since it was read")
    merged = _merge(current, body)
    clean = (await _validate(store, kind, [merged]))[kind][0]
    # Conditional on the ETag the patch was applied to: a write in between is a 412.
    new_etag, _created = await _write(store, kind, clean, etag)
    return clean, new_etag


async def _write(store: protocols.SyncStore, kind: str, item: dict[str, Any],
                 if_match: str | None) -> tuple[str, bool]:
    """`entities.write`, a value another user took meanwhile refused as the checks above
    refuse one they can see (400 naming the field), a lost answer named as such."""
    try:
        return await entities.write(store, kind, item, if_match)
    except store_errors.UniqueTaken as exc:
        raise DocumentError(exc.field, f"{emply_checks.show(item.get(exc.field))} is held by "
                            "another user (taken by a write at the same time)") from None
    except store_errors.OutcomeUnknown as exc:
        raise OutcomeUnknown(kind, str(item.get("id"))) from exc


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


async def delete_outbound_event(store: protocols.SyncStore, entity_id: str,
                                if_match: str | None) -> tuple[dict[str, Any], str]:
    """Emply deletes an outbound event (R15): marked `deleteRequested`, so the next run
    deletes it in M365 (when M365 holds it) and then removes it from Emply. Returns the
    marked event and its new ETag; asking again changes nothing."""
    current, etag = await get_entity(store, "outboundEvents", entity_id)
    if if_match is not None and if_match not in (ANY, etag):
        raise PreconditionFailed("outboundEvents entity changed since it was read")
    if current.get("deleteRequested") is True:
        return current, etag
    marked = {**current, "deleteRequested": True}
    new_etag, _created = await _write(store, "outboundEvents", marked, etag)
    return marked, new_etag


async def get_settings(store: protocols.SyncStore) -> tuple[dict[str, Any], str]:
    found = await entities.read(store, "settings", "")
    if found is None:
        raise NotFound("no settings yet; PUT them first")
    return found


async def put_settings(store: protocols.SyncStore, body: object, if_match: str | None,
                       graph: graph_client.GraphClient) -> tuple[dict[str, Any], str]:
    """Replace the settings: checked as the import checks them, R10's hybrid check
    included (write-back cannot be turned on for a hybrid tenant)."""
    if not isinstance(body, dict):
        raise DocumentError("body", "expected a JSON object")
    clean = (await _validate(store, "settings", body))["settings"]
    try:
        await hybrid_check.refuse_hybrid(graph, {"settings": clean})
    except hybrid_check.HybridTenant as exc:
        raise _relative(exc) from None
    return clean, (await _write(store, "settings", clean, if_match))[0]


async def list_page(store: protocols.SyncStore, kind: str, *, page_size: int, after: str | None,
                    filters: Mapping[str, str], linked: bool | None
                    ) -> tuple[list[tuple[dict[str, Any], str]], str | None]:
    """A page of entities after the sealed cursor `after` (`next`), and the sealed cursor
    of the next page."""
    position = await cursors.unseal(store, after, "next")
    found, following = await entities.page(store, kind, page_size=page_size, after=position,
                                           equals=filters, linked=linked)
    return found, await cursors.seal(store, following)


async def set_calendar(store: protocols.SyncStore, user_id: str, calendar_id: str, body: object,
                       if_match: str | None) -> tuple[dict[str, Any], str]:
    """A user's choice for one of its calendars (R13): `{"enabled": true|false}`. The
    calendars themselves are the sync's (added and removed by it): an unknown one is
    `NotFound`, and the default calendar cannot be disabled (refused naming `enabled`)."""
    if not isinstance(body, dict):
        raise DocumentError("body", "expected a JSON object")
    unknown = sorted(k for k in body if k != "enabled")
    if unknown:
        raise DocumentError(str(unknown[0])[:64],
                            "unknown field; only enabled can be set (the sync keeps the rest)")
    if not isinstance(body.get("enabled"), bool):
        raise DocumentError("enabled", "required, true or false")
    found = await entities.read(store, "calendars", {"userId": user_id, "id": calendar_id})
    if found is None:
        raise NotFound("no calendar with that id for that user (calendars are added by the "
                       "sync: the ones the user can edit in M365)")
    current, etag = found
    if if_match is not None and if_match not in (ANY, etag):
        raise PreconditionFailed("calendars entity changed since it was read")
    clean = (await _validate(store, "calendars", [{**current, "enabled": body["enabled"]}])
             )["calendars"][0]
    new_etag = (await _write(store, "calendars", clean, etag))[0]
    # The next run reads this mailbox (with notifications on it reads only what changed).
    user = await entities.read(store, "users", user_id)
    if user is not None and user[0].get("entraId"):
        await notified.mark_dirty(store.mailbox_states(), str(user[0]["entraId"]),
                                  "calendar_choice", dt.datetime.now(dt.UTC))
    return clean, new_etag
