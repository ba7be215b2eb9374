"""Entra users as a tenant file holds them (Graph's property names), for tests."""

from __future__ import annotations

from typing import Any


def graph_user(n: int, user_id: str, **extra: Any) -> dict[str, Any]:
    """User number `n` with every property the sync selects; `extra` overrides."""
    props: dict[str, Any] = {
        "id": user_id,
        "userPrincipalName": f"user{n}@contoso.com",
        "mail": f"User{n}@contoso.com",
        "displayName": f"User {n}",
        "givenName": "User",
        "surname": str(n),
        "accountEnabled": True,
        "onPremisesSyncEnabled": None,
        "jobTitle": None,
        "department": None,
        "mobilePhone": None,
    }
    props.update(extra)
    return props
