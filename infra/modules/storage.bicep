// The one storage account: the app's Emply state (tables + blobs), the
// Functions host's own storage (identity-based AzureWebJobsStorage) and the
// Flex Consumption deployment container. Shared keys are off: every client,
// the host included, authenticates with the managed identity.

@description('Storage account name (3-24 lower-case letters and digits).')
param name string

param location string
param tags object

@description('Replication. Geo-redundant by default: the tables hold the only copy of the Emply state.')
@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Tables the app uses: Emply side, run index, single-run lease, change feed (GET /api/changes), the mailbox pass\'s own state.')
param tableNames array = [
  'emply'
  'runs'
  'synclease'
  'changefeed'
  'mailboxes'
]

@description('Blob containers the app uses: delta links + Entra mirror + previous role mapping, run reports, photos.')
param containerNames array = [
  'syncstate'
  'runreports'
  'photos'
]

@description('Queues the app uses: manual run requests (POST /api/sync), Graph notification work, the mailbox pass\'s shards, and for each the messages the Functions host gave up on.')
param queueNames array = [
  'emply-sync-runs'
  'emply-sync-runs-poison'
  'emply-sync-notify'
  'emply-sync-notify-poison'
  'emply-sync-mailboxes'
  'emply-sync-mailboxes-poison'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  // checkov:skip=CKV_AZURE_59:Flex Consumption without VNet integration reaches its host and deployment storage over the public endpoint; access is identity-only (shared keys off, OAuth default, TLS 1.2)
  // checkov:skip=CKV_AZURE_35:Same reason: a default-deny network rule needs VNet integration plus private endpoints, which this template does not deploy
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in concat(containerNames, [deploymentContainerName]): {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output tableEndpoint string = storage.properties.primaryEndpoints.table
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
