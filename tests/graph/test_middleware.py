"""The retry bounds and counters added to msgraph-core's pipeline (pure parts)."""

from __future__ import annotations

import httpx
import pytest
from kiota_http.middleware.options import RetryHandlerOption

from shared.graph import middleware, mirror, reader


def answer(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    request = httpx.Request("GET", "https://graph.microsoft.com/v1.0/users/delta")
    return httpx.Response(status, headers=headers, request=request)


def test_retry_after_is_waited_exactly() -> None:
    handler = middleware.BoundedRetryHandler(middleware.GRAPH_RETRY_POLICY)
    assert handler.get_delay_time(0, answer(429, "7")) == 7.0


def test_backoff_without_retry_after() -> None:
    policy = middleware.RetryPolicy(backoff_factor=0.5, max_jitter=0.0)
    handler = middleware.BoundedRetryHandler(policy)
    assert [handler.get_delay_time(n, answer(503)) for n in range(3)] == [0.5, 1.0, 2.0]


def test_total_delay_budget_stops_retrying() -> None:
    policy = middleware.RetryPolicy(max_total_delay=10.0)
    handler = middleware.BoundedRetryHandler(policy)
    response = answer(429, "6")
    assert handler.get_delay_time(0, response) == 6.0
    # 6 + 6 > 10: the SDK handler does not retry at MAX_DELAY.
    assert handler.get_delay_time(1, response) == RetryHandlerOption.MAX_DELAY


def test_policy_bounds() -> None:
    with pytest.raises(ValueError):
        middleware.RetryPolicy(max_retries=11)


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("http://127.0.0.1:1/v1.0/users/delta?$select=id", "/users/delta"),
        ("https://graph.microsoft.com/v1.0/organization", "/organization"),
        (
            "https://graph.microsoft.com/v1.0/users/8f3c0b6e-1111-4222-8333-944445555666/calendars",
            "/users/{id}/calendars",
        ),
        (
            "https://graph.microsoft.com/v1.0/users/megan@contoso.com/photo/$value",
            "/users/{id}/photo/$value",
        ),
    ],
)
def test_endpoint_template(url: str, template: str) -> None:
    assert middleware.endpoint_template(url, "/v1.0") == template


def test_group_split_over_pages_and_removed_then_back() -> None:
    groups = mirror.Groups({}, owned=True)
    groups.apply(
        [
            {
                "id": "g1",
                "displayName": "One",
                "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u1"}],
            },
            {"id": "g2", "displayName": "Two", "members@delta": []},
        ]
    )
    groups.apply(
        [
            {
                "id": "g1",
                "members@delta": [
                    {"@odata.type": "#microsoft.graph.group", "id": "g2"},
                    {"@odata.type": "#microsoft.graph.device", "id": "d1"},
                ],
            },
            {"id": "g2", "@removed": {"reason": "deleted"}},
            {"id": "g2", "displayName": "Two again", "members@delta": [{"id": "u9"}]},
        ]
    )
    assert groups.result({}) == {
        "g1": {"id": "g1", "displayName": "One", "members": ["u1", "g2"]},
        "g2": {"id": "g2", "displayName": "Two again", "members": ["u9"]},
    }


def test_users_copy_on_write() -> None:
    def values(**fields: object) -> list[object]:
        return [fields.get(f) for f in reader.USER_FIELDS]

    enabled = reader.USER_FIELD_INDEX["accountEnabled"]
    alice = values(id="a", displayName="Alice", accountEnabled=True)
    bob = values(id="b", displayName="Bob", accountEnabled=True)
    base = {"a": alice, "b": bob}
    users = mirror.Users(base, owned=False)
    users.apply([{"id": "a", "displayName": "Alice"}])  # no actual change
    assert users.users is base
    users.apply([{"id": "a", "accountEnabled": False}, {"id": "b", "@removed": {}}])
    assert users.users is not base
    assert base == {"a": alice, "b": bob} and alice[enabled] is True
    assert users.users == {"a": values(id="a", displayName="Alice", accountEnabled=False)}
