"""JSON Schemas of the Emply state document, built from `shared.emply.document`'s schema table
(each checker declares its schema beside it): the OpenAPI document's components.

Pure, no I/O. The schemas say what a body's shape must be; the checks say more (ids
unique, references resolve, e-mail addresses), with messages naming the field.
"""

from __future__ import annotations

from typing import Any

from shared.emply import document as emply_doc

NAMES = {"settings": "Settings", "roles": "Role", "users": "User", "employees": "Employee",
         "calendars": "Calendar", "events": "Event", "outboundEvents": "OutboundEvent"}


def _schema(section: str) -> dict[str, Any]:
    return emply_doc.SETTINGS if section == "settings" else emply_doc.SCHEMAS[section]


def components() -> dict[str, dict[str, Any]]:
    """Every entity's schema, its merge-patch form (`UserPatch`), and the document's."""
    out: dict[str, dict[str, Any]] = {}
    for section, name in NAMES.items():
        out[name] = emply_doc.object_schema(_schema(section))
        out[name + "Patch"] = emply_doc.object_schema(_schema(section), partial=True)
    # A PUT of one entity may leave out its id (the path names it).
    for kind in ("users", "employees", "outboundEvents"):
        body = emply_doc.object_schema(_schema(kind))
        body["required"] = [f for f in body.get("required", []) if f != "id"]
        out[NAMES[kind] + "Body"] = body
    # A list's items carry their ETag beside the entity's fields.
    for kind in ("users", "employees"):
        item = emply_doc.object_schema(_schema(kind))
        item["properties"]["etag"] = {"type": "string"}
        item["required"] = [*item.get("required", []), "etag"]
        out[NAMES[kind] + "Item"] = item
    properties: dict[str, Any] = {
        "settings": {"anyOf": [{"$ref": "#/components/schemas/Settings"}, {"type": "null"}]}}
    for section in emply_doc.ENTITY_KINDS:
        properties[section] = {"type": "array",
                               "items": {"$ref": f"#/components/schemas/{NAMES[section]}"}}
    properties["roles"]["maxItems"] = emply_doc.MAX_ROLES
    out["EmplyDocument"] = {"type": "object", "properties": properties,
                            "additionalProperties": False}
    return out
