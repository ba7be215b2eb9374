"""The Graph v1.0 route table: every path the simulator serves, and its handler.

Order matters: routes are tried top to bottom, so a literal segment
(`/users/delta`, `deletedItems/microsoft.graph.user`) stands before the `{id}`
template that would also match it. Templates are what request counts and
injected faults are keyed on, so changing one changes `/_sim/requests` output.
"""

from __future__ import annotations

from graph_simulator import (
    batch,
    calendar_delta,
    calendars,
    delta,
    directory,
    event_query,
    event_writes,
    subscriptions,
    writes,
)
from graph_simulator.pipeline import Handler

GRAPH_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/organization", directory.get_organization),
    ("GET", "/users", directory.list_users),
    ("POST", "/users", writes.create_user),
    ("GET", "/users/delta", delta.users_delta),
    ("GET", "/users/{id}", directory.get_user),
    ("PATCH", "/users/{id}", writes.patch_user),
    ("DELETE", "/users/{id}", writes.delete_user),
    ("GET", "/users/{id}/memberOf", directory.member_of),
    ("GET", "/users/{id}/transitiveMemberOf", directory.transitive_member_of),
    ("GET", "/users/{id}/photo", calendars.get_photo_meta),
    ("GET", "/users/{id}/photo/$value", calendars.get_photo_value),
    ("GET", "/users/{id}/calendars", calendars.list_calendars),
    ("GET", "/users/{id}/calendar", calendars.get_calendar),
    ("GET", "/users/{id}/calendars/{cid}", calendars.get_calendar),
    ("GET", "/users/{id}/calendar/calendarView", calendars.calendar_view),
    ("GET", "/users/{id}/calendars/{cid}/calendarView/delta",
     calendar_delta.calendar_view_delta),
    ("GET", "/users/{id}/calendars/{cid}/calendarView", calendars.calendar_view),
    ("GET", "/users/{id}/calendarView", calendars.calendar_view),
    ("GET", "/users/{id}/calendar/events", event_query.list_events),
    ("GET", "/users/{id}/calendars/{cid}/events", event_query.list_events),
    ("GET", "/users/{id}/events", event_query.list_events),
    ("POST", "/users/{id}/calendar/events", event_writes.create_event),
    ("POST", "/users/{id}/calendars/{cid}/events", event_writes.create_event),
    ("POST", "/users/{id}/events", event_writes.create_event),
    ("GET", "/users/{id}/events/{eid}", event_query.get_event),
    ("PATCH", "/users/{id}/events/{eid}", event_writes.patch_event),
    ("DELETE", "/users/{id}/events/{eid}", event_writes.delete_event),
    ("POST", "/users/{id}/events/{eid}/cancel", event_writes.cancel_event),
    ("GET", "/groups", directory.list_groups),
    ("GET", "/groups/delta", delta.groups_delta),
    ("GET", "/groups/{id}", directory.get_group),
    ("GET", "/groups/{id}/members", directory.group_members),
    ("GET", "/groups/{id}/transitiveMembers", directory.group_transitive_members),
    ("POST", "/groups/{id}/members/$ref", writes.add_member),
    ("DELETE", "/groups/{id}/members/{mid}/$ref", writes.remove_member),
    ("GET", "/directory/deletedItems/microsoft.graph.user", writes.list_deleted_users),
    ("GET", "/directory/deletedItems/{id}", writes.get_deleted_item),
    ("POST", "/directory/deletedItems/{id}/restore", writes.restore_deleted_item),
    ("POST", "/$batch", batch.batch),
    ("POST", "/subscriptions", subscriptions.create_subscription),
    ("GET", "/subscriptions", subscriptions.list_subscriptions),
    ("GET", "/subscriptions/{id}", subscriptions.get_subscription),
    ("PATCH", "/subscriptions/{id}", subscriptions.patch_subscription),
    ("DELETE", "/subscriptions/{id}", subscriptions.delete_subscription),
    ("POST", "/subscriptions/{id}/reauthorize", subscriptions.reauthorize_subscription),
]
