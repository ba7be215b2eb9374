// Flex Consumption plan + the Python function app. The app runs as the
// user-assigned managed identity; it has no connection string, key or secret:
// the host's storage, the deployment container, App Insights ingestion and the
// app's own Table/Blob access all authenticate with that identity, and Graph is
// reached through the app registration's federated credential.

param name string
param planName string
param location string
param tags object

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Client id of that identity (azure-identity reads it from AZURE_CLIENT_ID).')
param identityClientId string

param storageAccountName string
param storageBlobEndpoint string
param storageTableEndpoint string
param storageQueueEndpoint string
param deploymentContainerUrl string

param appInsightsConnectionString string

@description('Microsoft Graph base URL (v1.0).')
param graphUrl string

@description('Application (client) id of the Entra app registration the sync acts as.')
param graphClientId string

@description('Tenant the app registration lives in.')
param graphTenantId string

@description('NCRONTAB schedule of the sync timer; the timer binding reads it as %EMPLY_SYNC_SCHEDULE%.')
param syncSchedule string = '0 */30 * * * *'

@description('Optional Entra ID authentication for Emply (App Service authentication). Empty: off, function keys only. Set to Emply\'s application (client) id: every route but /api/health requires an Entra token issued to that app, for the API registration below.')
param emplyClientAppId string = ''

@description('With emplyClientAppId: the client id of the API app registration Emply requests tokens for (the token audience).')
param authApiClientId string = ''

@description('With emplyClientAppId: the app role Emply\'s token must carry (its roles claim); the app refuses a token without it (403).')
param emplyAppRole string = 'EmplySync.Call'

var entraAuth = !empty(emplyClientAppId)

@description('Graph change notifications (issue 16): Graph calls the app when users or groups change, and a leaver is deactivated within about a minute; the 30-minute timer stays the safety net. false: the timer alone.')
param enableNotifications bool = true

@description('At most one notification-triggered run per this many seconds.')
@minValue(0)
@maxValue(3600)
param notificationDebounceSeconds int = 60

@description('Where the mailbox pass (R13 calendars, R14 events) runs its shards: queue (one message per shard on emply-sync-mailboxes, worked by as many instances as the host scales to) or inline (in the run\'s own instance).')
@allowed([
  'queue'
  'inline'
])
param mailboxShards string = 'queue'

@description('Graph $batch requests the mailbox pass keeps in flight at most (per instance); Outlook\'s 4 requests per mailbox hold whatever this is, and Graph\'s 429s lower it.')
@minValue(1)
@maxValue(256)
param mailboxBatches int = 16

@description('About how many synced mailboxes one shard of the mailbox pass holds.')
@minValue(1)
@maxValue(5000)
param mailboxShardSize int = 250

@description('With notifications on, every synced mailbox is still read at least once in this many hours (the sweep); 0: every run reads every mailbox.')
@minValue(0)
@maxValue(168)
param mailboxSweepHours int = 24

@description('A notification whose delta round shows nothing new (Graph\'s delta can lag its notification) is looked at again after this many seconds, doubled each time; 0: never.')
@minValue(0)
@maxValue(600)
param notificationRecheckSeconds int = 15

@description('At most this many looks again per notification whose delta showed nothing.')
@minValue(0)
@maxValue(10)
param notificationRechecks int = 3

@description('The app\'s public base URL Graph calls back. Empty: https://<app name>.azurewebsites.net (set it when the app has another host name).')
param publicUrl string = ''

@description('The host function key Graph puts in the notification URL (key graph-notifications). Generated anew on every deployment by default; the timer then replaces the subscriptions, whose URL carries the old key.')
// checkov:skip=CKV_AZURE_131:The default is newGuid(), a fresh random key per deployment, not a value in source
@secure()
param notificationKey string = newGuid()

@description('Upper bound of Flex Consumption instances (the sync itself holds a single-run lease).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  // checkov:skip=CKV_AZURE_225:A batch sync guarded by a single-run lease; a missed run is retried by the next timer tick, and zone-redundant Flex plans need always-ready instances (standing cost) and a supporting region
  properties: {
    reserved: true
  }
}

// App settings: exactly shared.config.APP_SETTINGS plus what the Functions host
// needs for identity-based storage (AzureWebJobsStorage__*) and Entra-
// authenticated telemetry (APPLICATIONINSIGHTS_AUTHENTICATION_STRING). Flex
// Consumption rejects FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION:
// the runtime comes from functionAppConfig.runtime. tests/infra/test_settings.py
// compares this list with the code.
resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'sync' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  // checkov:skip=CKV_AZURE_222:Emply calls /api/sync over the internet, so the app needs a public endpoint; the HTTP functions require a function key
  // checkov:skip=CKV_AZURE_17:Emply authenticates with a function key and cannot present a client certificate
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero on demand; there is no fixed instance count to keep for failover
  // checkov:skip=CKV_AZURE_213:A platform health-check probe would keep a Flex Consumption instance running between runs; liveness is watched by the no-successful-run alert
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'EMPLY_SYNC_TABLE_ENDPOINT'
          value: storageTableEndpoint
        }
        {
          name: 'EMPLY_SYNC_BLOB_ENDPOINT'
          value: storageBlobEndpoint
        }
        {
          name: 'EMPLY_SYNC_GRAPH_URL'
          value: graphUrl
        }
        {
          name: 'EMPLY_SYNC_GRAPH_CLIENT_ID'
          value: graphClientId
        }
        {
          name: 'EMPLY_SYNC_GRAPH_TENANT_ID'
          value: graphTenantId
        }
        {
          // The host resolves the timer's %EMPLY_SYNC_SCHEDULE% from this; without
          // it the timer function fails to load.
          name: 'EMPLY_SYNC_SCHEDULE'
          value: syncSchedule
        }
        {
          // The run-request queue's identity-based connection (the queue trigger's
          // connection EMPLY_SYNC_QUEUE; the app sends with the same settings).
          name: 'EMPLY_SYNC_QUEUE__queueServiceUri'
          value: storageQueueEndpoint
        }
        {
          name: 'EMPLY_SYNC_QUEUE__credential'
          value: 'managedidentity'
        }
        {
          name: 'EMPLY_SYNC_QUEUE__clientId'
          value: identityClientId
        }
        {
          // Empty when Entra authentication is off; the app checks the role when set.
          name: 'EMPLY_SYNC_REQUIRED_ROLE'
          value: entraAuth ? emplyAppRole : ''
        }
        {
          // Graph change notifications: on/off, where Graph calls, with which key.
          name: 'EMPLY_SYNC_NOTIFICATIONS'
          value: string(enableNotifications)
        }
        {
          name: 'EMPLY_SYNC_PUBLIC_URL'
          value: empty(publicUrl) ? 'https://${name}.azurewebsites.net' : publicUrl
        }
        {
          name: 'EMPLY_SYNC_NOTIFICATION_KEY'
          value: notificationKey
        }
        {
          name: 'EMPLY_SYNC_NOTIFICATION_DEBOUNCE_SECONDS'
          value: string(notificationDebounceSeconds)
        }
        {
          // The mailbox pass: where its shards run, batches in flight, shard size, sweep.
          name: 'EMPLY_SYNC_MAILBOX_SHARDS'
          value: mailboxShards
        }
        {
          name: 'EMPLY_SYNC_MAILBOX_BATCHES'
          value: string(mailboxBatches)
        }
        {
          name: 'EMPLY_SYNC_MAILBOX_SHARD_SIZE'
          value: string(mailboxShardSize)
        }
        {
          name: 'EMPLY_SYNC_MAILBOX_SWEEP_HOURS'
          value: string(mailboxSweepHours)
        }
        {
          name: 'EMPLY_SYNC_NOTIFICATION_RECHECK_SECONDS'
          value: string(notificationRecheckSeconds)
        }
        {
          name: 'EMPLY_SYNC_NOTIFICATION_RECHECKS'
          value: string(notificationRechecks)
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Optional Entra ID authentication (App Service authentication, "Easy Auth"):
// only tokens for the API registration, issued to Emply's app, get through;
// /api/health stays open for probes (it says up or down, nothing more). The
// app role is checked by the app (EMPLY_SYNC_REQUIRED_ROLE): Easy Auth has no
// role rule of its own.
resource entraAuthSettings 'Microsoft.Web/sites/config@2024-04-01' = if (entraAuth) {
  // checkov:skip=CKV_AZURE_66:checkov reads this authsettingsV2 child as a whole web app; the site settings are checked on functionApp above
  // checkov:skip=CKV_AZURE_63:checkov reads this authsettingsV2 child as a whole web app; the site settings are checked on functionApp above
  // checkov:skip=CKV_AZURE_222:checkov reads this authsettingsV2 child as a whole web app; the site settings are checked on functionApp above
  // checkov:skip=CKV_AZURE_80:checkov reads this authsettingsV2 child as a whole web app; the site settings are checked on functionApp above
  // checkov:skip=CKV_AZURE_13:checkov reads this authsettingsV2 child as a whole web app; the site settings are checked on functionApp above
  // checkov:skip=CKV_AZURE_88:checkov reads this authsettingsV2 child as a whole web app; the site settings are checked on functionApp above
  // checkov:skip=CKV_AZURE_65:checkov reads this authsettingsV2 child as a whole web app; the site settings are checked on functionApp above
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/health'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authApiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            authApiClientId
            'api://${authApiClientId}'
          ]
          defaultAuthorizationPolicy: {
            allowedApplications: [
              emplyClientAppId
            ]
          }
        }
      }
    }
  }
}

// No FTP or SCM basic-auth publishing: azd deploys with Entra credentials.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// The named function key Graph's notification URL carries (the host checks it before
// the notification route runs); the same value is the app setting above.
resource notificationFunctionKey 'Microsoft.Web/sites/host/functionKeys@2024-04-01' = {
  name: '${functionApp.name}/default/graph-notifications'
  properties: {
    name: 'graph-notifications'
    value: notificationKey
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
