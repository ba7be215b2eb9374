"""Checks of outbound events (R15) across their fields, on top of each field's own.

An outbound event ends after it starts. Its start and end are instants (a zone
is required by the schema), so they compare as such whatever their offsets. Its
attendees are e-mail addresses, each once (ignoring case, as Outlook does), at most
`MAX_ATTENDEES` of them (Outlook's limit of recipients of one message, which the
invitation is).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from shared.emply import checks as emply_checks

MAX_ATTENDEES = 500


def check_outbound(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(path, problem) for each outbound event whose end is not after its start, and
    each attendee that is not an address or is there twice."""
    problems = []
    for i, event in enumerate(events):
        where = emply_checks.label("outboundEvents", i, event)
        problems += _attendees(where, event.get("attendees") or [])
        try:
            start = dt.datetime.fromisoformat(str(event["start"]).upper())
            end = dt.datetime.fromisoformat(str(event["end"]).upper())
            ordered = end > start
        except (KeyError, TypeError, ValueError):
            continue  # the field checks have said so
        if not ordered:
            problems.append((f"{where}.end",
                             f"must be after start ({event['start']}), got {event['end']}"))
    return problems


def _attendees(where: str, attendees: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    if len(attendees) > MAX_ATTENDEES:
        return [(f"{where}.attendees", f"at most {MAX_ATTENDEES} attendees, got "
                                       f"{len(attendees)}")]
    problems = []
    seen: dict[str, int] = {}
    for j, attendee in enumerate(attendees):
        email = str(attendee.get("email", ""))
        path = f"{where}.attendees[{j}].email"
        if not emply_checks.is_email(email):
            problems.append((path, "expected an e-mail address like name@example.com, got "
                                   f"{emply_checks.show(email)}"))
        elif (key := emply_checks.same(email)) in seen:
            problems.append((path, f"{emply_checks.show(email)} is also attendees[{seen[key]}] "
                                   "(compared ignoring case and surrounding spaces)"))
        else:
            seen[key] = j
    return problems
