"""Checks of outbound events (R15) across their fields, on top of each field's own.

An outbound event ends after it starts. Its start and end are instants (a zone
is required by the schema), so they compare as such whatever their offsets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from shared.emply import checks as emply_checks


def check_outbound(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(path, problem) for each outbound event whose end is not after its start."""
    problems = []
    for i, event in enumerate(events):
        try:
            start = dt.datetime.fromisoformat(str(event["start"]).upper())
            end = dt.datetime.fromisoformat(str(event["end"]).upper())
            ordered = end > start
        except (KeyError, TypeError, ValueError):
            continue  # the field checks have said so
        if not ordered:
            problems.append((f"{emply_checks.label('outboundEvents', i, event)}.end",
                             f"must be after start ({event['start']}), got {event['end']}"))
    return problems
