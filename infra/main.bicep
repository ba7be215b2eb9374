// emply-entra-sync: everything one deployment needs, in one resource group.
//
//   managed identity ──federated credential──> Entra app registration ──> Graph
//        │
//        └─ runs ─> Flex Consumption function app ─> storage (tables, blobs)
//                                                   └> App Insights (alerts)
//
// No secret, key or connection string is created or stored anywhere: storage
// has shared-key access off, App Insights has local auth off, and the app
// registration has no password or certificate.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(40)
@description('Environment name (azd sets it); part of every resource name.')
param environmentName string

@description('Region for all resources (Flex Consumption must be available there).')
param location string = resourceGroup().location

@description('E-mail address that receives the operational alerts.')
param alertEmail string

@description('Grant Calendars.ReadWrite for calendar sync (settings.calendarSync).')
param enableCalendarSync bool = false

@description('Grant ProfilePhoto.Read.All for photo sync (settings.photoSync).')
param enablePhotoSync bool = false

@description('Grant User.ReadWrite.All for write-back (settings.writeBack.*). Not allowed in hybrid tenants.')
param enableWriteBack bool = false

@description('Microsoft Graph base URL the app calls.')
param graphUrl string = 'https://graph.microsoft.com/v1.0'

@description('Unique name of the Entra app registration (change it to run two environments in one tenant).')
param appRegistrationName string = 'emply-entra-sync-${environmentName}'

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'emply-entra-sync'
}
var namePrefix = 'emplysync-${environmentName}'
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
    displayName: 'Emply Entra sync (${environmentName})'
    managedIdentityPrincipalId: identity.properties.principalId
    enableCalendarSync: enableCalendarSync
    enablePhotoSync: enablePhotoSync
    enableWriteBack: enableWriteBack
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    name: 'func-${namePrefix}-${resourceToken}'
    planName: 'plan-${namePrefix}'
    location: location
    tags: tags
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    graphUrl: graphUrl
    graphClientId: graphApp.outputs.appId
    graphTenantId: tenant().tenantId
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
