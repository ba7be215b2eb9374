"""The subscription alert and the documented notification queries read only what real
subscriptions and notifications emit (the pattern of test_telemetry_queries.py):
subscriptions created against the simulator, a renewal that fails, forged and replayed
notifications, through the same exporter conversion Application Insights receives."""

from __future__ import annotations

import json
from typing import Any

from shared.graph import subscriptions as graph_subs
from shared.notify import renewal
from tests.e2e.test_notifications import (
    change_body,
    post_notification,
    server,  # noqa: F401 (a fixture)
    staffed,
)
from tests.e2e.test_telemetry_queries import NOTIFICATION_MESSAGES, emitted, exported, problems
from tests.infra import kql
from tests.support.notify_server import NotifyServer


async def test_notification_queries_read_only_what_the_code_emits(
        make_world: Any, server: NotifyServer) -> None:  # noqa: F811
    world = staffed(make_world)
    with exported() as traces:
        assert await renewal.keep() == {"users": "created", "groups": "created"}
        body = change_body(world)
        assert (await post_notification(body)).status_code == 202
        forged = change_body(world, client_state="y" * 43)
        assert (await post_notification(forged)).status_code == 202
        assert (await post_notification({"value": [{"changeType": "updated"}]})
                ).status_code == 202
        secrets = [s["clientState"] for s in world.sim.simulator.subscriptions.values()]
        for sub_id in list(world.sim.simulator.subscriptions):
            world.sim.graph("DELETE", f"/subscriptions/{sub_id}")
        world.sim.set_faults("/subscriptions", 403, method="POST", times=-1)
        # Expiring soon by the injected clock: renewal 404 → create again → 403.
        soon = graph_subs.parse_time(body["value"][0]["subscriptionExpirationDateTime"])
        outcome = await renewal.keep(now=soon)
        assert outcome == {"users": "failed:graph_read_failed",
                           "groups": "failed:graph_read_failed"}
    records = emitted(traces)
    assert set(records) >= NOTIFICATION_MESSAGES
    dropped = {d["reason"] for d in records["emply_sync.notification_dropped"]}
    assert dropped == {"client_state_mismatch", "malformed_notification"}
    queries = [q for q in kql.all_queries() if q.messages & NOTIFICATION_MESSAGES]
    assert {q.source for q in queries if q.source.startswith("alerts.bicep")} == {
        "alerts.bicep:${namePrefix}-subscription-failed"}
    assert len(queries) >= 3
    failures = [f"{q.source}: {p}" for q in queries for p in problems(q, records)]
    assert not failures, "queries name telemetry the code does not emit:\n" + "\n".join(failures)
    # Never a clientState or a payload in what goes to Application Insights.
    assert len(secrets) == 2
    text = json.dumps([t.custom_dimensions for t in traces])
    assert not any(secret in text for secret in secrets)
