// Three log alerts on the run records the app writes to Application Insights
// (message "emply_sync.run", customDimensions runId/trigger/status/dryRun/...),
// all to one action group that e-mails the operator. docs/operations.md says
// what each one means and what to do.

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
// counts as completed here; it has its own alert below.
resource noSuccessfulRun 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-no-successful-run'
  location: location
  tags: tags
  properties: {
    displayName: 'emply-sync: no successful run in 2 hours'
    description: 'No sync run completed (status succeeded or needs_approval, dry runs excluded) in the last 2 hours. See docs/operations.md.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT2H'
    criteria: {
      allOf: [
        {
          query: '${runs}| where not(dryRun) and status in ("succeeded", "needs_approval")\n'
          timeAggregation: 'Count'
          operator: 'LessThan'
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

resource failedRun 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-failed-run'
  location: location
  tags: tags
  properties: {
    displayName: 'emply-sync: a run failed'
    description: 'At least one sync run ended with status failed. Nothing of a failed run is applied past the failure; see the run report and emply_sync.error records. See docs/operations.md.'
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
          query: '${runs}| where status == "failed"\n'
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

resource needsApproval 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
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

output actionGroupId string = actionGroup.id
