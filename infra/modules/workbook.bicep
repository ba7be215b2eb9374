// The operators' Azure Monitor workbook: runs over time by status, changes by
// kind, deactivations by reason, held approvals, Graph throttling and errors,
// over the records the app writes to Application Insights. The workbook itself
// is infra/workbooks/emply-sync.workbook.json (edit it in the portal's Advanced
// Editor and paste it back); tests/e2e/test_telemetry_queries.py checks its
// queries against the telemetry a real run emits.

param location string
param tags object

@description('Application Insights resource the workbook opens on and queries.')
param appInsightsId string

@description('Display name in the portal (Monitor > Workbooks, or the Application Insights resource\'s Workbooks).')
param displayName string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per App Insights
  // resource, so redeploying updates the same workbook.
  name: guid(appInsightsId, 'emply-sync-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: replace(loadTextContent('../workbooks/emply-sync.workbook.json'), '__APP_INSIGHTS_ID__', appInsightsId)
    // The workbook schema of serializedData.
    version: 'Notebook/1.0'
  }
}

output id string = workbook.id
