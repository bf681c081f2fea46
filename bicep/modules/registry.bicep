// The container registry of the media worker image. No admin user and no anonymous pull: the
// media worker pulls with its managed identity (AcrPull, rbac.bicep); scripts/deploy builds the
// image in the registry (az acr build) with the deployer's own Entra ID sign-in.

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the registry (globally unique, 5-50 letters and digits).')
param name string

@description('SKU: Basic, Standard or Premium.')
param sku string

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource registryDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: registry
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

@description('Name of the registry.')
output name string = registry.name

@description('Login server of the registry (<name>.azurecr.io).')
output loginServer string = registry.properties.loginServer
