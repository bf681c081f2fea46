// The Functions app (Python 3.11, v2 programming model): call control (incoming_call,
// call_events), the tools API, and the Durable orchestrations.
//
// Flex Consumption rather than Premium: Flex offers always-ready instances per function group,
// virtual network integration and managed-identity deployment storage, and bills the rest per
// execution; Premium (EP1) would keep a whole instance warm for every trigger at a fixed price
// and needs an Azure Files content share reached with a storage key. The always-ready
// instances are what matters for a phone line: a call rings about 30 s, and a cold start while it
// rings loses the call (a public sample saw 10+ rings before a cold app answered).
//
// Always ready, one group each: `http` (call_events and the tools API, which the media worker
// waits on mid-conversation), `function:incoming_call` (the Event Grid trigger scales on its own),
// and `durable` (the orchestrations a booking waits for).
//
// The app settings are written by function-settings.bicep, once the media worker's address is
// known: Flex Consumption takes no FUNCTIONS_WORKER_RUNTIME and no WEBSITE_RUN_FROM_PACKAGE
// (its runtime and package live in functionAppConfig below).

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the Functions app (globally unique: <name>.azurewebsites.net).')
param name string

@description('ARM id of the app user-assigned identity.')
param identityId string

@description('Blob container URL the code package is deployed to.')
param deploymentContainerUrl string

@description('Subnet for virtual network integration; empty: none.')
param subnetId string

@description('Always-ready instances of each group.')
param alwaysReadyInstances int

@description('Maximum instances.')
param maximumInstances int

@description('Memory of each instance, in MB.')
param instanceMemoryMB int

@description('Concurrent HTTP requests per instance.')
param httpConcurrency int

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Public: ACS posts its callbacks here and Event Grid delivers IncomingCall; every request
    // is authenticated by the app (ACS JWTs, per-call tool tokens, Event Grid's system key).
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
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
        alwaysReady: [
          {
            name: 'http'
            instanceCount: alwaysReadyInstances
          }
          {
            name: 'function:incoming_call'
            instanceCount: alwaysReadyInstances
          }
          {
            name: 'durable'
            instanceCount: alwaysReadyInstances
          }
        ]
        maximumInstanceCount: maximumInstances
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP and no basic-auth publishing: code is published with the deployer's Entra ID sign-in.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

@description('Name of the app.')
output name string = site.name

@description('ARM id of the app.')
output id string = site.id

@description('Public origin of the app (https://<host>).')
output url string = 'https://${site.properties.defaultHostName}'
