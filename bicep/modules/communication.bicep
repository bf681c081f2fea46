// Azure Communication Services: the clinics' phone numbers (bought in the portal), Call
// Automation, and the IncomingCall events (eventgrid.bicep). Its system-assigned identity is what
// ACS uses to reach the Speech resource for its own text to speech (rbac.bicep).
//
// Local (key) authentication stays on: the Functions app authenticates Call Automation with the
// connection string (REDDYTALK_ACS_CONNECTION_STRING), which lives only in Key Vault, written
// here from the resource's keys without passing through an output or a parameter.

@description('Tags of every resource.')
param tags object

@description('Name of the resource (globally unique).')
param name string

@description('Geography where ACS keeps its data at rest.')
param dataLocation string

@description('Name of the Key Vault the connection string is written to.')
param keyVaultName string

@description('Write (or rewrite) the connection string into Key Vault.')
param writeConnectionString bool

@description('Name of the vault item that holds the connection string.')
param acsVaultItem string

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: name
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    dataLocation: dataLocation
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource connectionString 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (writeConnectionString) {
  parent: vault
  name: acsVaultItem
  tags: tags
  properties: {
    value: acs.listKeys().primaryConnectionString
    contentType: 'ACS connection string (Call Automation)'
  }
}

resource acsDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: acs
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
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

@description('Name of the resource.')
output name string = acs.name

@description('ARM id of the resource.')
output id string = acs.id

@description('The immutableResourceId: the audience of the JWTs ACS signs on callbacks and media connections.')
output immutableResourceId string = acs.properties.immutableResourceId

@description('Principal id of the system-assigned identity (for the Speech role).')
output principalId string = acs.identity.principalId
