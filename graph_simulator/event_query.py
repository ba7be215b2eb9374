"""Reading events with their single-value extended properties: `$filter` and `$expand`
(api-reference/v1.0/api/singlevaluelegacyextendedproperty-get.md).

- `GET /users/{id}/events` lists the events of the whole mailbox ("The filter is
  applied to all instances of the resource in the signed-in user's mailbox");
  `/users/{id}/calendar/events` and `/users/{id}/calendars/{cid}/events` one calendar.
- `$filter=singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and <value test>)`,
  the value test one of `ep/value eq|ne '{v}'`, `ep/value ne null`,
  `startswith(ep/value, '{v}')`, `contains(ep/value, '{v}')`. The property's name in
  the id compares case-sensitively, the value ignoring case, as the page says. Any
  other `$filter` on events is refused (400), never ignored.
- `$expand=singleValueExtendedProperties($filter=id eq '{id}'[ or id eq '{id}'...])`
  adds the matching properties to each event (on a list, as on a single event);
  without it they are never in the output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from graph_simulator import calendars, odata
from graph_simulator.event_extras import extras
from graph_simulator.protocol import GraphError, Req, Resp
from graph_simulator.tenant import JSON, event_for_output, select_properties

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

_LITERAL = r"'((?:[^']|'')*)'"
_ANY = re.compile(
    r"^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*(\w+)/id\s+eq\s+"
    + _LITERAL + r"\s+and\s+(.+?)\)\s*$", re.IGNORECASE)
_VALUE_TESTS = (
    (re.compile(r"^(\w+)/value\s+eq\s+" + _LITERAL + "$", re.I), "eq"),
    (re.compile(r"^(\w+)/value\s+ne\s+" + _LITERAL + "$", re.I), "ne"),
    (re.compile(r"^(\w+)/value\s+ne\s+null$", re.I), "present"),
    (re.compile(r"^startswith\(\s*(\w+)/value\s*,\s*" + _LITERAL + r"\s*\)$", re.I),
     "startswith"),
    (re.compile(r"^contains\(\s*(\w+)/value\s*,\s*" + _LITERAL + r"\s*\)$", re.I), "contains"),
)
_EXPAND = re.compile(r"^\s*singleValueExtendedProperties\(\s*\$filter\s*=\s*(.+)\)\s*$",
                     re.IGNORECASE)
_EXPAND_ID = re.compile(r"^\s*id\s+eq\s+" + _LITERAL + r"\s*$", re.IGNORECASE)


def _invalid(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidUrlQueryFilter", message)


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def property_filter(raw: str | None) -> Callable[[Mapping[str, str]], bool] | None:
    """The `$filter` on extended properties as a test of an event's properties."""
    if raw is None or not raw.strip():
        return None
    found = _ANY.match(raw)
    if found is None or found.group(1).lower() != found.group(2).lower():
        raise _invalid(f"Unsupported $filter on events: {raw.strip()}")
    prop_id, test = _unquote(found.group(3)), found.group(4).strip()
    for pattern, op in _VALUE_TESTS:
        matched = pattern.match(test)
        if matched is None or matched.group(1).lower() != found.group(1).lower():
            continue
        compare = _value_test(op, _unquote(matched.group(2)).casefold()
                              if op != "present" else "")
        return lambda props: prop_id in props and compare(props[prop_id].casefold())
    raise _invalid(f"Unsupported test on the extended property's value: {test}")


def _value_test(op: str, wanted: str) -> Callable[[str], bool]:
    """A test of a property's value (case-folded) against `wanted` (case-folded)."""
    if op == "eq":
        return lambda value: value == wanted
    if op == "ne":
        return lambda value: value != wanted
    if op == "startswith":
        return lambda value: value.startswith(wanted)
    if op == "contains":
        return lambda value: wanted in value
    return lambda value: True  # `ne null`: present, whatever its value


def expanded_ids(raw: str | None) -> list[str] | None:
    """The property ids `$expand` asks for (None: no `$expand`)."""
    if raw is None:
        return None
    found = _EXPAND.match(raw)
    if found is None:
        raise GraphError(400, "BadRequest", f"Unsupported $expand on events: {raw.strip()}")
    ids = []
    for part in re.split(r"\s+or\s+", found.group(1)):
        matched = _EXPAND_ID.match(part)
        if matched is None:
            raise GraphError(400, "BadRequest", f"Unsupported $expand filter: {part.strip()}")
        ids.append(_unquote(matched.group(1)))
    return ids


def render(sim: Simulator, event: Mapping[str, Any], select: list[str] | None,
           expand: list[str] | None) -> JSON:
    out = select_properties(event_for_output(event), select, None)
    if expand is not None:
        props = extras(sim).properties.get(str(event["id"]), {})
        out["singleValueExtendedProperties"] = [
            {"id": pid, "value": props[pid]} for pid in expand if pid in props]
    return out


def list_events(sim: Simulator, req: Req) -> Resp:
    """`/users/{id}/events` (the whole mailbox) or one calendar's, filtered and expanded."""
    test = property_filter(req.query.get("$filter"))
    expand = expanded_ids(req.query.get("$expand"))
    if req.path.rstrip("/").endswith("/calendar/events") or "cid" in req.params:
        events = list(calendars.calendar_of(sim, req)["events"])
    else:
        events = [e for cal in calendars.mailbox(sim, req) for e in cal["events"]]
    if test is not None:
        props = extras(sim).properties
        events = [e for e in events if test(props.get(str(e["id"]), {}))]
    select = odata.select(req)
    size, applied = odata.page_size(req, calendars.DEFAULT_EVENTS_PAGE)
    page, next_link = odata.offset_page(req, events, "events", size, "ErrorInvalidUrlQuery")
    body: JSON = {"@odata.context": odata.context(req, "events", select),
                  "value": [render(sim, e, select, expand) for e in page]}
    if next_link is not None:
        body["@odata.nextLink"] = next_link
    return odata.with_preference(Resp(200, body), applied, size)


def get_event(sim: Simulator, req: Req) -> Resp:
    expand = expanded_ids(req.query.get("$expand"))
    _, event = calendars.find_event(sim, req)
    select = odata.select(req)
    return Resp(200, {"@odata.context": odata.context(req, "events/$entity", select),
                      **render(sim, event, select, expand)})
