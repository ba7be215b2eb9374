// Log alerts on the run records the app writes to Application Insights
// (message "emply_sync.run", customDimensions runId/trigger/status/dryRun/...),
// all to one action group that e-mails the operator. docs/operations.md says
// what each one means and what to do.
//
// None of them fires before the first import: until the Emply side (with its
// settings) is imported, every run fails with reason not_configured, which the
// alerts count as a deployment waiting for its configuration, not as a failure.
// tests/e2e/test_telemetry_queries.py checks every name these queries use
// against the telemetry a real run emits.

param namePrefix string
param location string
param tags object

@description('Application Insights resource the queries run against (table traces).')
param appInsightsId string

@description('Where alerts are e-mailed.')
param alertEmail string

@description('Short name shown in alert e-mails and SMS (max 12 characters).')
@maxLength(12)
param actionGroupShortName string = 'emplysync'

@description('Hours without a completed run before the no-successful-run alert fires (the timer runs every 30 minutes by default).')
@minValue(1)
@maxValue(47)
param noSuccessfulRunHours int = 2

@description('Minutes a run may wait for its queued mailbox shards before the mailbox-shards-behind alert fires (two timer intervals by default).')
@minValue(15)
@maxValue(1440)
param mailboxShardsBehindMinutes int = 60

// Runs are logged twice when the Functions host also forwards the worker's
// log records; only the OpenTelemetry copy carries customDimensions.runId, and
// one run is counted once whatever happens.
var runs = '''
traces
| where message == "emply_sync.run"
| extend runId = tostring(customDimensions.runId),
         status = tostring(customDimensions.status),
         dryRun = tolower(tostring(customDimensions.dryRun)) == "true"
| where isnotempty(runId)
| summarize arg_max(timestamp, *) by runId
'''

// Runs that failed because nothing was imported yet (reason not_configured).
var notConfigured = '''
let notConfigured = traces
| where message == "emply_sync.error"
| where tostring(customDimensions.reason) == "not_configured"
| extend runId = tostring(customDimensions.runId)
| distinct runId
| extend waitingForImport = true;
'''

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-ops'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: actionGroupShortName
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// The timer fires every 30 minutes: four chances in two hours. A run that
// held deactivations (needs_approval) still applied everything else, so it
// counts as completed here; it has its own alert below. A run that failed with
// not_configured counts too: the app runs, it waits for its first import.
// The query looks back two days (overrideQueryTimeRange) and fires only when a
// run was recorded in that time: a deployment whose timer has not run yet, or
// that has run only while waiting for its import, stays quiet. The price: after
// two days without any run record the alert resolves itself (docs/operations.md).
resource noSuccessfulRun 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-no-successful-run'
  location: location
  tags: tags
  properties: {
    displayName: 'emply-sync: no successful run in ${noSuccessfulRunHours} hours'
    description: 'Runs were recorded in the last two days, but none completed (status succeeded, needs_approval or disabled, dry runs excluded; runs waiting for the first import count as fine) in the last ${noSuccessfulRunHours} hours. See docs/operations.md.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT2H'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: '${notConfigured}${runs}| join kind=leftouter notConfigured on runId\n| extend healthy = (not(dryRun) and status in ("succeeded", "needs_approval", "disabled")) or isnotnull(waitingForImport)\n| summarize lastRun = max(timestamp), lastHealthy = maxif(timestamp, healthy)\n| where isnotnull(lastRun) and (isnull(lastHealthy) or lastHealthy < ago(${noSuccessfulRunHours}h))\n'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource failedRun 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failed-run'
  location: location
  tags: tags
  properties: {
    displayName: 'emply-sync: a run failed'
    description: 'At least one sync run ended with status failed (runs that failed only because nothing was imported yet, reason not_configured, excluded). Nothing of a failed run is applied past the failure; see the run report and emply_sync.error records. See docs/operations.md.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: '${notConfigured}${runs}| where status == "failed"\n| join kind=leftanti notConfigured on runId\n'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource needsApproval 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-needs-approval'
  location: location
  tags: tags
  properties: {
    displayName: 'emply-sync: deactivations held, approval needed'
    description: 'A run would have deactivated more users than the deactivation guard allows; those deactivations are held until approved with the exact held count. See docs/operations.md.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: '${runs}| where not(dryRun) and status == "needs_approval"\n'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Graph change notifications (issue 16): the timer renews the subscriptions on
// /users and /groups a week before they expire and logs
// emply_sync.subscription_failed when it (or a lifecycle action) cannot. Two
// failures within an hour (two timer ticks) fire this: notifications stop when the
// subscriptions expire, and leavers then wait for the timer. A notifications-off
// deployment logs none of these.
var subscriptionFailures = '''
traces
| where message == "emply_sync.subscription_failed"
| extend action = tostring(customDimensions.action),
         resource = tostring(customDimensions.resource),
         reason = tostring(customDimensions.reason)
'''

resource subscriptionRenewalFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-subscription-failed'
  location: location
  tags: tags
  properties: {
    displayName: 'emply-sync: Graph subscription renewal failed'
    description: 'Creating or renewing the Graph change-notification subscriptions failed at least twice within an hour. Leavers are still deactivated by the timer (every 30 minutes), not within a minute. See docs/operations.md (Graph change notifications).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT30M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: '${subscriptionFailures}'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Mailbox shards on the queue (issue 26): a run that queued shards logs its
// emply_sync.run record with status "running" and mailboxShardsQueued when its own part
// ends, and again with its final status when its last shard ends. Shards fall behind
// the schedule when a run still waits on them after mailboxShardsBehindMinutes, or
// when a run in the last hour skipped buckets an earlier run's shard still held
// (emply_sync.mailbox_buckets_held, logged even when it queued no shard at all): those
// mailboxes wait for a later run. Inline mailbox passes log neither.
var shardRuns = '''
traces
| where message == "emply_sync.run"
| extend runId = tostring(customDimensions.runId),
         status = tostring(customDimensions.status),
         shardsQueued = toint(customDimensions.mailboxShardsQueued)
| where isnotempty(runId) and shardsQueued > 0
| summarize arg_max(timestamp, *) by runId
'''

var bucketsHeld = '''
let heldBy = traces
| where message == "emply_sync.mailbox_buckets_held"
| where timestamp > ago(1h)
| extend runId = tostring(customDimensions.runId)
| where isnotempty(runId) and toint(customDimensions.buckets) > 0
| distinct runId;
'''

resource mailboxShardsBehind 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-mailbox-shards-behind'
  location: location
  tags: tags
  properties: {
    displayName: 'emply-sync: mailbox shards behind the schedule'
    description: 'A run has waited more than ${mailboxShardsBehindMinutes} minutes for its queued mailbox shards, or a run skipped mailboxes whose previous shard was still at work. Calendars and events in Emply lag behind Outlook. See docs/operations.md (Mailbox shards).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: '${bucketsHeld}${shardRuns}| where status == "running" and timestamp < ago(${mailboxShardsBehindMinutes}m)\n| project runId\n| union heldBy\n'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
