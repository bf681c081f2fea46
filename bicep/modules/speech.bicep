// The Speech resource: streaming speech to text and text to speech for the media worker, and the
// voice ACS itself speaks with (the apology when the media stream fails). Custom subdomain (Entra
// ID tokens need it), local (key) authentication off.
//
// Kind AIServices by default: Azure Communication Services can only be connected to a
// multi-service resource ("Connect Azure Communication Services with Foundry Tools",
// learn.microsoft.com); the Speech SDK works with both kinds.

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the resource and its custom subdomain (globally unique).')
param name string

@description('AIServices or SpeechServices.')
param kind string

@description('Private networking: public network access off, reached through a private endpoint.')
param isPrivate bool

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

resource speech 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: kind
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: isPrivate ? 'Deny' : 'Allow'
    }
  }
}

resource speechDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: speech
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

@description('Name of the resource.')
output name string = speech.name

@description('ARM id of the resource.')
output id string = speech.id

@description('Endpoint (https://<name>.cognitiveservices.azure.com/).')
output endpoint string = speech.properties.endpoint
