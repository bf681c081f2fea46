// Azure OpenAI with two deployments: "fast" routes every turn, "complex" takes the turns the
// fast model escalates. Custom subdomain, local (key) authentication off: the media worker calls
// it with its managed identity (Cognitive Services OpenAI User, rbac.bicep).

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the resource and its custom subdomain (globally unique).')
param name string

@description('Private networking: public network access off, reached through a private endpoint.')
param isPrivate bool

@description('Deployment type of both models (Standard, DataZoneStandard, GlobalStandard).')
param deploymentSku string

@description('Model of the fast deployment.')
param fastModelName string

@description('Version of the fast model.')
param fastModelVersion string

@description('Capacity of the fast deployment (thousands of tokens per minute).')
param fastCapacity int

@description('Model of the complex deployment.')
param complexModelName string

@description('Version of the complex model.')
param complexModelVersion string

@description('Capacity of the complex deployment (thousands of tokens per minute).')
param complexCapacity int

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

var deployments = [
  {
    name: 'fast'
    model: fastModelName
    version: fastModelVersion
    capacity: fastCapacity
  }
  {
    name: 'complex'
    model: complexModelName
    version: complexModelVersion
    capacity: complexCapacity
  }
]

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
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

@batchSize(1) // deployments of one account are made one at a time
resource modelDeployments 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = [
  for deployment in deployments: {
    parent: openAi
    name: deployment.name
    sku: {
      name: deploymentSku
      capacity: deployment.capacity
    }
    properties: {
      model: {
        format: 'OpenAI'
        name: deployment.model
        version: deployment.version
      }
      versionUpgradeOption: 'NoAutoUpgrade'
    }
  }
]

resource openAiDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: openAi
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
output name string = openAi.name

@description('ARM id of the resource.')
output id string = openAi.id

@description('Endpoint (https://<name>.openai.azure.com/).')
output endpoint string = openAi.properties.endpoint

@description('Deployment name of the fast model.')
output fastDeploymentName string = modelDeployments[0].name

@description('Deployment name of the complex model.')
output complexDeploymentName string = modelDeployments[1].name
