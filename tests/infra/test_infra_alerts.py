"""The log alerts (infra/modules/alerts.bicep): the mailbox-shards-behind alert looks at
what a run with queued shards logs, its threshold is a deployment parameter, and
docs/operations.md says what it means. tests/e2e/test_telemetry_queries.py checks every
name its query uses against real runs."""

from __future__ import annotations

from typing import Any

from tests.infra import bicep, kql

OPERATIONS = (bicep.REPO / "docs" / "operations.md").read_text()


def _rules() -> dict[str, dict[str, Any]]:
    doc = bicep.parse(kql.ALERTS)
    return {str(r["config"]["name"]): r["config"]
            for r in bicep.resources(doc, "Microsoft.Insights/scheduledQueryRules")}


def test_a_dedicated_alert_fires_when_mailbox_shards_fall_behind() -> None:
    rule = _rules()["${namePrefix}-mailbox-shards-behind"]["properties"]
    assert rule["enabled"] is True and rule["autoMitigate"] is True
    assert rule["severity"] == 2 and rule["evaluationFrequency"] == "PT15M"
    # Looks back far enough to see a run that has waited longer than the threshold.
    assert rule["overrideQueryTimeRange"] == "P2D"
    (query,) = [q.text for q in kql.alert_queries() if q.source.endswith("shards-behind")]
    assert 'message == "emply_sync.run"' in query
    assert "arg_max(timestamp, *) by runId" in query  # the run's latest record decides
    assert 'status == "running" and timestamp < ago(60m)' in query
    assert "customDimensions.mailboxShardsQueued" in query
    # Or a run in the last hour skipped buckets an earlier run's shard still held.
    assert 'message == "emply_sync.mailbox_buckets_held"' in query
    assert "timestamp > ago(1h)" in query and "| union heldBy" in query


def test_the_shards_behind_threshold_is_a_deployment_parameter() -> None:
    alerts = bicep.parse(kql.ALERTS)["parameters"]["mailboxShardsBehindMinutes"]
    main = bicep.parse(bicep.INFRA / "main.bicep")
    assert alerts["default"] == main["parameters"]["mailboxShardsBehindMinutes"]["default"] == 60
    # main.bicep hands it to the alerts module.
    text = (bicep.INFRA / "main.bicep").read_text()
    assert "mailboxShardsBehindMinutes: mailboxShardsBehindMinutes" in text


def test_operations_explains_every_alert() -> None:
    for rule in _rules().values():
        title = str(rule["properties"]["displayName"]).removeprefix("emply-sync: ")
        title = title.replace("${noSuccessfulRunHours}", "2")
        assert f'### "{title}"' in OPERATIONS, title
