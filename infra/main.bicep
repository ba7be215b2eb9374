// emply-entra-sync: everything one deployment needs, in one resource group.
//
//   managed identity ──federated credential──> Entra app registration ──> Graph
//        │
//        └─ runs ─> Flex Consumption function app ─> storage (tables, blobs, queue)
//                                                   └> App Insights (alerts)
//
// No secret, key or connection string is created or stored anywhere: storage
// has shared-key access off, App Insights has local auth off, and the app
// registration has no password or certificate.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(40)
@description('Environment name (azd sets it); part of every resource name. Letters, digits, hyphens (underscores and dots become hyphens); starts and ends with a letter or digit.')
param environmentName string

@description('Region for all resources (Flex Consumption must be available there).')
param location string = resourceGroup().location

@description('E-mail address that receives the operational alerts.')
param alertEmail string

@description('Calendar sync (R13, R15): grants Calendars.ReadWrite, to list the users\' calendars and create Emply\'s outbound events (docs/deploy.md).')
param enableCalendarSync bool = false

@description('Photo sync (R16): grants ProfilePhoto.Read.All (docs/deploy.md).')
param enablePhotoSync bool = false

@description('Write-back (R9): grants User.ReadWrite.All to the app registration (docs/deploy.md).')
param enableWriteBack bool = false

@description('Write-back create (R9): grants User.ReadWrite.All and GroupMember.ReadWrite.All to the app registration (docs/deploy.md).')
param enableWriteBackCreate bool = false

@description('Microsoft Graph base URL the app calls.')
param graphUrl string = 'https://graph.microsoft.com/v1.0'

@description('NCRONTAB schedule of the sync timer (app setting EMPLY_SYNC_SCHEDULE); the FAQ\'s every 30 minutes by default.')
param syncSchedule string = '0 */30 * * * *'

@description('Optional Entra ID authentication for Emply\'s calls: Emply\'s application (client) id. Empty (the default): function keys only (docs/emply-http.md).')
param emplyClientAppId string = ''

@description('With emplyClientAppId: client id of the API app registration Emply requests tokens for.')
param authApiClientId string = ''

@description('With emplyClientAppId: the app role Emply\'s token must carry.')
param emplyAppRole string = 'EmplySync.Call'

@description('Hours without a completed run before the no-successful-run alert fires; above the timer interval.')
@minValue(1)
@maxValue(47)
param noSuccessfulRunHours int = 2

// A parameter's default may use only parameters and functions, not variables
// (BCP072): this spells out envSlug and resourceToken below.
@description('Unique name of the Entra app registration. The default is unique per deployment (subscription, resource group, environment), so two deployments in one tenant never share, and so never take over, one registration.')
param appRegistrationName string = 'emply-entra-sync-${toLower(replace(replace(environmentName, '_', '-'), '.', '-'))}-${toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))}'

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))

// Azure resource names allow letters, digits and hyphens; azd environment names
// may also hold underscores and dots.
var envSlug = toLower(replace(replace(environmentName, '_', '-'), '.', '-'))

var tags = {
  'azd-env-name': environmentName
  application: 'emply-entra-sync'
}
var namePrefix = 'emplysync-${envSlug}'
// A function app name has at most 60 characters: 'func-emplysync-' (15), at
// most 30 of the environment slug, '-' and the 13-character token keep it at 59
// for every allowed environment name; the token keeps it unique.
var functionAppName = 'func-emplysync-${take(envSlug, 30)}-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${namePrefix}'
  location: location
  tags: tags
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${namePrefix}'
    appInsightsName: 'appi-${namePrefix}'
    location: location
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module graphApp 'graph-app.bicep' = {
  name: 'graph-app'
  params: {
    uniqueName: appRegistrationName
    displayName: 'Emply Entra sync (${environmentName}, ${resourceGroup().name})'
    managedIdentityPrincipalId: identity.properties.principalId
    enableCalendarSync: enableCalendarSync
    enablePhotoSync: enablePhotoSync
    enableWriteBack: enableWriteBack
    enableWriteBackCreate: enableWriteBackCreate
    enableNotifications: enableNotifications
  }
}

@description('Graph change notifications: leavers deactivated within about a minute (the timer stays the safety net). Grants Group.Read.All, which Graph requires for the subscription on /groups.')
param enableNotifications bool = true

@description('Where the mailbox pass (R13 calendars, R14 events) runs its shards: queue (the queue trigger, on as many instances as the host scales to) or inline (in the run\'s own instance).')
@allowed([
  'queue'
  'inline'
])
param mailboxShards string = 'queue'

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    name: functionAppName
    planName: 'plan-${namePrefix}'
    location: location
    tags: tags
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    graphUrl: graphUrl
    graphClientId: graphApp.outputs.appId
    graphTenantId: tenant().tenantId
    syncSchedule: syncSchedule
    emplyClientAppId: emplyClientAppId
    authApiClientId: authApiClientId
    emplyAppRole: emplyAppRole
    enableNotifications: enableNotifications
    mailboxShards: mailboxShards
  }
  // The host must be able to reach its storage on first start.
  dependsOn: [
    roles
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
    noSuccessfulRunHours: noSuccessfulRunHours
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    displayName: 'emply-sync (${environmentName})'
  }
}

// azd writes outputs into the environment (.azure/<env>/.env): the CLI and a
// local run against the deployed storage read them from there.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.properties.clientId
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
output GRAPH_APP_CLIENT_ID string = graphApp.outputs.appId
output STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_WORKBOOK_ID string = workbook.outputs.id
