"""The pure parts of Graph change notifications: item checks (a table of cases), body
parsing and the settings, each bad input named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import config
from shared.notify import inbox
from shared.notify import settings as notify_settings
from shared.store.protocols import SubscriptionRecord

SUB_ID = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
SECRET = "s" * 43
KNOWN = {"users": SubscriptionRecord("users", SUB_ID, SECRET, "2026-12-30T00:00:00Z",
                                     "d", "2026-12-01T00:00:00Z")}


def item(**changes: Any) -> dict[str, Any]:
    base = {"subscriptionId": SUB_ID, "clientState": SECRET, "changeType": "updated",
            "resource": "Users/1", "tenantId": "t",
            "resourceData": {"@odata.type": "#Microsoft.Graph.User", "id": "1"}}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("case", "raw", "accepted", "dropped"),
    [
        ("a change", item(), 1, {}),
        ("a deletion", item(changeType="deleted"), 1, {}),
        ("a lifecycle event", item(changeType=None, resource=None,
                                   lifecycleEvent="missed"), 1, {}),
        ("wrong clientState", item(clientState="t" * 43), 0,
         {"client_state_mismatch": 1}),
        ("clientState a prefix", item(clientState=SECRET[:-1]), 0,
         {"client_state_mismatch": 1}),
        ("unknown subscription", item(subscriptionId="other"), 0,
         {"unknown_subscription": 1}),
        ("no clientState", item(clientState=None), 0, {"malformed_notification": 1}),
        ("clientState not a string", item(clientState=5), 0, {"malformed_notification": 1}),
        ("unknown changeType", item(changeType="moved"), 0, {"malformed_notification": 1}),
        ("unknown lifecycle event", item(lifecycleEvent="gone"), 0,
         {"malformed_notification": 1}),
        ("no resource", item(resource=None), 0, {"malformed_notification": 1}),
        ("not an object", [1], 0, {"malformed_notification": 1}),
    ],
)
def test_items_are_checked_one_by_one(case: str, raw: Any, accepted: int,
                                      dropped: dict[str, int]) -> None:
    ok, refused = inbox.check_items([raw], KNOWN)
    assert (len(ok), refused) == (accepted, dropped), case
    if ok:
        assert ok[0][0] == "users"


def test_a_mixed_body_keeps_the_good_items_and_counts_the_rest() -> None:
    ok, refused = inbox.check_items(
        [item(), item(clientState="x"), item(subscriptionId="y"), "z", item()], KNOWN)
    assert len(ok) == 2
    assert refused == {"client_state_mismatch": 1, "unknown_subscription": 1,
                       "malformed_notification": 1}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "body"), (b"{", "body"), (b"[]", "value"), (b'{"value": 1}', "value"),
        (b'{"value": []}', "value"), (b"[" * 100_000, "body"),
        (json.dumps({"value": [{}] * (inbox.MAX_ITEMS + 1)}).encode(), "value"),
    ],
)
def test_a_body_that_is_no_notification_collection_is_named(raw: bytes, field: str) -> None:
    with pytest.raises(inbox.BadNotification) as caught:
        inbox.parse_body(raw)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({config.NOTIFICATIONS: "maybe"}, config.NOTIFICATIONS),
        ({config.NOTIFICATION_DEBOUNCE: "-1"}, config.NOTIFICATION_DEBOUNCE),
        ({config.NOTIFICATION_DEBOUNCE: "3601"}, config.NOTIFICATION_DEBOUNCE),
        ({config.PUBLIC_URL: "http://example.com"}, config.PUBLIC_URL),
        ({config.PUBLIC_URL: "ftp://example.com"}, config.PUBLIC_URL),
        ({config.NOTIFICATION_RECHECK: "601"}, config.NOTIFICATION_RECHECK),
        ({config.NOTIFICATION_RECHECK: "1.5"}, config.NOTIFICATION_RECHECK),
        ({config.NOTIFICATION_RECHECKS: "11"}, config.NOTIFICATION_RECHECKS),
        ({config.NOTIFICATION_RECHECKS: "-1"}, config.NOTIFICATION_RECHECKS),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        notify_settings.read(env)


def test_settings_default_off_and_build_the_url_with_the_key() -> None:
    off = notify_settings.read({})
    assert (off.enabled, off.debounce_seconds) == (False, 60)
    on = notify_settings.read({config.NOTIFICATIONS: "true",
                               config.PUBLIC_URL: "https://app.example.net/",
                               config.NOTIFICATION_KEY: "k/+="})
    assert on.notification_url == \
        "https://app.example.net/api/graph/notifications?code=k%2F%2B%3D"
    assert "k/+=" not in on.url_digest and len(on.url_digest) == 32
    with pytest.raises(ValueError, match=config.NOTIFICATION_KEY):
        _ = notify_settings.read({config.NOTIFICATIONS: "true"}).notification_url


def test_a_notification_delta_showed_nothing_for_is_looked_at_again_a_bounded_number_of_times(
) -> None:
    default = notify_settings.read({})
    assert [default.recheck_delay(n) for n in range(4)] == [15, 30, 60, None]
    tuned = notify_settings.read({config.NOTIFICATION_RECHECK: "5",
                                  config.NOTIFICATION_RECHECKS: "2"})
    assert [tuned.recheck_delay(n) for n in range(3)] == [5, 10, None]
    never = notify_settings.read({config.NOTIFICATION_RECHECK: "0"})
    assert never.recheck_delay(0) is None


@pytest.mark.parametrize("message", [
    b'{"kind": "run", "rechecks": -1}', b'{"kind": "run", "rechecks": "2"}',
    b'{"kind": "run", "rechecks": true}'])
def test_a_message_with_a_bad_recheck_count_is_refused(message: bytes) -> None:
    with pytest.raises(ValueError, match="rechecks"):
        inbox.parse_message(message)
