// The Entra app registration the sync acts as towards Microsoft Graph, through
// the Microsoft Graph Bicep extension. The only file that uses the extension
// (checkov's Bicep parser cannot read it; tests/infra parses it with
// pycep-parser instead).
//
// No secret and no certificate: the only credential is a federated identity
// credential that trusts the function app's user-assigned managed identity.
// At run time the app asks the managed identity for a token for
// api://AzureADTokenExchange and presents it as the client assertion.
//
// Graph application permissions are granted here (appRoleAssignedTo on the
// Microsoft Graph service principal): exactly what the code of this version
// uses. A grant is never revoked by this template: a role granted by an earlier
// deployment stays until it is removed by hand (docs/deploy.md says how).
extension microsoftGraphV1

@description('Stable unique name of the application object (idempotent redeployments).')
param uniqueName string

@description('Display name shown in Entra.')
param displayName string

@description('Object (principal) id of the user-assigned managed identity the function app runs as.')
param managedIdentityPrincipalId string

@description('Calendar sync (R13, R15): grants Calendars.ReadWrite, to list the users\' calendars (with canEdit) and create Emply\'s outbound events in their default calendars.')
param enableCalendarSync bool = false

@description('Photo sync (R16): grants ProfilePhoto.Read.All, to read the users\' profile photos.')
param enablePhotoSync bool = false

@description('Write-back (R9, writeBack.update and writeBack.delete): grants User.ReadWrite.All; off, the app only reads.')
param enableWriteBack bool = false

@description('Write-back create (R9, writeBack.create): grants User.ReadWrite.All and GroupMember.ReadWrite.All (to add a new user to the first configured group); implies enableWriteBack\'s grant.')
param enableWriteBackCreate bool = false

@description('Graph change notifications: grants Group.Read.All, which Graph requires to create the subscription on /groups (GroupMember.Read.All is not enough).')
param enableNotifications bool = true

var microsoftGraphAppId = '00000003-0000-0000-c000-000000000000'

// Microsoft Graph application permissions the directory sync reads with (app
// role ids; identical in every tenant). Checked against the Graph permissions
// reference.
var graphAppRoles = {
  // Users, their properties and the users delta query.
  userReadAll: 'df021288-bdef-4463-88db-98f22de89214' // User.Read.All
  // Configured groups and their (transitive) members.
  groupMemberReadAll: '98830695-27a2-44f7-8c18-0c3ebc9698f6' // GroupMember.Read.All
  // GET /organization: tenant id, onPremisesSyncEnabled (hybrid), domains.
  organizationReadAll: '498476ce-e0fe-48b0-b801-37ba7e2685c6' // Organization.Read.All
}

// What each optional feature's switch grants. A switch grants a permission only
// once this version has the feature. Calendar sync lists the users' calendars
// (R13) and creates Emply's outbound events in their default calendars (R15):
// Calendars.ReadWrite, which also covers reading events (R14's mirror, which
// Calendars.Read alone would do) and listing calendars (Calendars.ReadBasic.All
// alone cannot create events, so it is not granted besides). Photo
// sync (R16) reads users' photos (metadata and bytes): ProfilePhoto.Read.All, the
// least privileged permission Graph documents for it.
// Write-back's update and delete write users: User.ReadWrite.All. Its create
// option also adds the new user to the first configured group:
// GroupMember.ReadWrite.All, granted only with enableWriteBackCreate.
// Change notifications subscribe to /users and /groups: Graph's create-subscription
// reference names Group.Read.All as the least privileged application permission for
// a group subscription (User.Read.All, granted always, covers /users).
var featureAppRoles = {
  calendarSync: [
    'ef54d2bf-783f-4e0f-bca1-3210c0444d99' // Calendars.ReadWrite
  ]
  photoSync: [
    'e24d31aa-e1ab-4c80-85fe-23018690335d' // ProfilePhoto.Read.All
  ]
  writeBack: [
    '741f803b-c850-494e-b5df-cde7c675a1ca' // User.ReadWrite.All
  ]
  writeBackCreate: [
    '741f803b-c850-494e-b5df-cde7c675a1ca' // User.ReadWrite.All
    'dbaae8cf-10b5-4b86-a4a1-f871c94c6695' // GroupMember.ReadWrite.All
  ]
  notifications: [
    '5b567255-7703-4780-807c-7be8301ae99b' // Group.Read.All
  ]
}

var grantedAppRoles = concat(
  [
    graphAppRoles.userReadAll
    graphAppRoles.groupMemberReadAll
    graphAppRoles.organizationReadAll
  ],
  enableCalendarSync ? featureAppRoles.calendarSync : [],
  enablePhotoSync ? featureAppRoles.photoSync : [],
  enableWriteBackCreate ? featureAppRoles.writeBackCreate : (enableWriteBack ? featureAppRoles.writeBack : []),
  enableNotifications ? featureAppRoles.notifications : []
)

resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: microsoftGraphAppId
}

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  // Declared as well as granted, so the portal's "API permissions" page shows
  // the same set as the grants below.
  requiredResourceAccess: [
    {
      resourceAppId: microsoftGraphAppId
      resourceAccess: [
        for appRoleId in grantedAppRoles: {
          id: appRoleId
          type: 'Role'
        }
      ]
    }
  ]

  resource managedIdentityCredential 'federatedIdentityCredentials@v1.0' = {
    name: '${application.uniqueName}/function-app-managed-identity'
    description: 'The emply-entra-sync function app\'s user-assigned managed identity'
    issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    subject: managedIdentityPrincipalId
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
}

resource graphPermissions 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for appRoleId in grantedAppRoles: {
    appRoleId: appRoleId
    principalId: servicePrincipal.id
    resourceId: microsoftGraph.id
  }
]

output appId string = application.appId
output servicePrincipalId string = servicePrincipal.id
output grantedAppRoleIds array = grantedAppRoles
