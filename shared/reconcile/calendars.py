"""R13: which of a user's M365 calendars Emply keeps.

FAQ ("Why is Emply not synchronized with the calendar?"): "the integration will add
all Entra ID calendars where the Entra ID user has editing rights or higher to Emply
automatically. The Entra ID user's own default calendar will be added without the
Disable button but all additional calendars will be added with the Disable/Enable
buttons. Additional calendars will be added to Emply as Disabled by default."

So, for a linked active user with calendar sync on (the setting and the user's own
flag), each calendar Graph lists with `canEdit` is kept: a new one is added
(`calendar_add`), the default enabled and every other disabled; the user's later
enable/disable choice is never touched. A calendar that disappeared or lost edit
rights is removed with its mirrored events (`calendar_remove`), and so are all the
calendars of a user who is not (or no longer) linked and active, whose calendar sync
is off, or whose mailbox is not in the cloud. A user whose mailbox was not read this
run keeps its calendars as they are.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from shared.reconcile import model


def calendar_changes(
    emply: model.EmplySnapshot,
    mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None] | None,
    settings: model.Settings,
    deactivated: Collection[str],
) -> list[model.Change]:
    """The R13 changes, by user id then calendar id. `deactivated`: Emply user ids this
    run deactivates (they keep no calendars)."""
    stored: dict[str, dict[str, model.EmplyCalendar]] = {}
    for calendar in emply.calendars:
        stored.setdefault(calendar.user_id, {})[calendar.id] = calendar
    events: dict[tuple[str, str], int] = {}
    for event in emply.events:
        key = (event.user_id, event.calendar_id)
        events[key] = events.get(key, 0) + 1
    users = {u.id: u for u in emply.users}
    changes: list[model.Change] = []
    # Only users with calendars stored or read can change (not all 100,000 users).
    read = {u.id for u in emply.users if mailboxes and u.entra_id in mailboxes}
    for user_id in sorted({*stored, *read}):
        user = users.get(user_id)
        mine = stored.get(user_id, {})
        why_none = not_synced(user, settings, deactivated, mailboxes)
        if why_none is not None:
            reason, words = why_none
            changes += [_remove(c, events, reason, words, user) for _, c in sorted(mine.items())]
            continue
        if user is None or user.entra_id is None or mailboxes is None:
            continue  # unreachable: not_synced said why
        found = mailboxes.get(user.entra_id)
        if found is None:
            continue  # not read this run: kept as it is
        changes += _reconcile(user, mine, found, events)
    return changes


def not_synced(
    user: model.EmplyUser | None,
    settings: model.Settings,
    deactivated: Collection[str],
    mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None] | None,
) -> tuple[str, str] | None:
    """Why `user` has no calendars in Emply (reason, words); None when they are synced."""
    why = mailbox_refusal(user, settings, deactivated, mailboxes,
                          unlinked=model.USER_NOT_SYNCED, inactive=model.USER_NOT_SYNCED)
    if why is not None and why[0] == model.MAILBOX_NOT_IN_CLOUD:
        return why[0], f"{why[1]}, so its calendars cannot be synchronized"
    return why


def mailbox_refusal(
    user: model.EmplyUser | None,
    settings: model.Settings,
    deactivated: Collection[str],
    mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None] | None,
    *,
    unlinked: str,
    inactive: str,
) -> tuple[str, str] | None:
    """Why `user`'s M365 calendars are out of reach (reason, words), the reason of an
    unlinked or a deactivated user as the caller names it; None when they are in reach
    (R13's calendars, R15's outbound events)."""
    if not settings.calendar_sync:
        return model.CALENDAR_SYNC_OFF, "calendar sync is off in the integration settings"
    if user is None or user.entra_id is None:
        return unlinked, "the user is not linked to an Entra user"
    if user.status != "active" or user.id in deactivated:
        return inactive, "the user is deactivated"
    if not user.calendar_sync:
        return model.CALENDAR_SYNC_OFF, "calendar sync is off for this user"
    if mailboxes is not None and user.entra_id in mailboxes \
            and mailboxes[user.entra_id] is None:
        return model.MAILBOX_NOT_IN_CLOUD, (
            "the user's mailbox is not in the cloud (Graph: MailboxNotEnabledForRESTAPI)")
    return None


def _reconcile(
    user: model.EmplyUser,
    mine: Mapping[str, model.EmplyCalendar],
    found: tuple[model.EntraCalendar, ...],
    events: Mapping[tuple[str, str], int],
) -> list[model.Change]:
    listed = {c.id: c for c in found}
    editable = {c.id: c for c in found if c.can_edit}
    changes = []
    for calendar_id in sorted({*mine, *editable}):
        have, graph = mine.get(calendar_id), editable.get(calendar_id)
        if have is not None and graph is None:
            if calendar_id in listed:
                changes.append(_remove(have, events, model.CALENDAR_NOT_EDITABLE,
                                       "the user no longer has edit rights on it", user))
            else:
                changes.append(_remove(have, events, model.CALENDAR_GONE,
                                       "it no longer exists in the user's mailbox", user))
        elif graph is not None and (have is None or have.is_default != graph.is_default):
            changes.append(_add(user, graph, have))
    return changes


def _add(user: model.EmplyUser, graph: model.EntraCalendar,
         have: model.EmplyCalendar | None) -> model.Change:
    # The user's own choice stands; only the default calendar is always enabled.
    enabled = graph.is_default or (have is not None and have.enabled)
    after = {"userId": user.id, "id": graph.id, "name": graph.name,
             "isDefault": graph.is_default, "enabled": enabled}
    before: dict[str, Any] = {} if have is None else {
        "userId": have.user_id, "id": have.id, "name": have.name,
        "isDefault": have.is_default, "enabled": have.enabled}
    name = graph.name or graph.id
    if graph.is_default:
        reason = model.DEFAULT_CALENDAR
        words = (f"the user's default calendar {name!r} is "
                 f"{'added' if have is None else 'now the default'}: enabled, and it "
                 "cannot be disabled")
    else:
        reason = model.ADDITIONAL_CALENDAR
        words = (f"calendar {name!r}, where the user has editing rights, is added disabled; "
                 "the user can enable it" if have is None else
                 f"calendar {name!r} is no longer the user's default calendar; it stays "
                 f"{'enabled' if enabled else 'disabled'} and can be disabled")
    return model.Change(model.CALENDAR_ADD, "R13", reason, user.id, user.entra_id,
                        before, after, words)


def _remove(calendar: model.EmplyCalendar, events: Mapping[tuple[str, str], int],
            reason: str, why: str, user: model.EmplyUser | None) -> model.Change:
    count = events.get((calendar.user_id, calendar.id), 0)
    before = {"userId": calendar.user_id, "calendarId": calendar.id, "events": count,
              "name": calendar.name, "isDefault": calendar.is_default,
              "enabled": calendar.enabled}
    return model.Change(
        model.CALENDAR_REMOVE, "R13", reason, calendar.user_id,
        user.entra_id if user is not None else None, before, {},
        f"calendar {calendar.name or calendar.id!r} is removed with its {count} mirrored "
        f"event{'s' if count != 1 else ''}: {why}",
    )


def explain(user: model.EmplyUser, emply: model.EmplySnapshot, settings: model.Settings,
            mailboxes: Mapping[str, tuple[model.EntraCalendar, ...] | None] | None
            ) -> tuple[str, str]:
    """R18 for R13: why the user has (or has not) calendars in Emply, and the FAQ key."""
    if not settings.enabled:
        return ("the integration is removed (settings enabled: false): no user is created "
                "or changed, and the synced calendars and their events are removed", "removed")
    why_none = not_synced(user, settings, (), mailboxes)
    if why_none is not None:
        return f"calendars not synced ({why_none[0]}): {why_none[1]}", "calendars"
    mine = sorted((c for c in emply.calendars if c.user_id == user.id),
                  key=lambda c: (not c.is_default, c.name or c.id))
    if not mine:
        return ("calendars synced, none kept yet: the next run adds the calendars the user "
                "can edit", "calendars")
    kept = ", ".join(
        f"{c.name or c.id} ({'default, ' if c.is_default else ''}"
        f"{'enabled' if c.enabled else 'disabled: the user can enable it'})" for c in mine)
    return f"calendars kept in Emply (those the user can edit): {kept}", "calendars"
