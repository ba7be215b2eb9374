"""Mailbox routes: a user's photo, calendars, calendarView and events (read and write).

Unlike directory data, calendars are edited in place on the shared calendars dict
of the snapshot: events take no part in delta, so they need no versions. A user
without calendars has no mailbox (404 MailboxNotEnabledForRESTAPI), and routes
without `{cid}` use the default calendar, as Graph's `/calendar` and `/calendarView`
do (`/events` lists the whole mailbox). Event writes and reads with extended properties are
`graph_simulator.event_writes` and `graph_simulator.event_query`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from graph_simulator import odata, quirks
from graph_simulator.directory import user_id
from graph_simulator.protocol import (
    GraphError,
    Req,
    Resp,
    item_not_found,
)
from graph_simulator.tenant import (
    JSON,
    Photo,
    TenantFileError,
    event_for_output,
    event_in_window,
    parse_graph_datetime,
    select_properties,
)

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

DEFAULT_EVENTS_PAGE = 10


# ------------------------------------------------------------ photos


def _photo(sim: Simulator, req: Req) -> tuple[str, Photo, str]:
    """(user id, photo, its mediaEtag); Graph's ImageNotFound when the user has none."""
    uid = user_id(sim, req)
    photo = sim.current.photos.get(uid)
    if photo is None:
        raise _image_not_found()
    return uid, photo, f'W/"{hashlib.sha256(photo.data).hexdigest()}"'


def _image_not_found() -> GraphError:
    return GraphError(404, "ImageNotFound", "Exception of type "
                      "'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' "
                      "was thrown.")


def get_photo_meta(sim: Simulator, req: Req) -> Resp:
    uid = user_id(sim, req)
    if uid not in sim.current.photos and sim.quirks.user(uid).photo == quirks.EMPTY_ETAG:
        return Resp(200, quirks.photo_placeholder(req.base, uid))
    uid, photo, etag = _photo(sim, req)
    return Resp(200, {
        "@odata.context": f"{req.base}/$metadata#users('{uid}')/photo/$entity",
        "@odata.mediaContentType": photo.content_type,
        "@odata.mediaEtag": etag,
        "id": "default",
        "height": None,
        "width": None,
    })


def get_photo_value(sim: Simulator, req: Req) -> Resp:
    """The bytes. Their ETag header is deliberately not the metadata's mediaEtag: Graph
    documents no relation between the two (api/profilephoto-get.md), so a client must
    not compare them."""
    _, photo, _ = _photo(sim, req)
    etag = f'"{hashlib.md5(photo.data, usedforsecurity=False).hexdigest()}"'
    return Resp(200, photo.data, {"ETag": etag}, content_type=photo.content_type)


# ------------------------------------------------------------ calendars


def _mailbox(sim: Simulator, req: Req) -> list[JSON]:
    """The calendars of the user `{id}` names."""
    calendars = sim.current.calendars.get(user_id(sim, req))
    if calendars is None:
        raise GraphError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return calendars


def _calendar(sim: Simulator, req: Req) -> JSON:
    """The calendar a route names: {cid}, else the default calendar."""
    calendars = _mailbox(sim, req)
    cid = req.params.get("cid")
    if cid is not None:
        for cal in calendars:
            if cal["id"] == cid:
                return cal
    else:
        for cal in calendars:
            if cal.get("isDefaultCalendar"):
                return cal
        if calendars:
            return calendars[0]
    raise item_not_found()


def _render_calendar(cal: Mapping[str, Any], select: Sequence[str] | None,
                     owner: Mapping[str, Any]) -> JSON:
    """A calendar as Graph lists it; `owner` is the user itself unless the tenant file
    names another (a calendar shared with the user is owned by the sharer,
    resources/calendar.md)."""
    props = {k: v for k, v in cal.items() if k != "events"}
    props.setdefault("owner", dict(owner))
    return select_properties(props, select, None)


def _owner(sim: Simulator, req: Req) -> JSON:
    props = sim.current.users[user_id(sim, req)]
    return {"name": props.get("displayName"),
            "address": props.get("mail") or props.get("userPrincipalName")}


def list_calendars(sim: Simulator, req: Req) -> Resp:
    calendars = _mailbox(sim, req)
    select = odata.select(req)
    owner = _owner(sim, req)
    return odata.paged(
        sim,
        req,
        lambda _s: calendars,
        lambda _s, cal: _render_calendar(cal, select, owner),
        "calendars",
    )


def get_calendar(sim: Simulator, req: Req) -> Resp:
    cal = _calendar(sim, req)
    select = odata.select(req)
    return Resp(200, {"@odata.context": odata.context(req, "calendars/$entity", select),
                      **_render_calendar(cal, select, _owner(sim, req))})


# ------------------------------------------------------------ events


def _event_list(req: Req, events: list[JSON]) -> Resp:
    select = odata.select(req)
    size, applied = odata.page_size(req, DEFAULT_EVENTS_PAGE)
    page, next_link = odata.offset_page(req, events, "events", size, "ErrorInvalidUrlQuery")
    body: JSON = {
        "@odata.context": odata.context(req, "events", select),
        "value": [select_properties(event_for_output(e), select, None) for e in page],
    }
    if next_link is not None:
        body["@odata.nextLink"] = next_link
    return odata.with_preference(Resp(200, body), applied, size)


def query_window(req: Req) -> tuple[datetime, datetime]:
    """The `startDateTime`/`endDateTime` of a calendar view request (400 when absent or
    not dates)."""
    start_raw = odata.query_ci(req.query, "startDateTime")
    end_raw = odata.query_ci(req.query, "endDateTime")
    if not start_raw or not end_raw:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
        )
    try:
        return (parse_graph_datetime(start_raw, "startDateTime"),
                parse_graph_datetime(end_raw, "endDateTime"))
    except TenantFileError:
        raise GraphError(400, "ErrorInvalidParameter",
                         "Invalid startDateTime or endDateTime.") from None


def calendar_view(sim: Simulator, req: Req) -> Resp:
    start, end = query_window(req)
    events = [e for e in _calendar(sim, req)["events"] if event_in_window(e, start, end)]
    events.sort(key=lambda e: (parse_graph_datetime(e.get("start"), "start"), e["id"]))
    return _event_list(req, events)


def mailbox(sim: Simulator, req: Req) -> list[JSON]:
    """The calendars of the user `{id}` names (404 MailboxNotEnabledForRESTAPI without)."""
    return _mailbox(sim, req)


def calendar_of(sim: Simulator, req: Req) -> JSON:
    """The calendar a route names: `{cid}`, else the default calendar."""
    return _calendar(sim, req)


def find_event(sim: Simulator, req: Req) -> tuple[JSON, JSON]:
    """(calendar, event) for `{eid}`, searched in all of the user's calendars."""
    for cal in _mailbox(sim, req):
        for event in cal["events"]:
            if event["id"] == req.params["eid"]:
                return cal, event
    raise item_not_found()


def check_event_window(event: Mapping[str, Any]) -> None:
    """An event's start and end must parse, and it must not end before it starts."""
    try:
        start = parse_graph_datetime(event.get("start"), "start")
        end = parse_graph_datetime(event.get("end"), "end")
    except TenantFileError as err:
        raise GraphError(400, "ErrorInvalidRequest", str(err)) from None
    if end < start:
        raise GraphError(400, "ErrorInvalidRequest", "The end is before the start.")
