from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.graph_users import graph_user
from tests.support.simulator import RunningSimulator, running_simulator

ORG_ID = "11111111-0000-0000-0000-000000000001"


def user(n: int, **extra: Any) -> dict[str, Any]:
    return graph_user(n, f"u-{n:04d}", **extra)


def base_tenant(n_users: int = 5) -> dict[str, Any]:
    users = [user(i) for i in range(1, n_users + 1)]
    users[0]["calendars"] = [
        {
            "id": "cal-1",
            "name": "Calendar",
            "isDefaultCalendar": True,
            "canEdit": True,
            "events": [
                {
                    "id": "ev-1",
                    "subject": "1:1",
                    "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2026-12-01T09:30:00", "timeZone": "UTC"},
                    "showAs": "busy",
                    "sensitivity": "normal",
                },
                {
                    "id": "ev-2",
                    "subject": "Later",
                    "start": {"dateTime": "2027-02-01T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2027-02-01T10:00:00", "timeZone": "UTC"},
                },
            ],
        },
        {"id": "cal-2", "name": "Shared", "isDefaultCalendar": False, "canEdit": False,
         "events": []},
    ]
    users[0]["photo"] = {"contentType": "image/jpeg", "base64": "/9j/4AAQSkZJRg=="}
    users[1]["calendars"] = []
    return {
        "organization": {
            "id": ORG_ID,
            "displayName": "Contoso",
            "onPremisesSyncEnabled": False,
            "verifiedDomains": [{"name": "contoso.com", "isDefault": True}],
        },
        "users": users,
        "groups": [
            {"id": "g-employee", "displayName": "Employee",
             "members": ["u-0001", "u-0002", "g-nested"]},
            {"id": "g-nested", "displayName": "Nested", "members": ["u-0003", "g-employee"]},
            {"id": "g-hr", "displayName": "HR", "members": ["u-0004"]},
        ],
    }


def clone(tenant: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(tenant)


@pytest.fixture
def tenant() -> dict[str, Any]:
    return base_tenant()


@pytest.fixture
def sim(tenant: dict[str, Any]) -> Iterator[RunningSimulator]:
    with running_simulator(tenant) as running:
        yield running
