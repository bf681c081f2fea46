// The Functions app's settings, written once the media worker's address is known (the media
// worker needs the Functions app's address too, so neither can be set when its app is created).
//
// The REDDYTALK_* settings are the ones reddytalk/settings.py reads; tests/bicep checks the two
// lists against each other. Secrets are Key Vault references resolved with the app's identity;
// the storage connection is identity-based (no account key).

@description('Name of the Functions app.')
param functionAppName string

@description('Client id of the app user-assigned identity.')
param identityClientId string

@description('Name of the storage account of the host and the Durable task hub.')
param storageName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('REDDYTALK_LOG_LEVEL.')
param logLevel string

@description('URI of the Key Vault (ends in a slash).')
param keyVaultUri string

@description('Vault item holding the ACS connection string.')
param acsVaultItem string

@description('Vault item holding the tools secret.')
param toolsVaultItem string

@description('The ACS immutableResourceId (REDDYTALK_ACS_RESOURCE_ID).')
param acsImmutableResourceId string

@description('Endpoint of the Speech resource ACS speaks through (REDDYTALK_COGNITIVE_SERVICES_ENDPOINT).')
param cognitiveServicesEndpoint string

@description('Public origin of the Functions app (REDDYTALK_PUBLIC_FUNCTIONS_URL).')
param publicFunctionsUrl string

@description('Public wss:// origin of the media worker (REDDYTALK_PUBLIC_MEDIA_URL).')
param publicMediaUrl string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// The platform's settings: host storage and the Durable task hub through the identity
// (AzureWebJobsStorage__*; Durable uses the same connection), telemetry with Entra ID.
var platformSettings = {
  AzureWebJobsStorage__accountName: storageName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
}

// ReddyTalk's settings (reddytalk/settings.py).
var reddytalkSettings = {
  REDDYTALK_PROFILE: 'cloud'
  REDDYTALK_LOG_LEVEL: logLevel
  REDDYTALK_ACS_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${acsVaultItem})'
  REDDYTALK_ACS_RESOURCE_ID: acsImmutableResourceId
  REDDYTALK_COGNITIVE_SERVICES_ENDPOINT: cognitiveServicesEndpoint
  REDDYTALK_PUBLIC_FUNCTIONS_URL: publicFunctionsUrl
  REDDYTALK_PUBLIC_MEDIA_URL: publicMediaUrl
  REDDYTALK_TOOLS_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${toolsVaultItem})'
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(platformSettings, reddytalkSettings)
}
