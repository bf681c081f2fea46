// Cosmos DB for NoSQL: ReddyTalk's own records (reddytalk/providers/store/cosmos.py).
// Serverless by default, provisioned autoscale by parameter. Keys are disabled: the apps reach
// it with their managed identities and data-plane roles (rbac.bicep). One write region, as the
// store requires: its "create if absent" and ETag writes rely on a single writer.

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the account (globally unique, lower case).')
param name string

@description('Name of the database.')
param databaseName string

@description('Serverless or Provisioned.')
param capacityMode string

@description('Autoscale maximum RU/s of the database when Provisioned.')
param autoscaleMaxThroughput int

@description('Private networking: public network access off, reached through a private endpoint.')
param isPrivate bool

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

// The store's containers: reddytalk.providers.store.cosmos.CONTAINERS, name by name
// (tests/bicep checks the two lists are the same). defaultTtl in seconds; absent: no expiry.
var containers = [
  {
    name: 'clinics'
    partitionKey: '/clinic_id'
  }
  {
    name: 'numbers'
    partitionKey: '/phone_number'
  }
  {
    name: 'calls'
    partitionKey: '/clinic_id'
  }
  {
    name: 'audit'
    partitionKey: '/call_id'
  }
  {
    name: 'messages'
    partitionKey: '/clinic_id'
  }
  {
    name: 'claims'
    partitionKey: '/id'
    defaultTtl: 604800 // 7 days: idempotency claims outlive every redelivery
  }
  {
    name: 'data_keys'
    partitionKey: '/clinic_id'
    // Never a defaultTtl: the clinics' wrapped PHI data keys; one expired is its clinic's PHI lost.
  }
  {
    name: 'call_numbers'
    partitionKey: '/call_id'
    defaultTtl: 86400 // 1 day: a call's phone numbers (PHI) are read only during the call
  }
  {
    name: 'outbox'
    partitionKey: '/clinic_id'
  }
  {
    name: 'live_calls'
    partitionKey: '/call_id'
    defaultTtl: 14400 // 4 hours: calls in progress; a crashed worker's call stops counting
  }
]

var isServerless = capacityMode == 'Serverless'

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: isServerless ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    enableMultipleWriteLocations: false
    enableAutomaticFailover: false
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled'
    networkAclBypass: 'None'
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  tags: tags
  properties: {
    resource: {
      id: databaseName
    }
    options: isServerless ? {} : {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    }
  }
}

resource sqlContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [
  for container in containers: {
    parent: database
    name: container.name
    tags: tags
    properties: {
      resource: {
        id: container.name
        partitionKey: {
          paths: [
            container.partitionKey
          ]
          kind: 'Hash'
          version: 2
        }
        defaultTtl: container.?defaultTtl
      }
    }
  }
]

resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Requests'
        enabled: true
      }
    ]
  }
}

@description('Name of the account.')
output name string = account.name

@description('ARM id of the account.')
output id string = account.id

@description('Endpoint of the account.')
output endpoint string = account.properties.documentEndpoint

@description('Name of the database.')
output databaseName string = database.name
