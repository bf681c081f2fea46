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

@description('Versionless id of the key-encryption key that wraps each clinic data key (REDDYTALK_KEK_ID).')
param kekId string

@description('Endpoint of the Cosmos DB account (REDDYTALK_COSMOS_ENDPOINT).')
param cosmosEndpoint string

@description('The Cosmos DB database of the store (REDDYTALK_COSMOS_DATABASE).')
param cosmosDatabaseName string

@description('FHIR R4 base URL of the clinic EHR (REDDYTALK_FHIR_BASE_URL).')
param fhirBaseUrl string

@description('OAuth2 token endpoint of the EHR; empty: no token (REDDYTALK_FHIR_TOKEN_URL).')
param fhirTokenUrl string

@description('Client id of ReddyTalk at the EHR (REDDYTALK_FHIR_CLIENT_ID).')
param fhirClientId string

@description('Scopes asked of the EHR token endpoint (REDDYTALK_FHIR_SCOPE).')
param fhirScope string

@description('Vault item holding the EHR client secret, read at runtime (REDDYTALK_FHIR_CLIENT_SECRET_NAME).')
param fhirClientSecretVaultItem string

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

@description('The Entra ID tenant whose tokens the admin API accepts (REDDYTALK_ADMIN_TENANT_ID).')
param adminTenantId string

@description('The admin API\'s app registration, the audience of its tokens; empty: the admin API refuses every request (REDDYTALK_ADMIN_AUDIENCE).')
param adminApiAudience string

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

// ReddyTalk's settings (reddytalk/settings.py). The cloud profile's defaults pick the Cosmos DB
// store and the FHIR EHR (REDDYTALK_STORE and REDDYTALK_EHR are not set). One
// DefaultAzureCredential, the user-assigned identity named by its client id, reaches Cosmos DB,
// the KEK and the vault; the EHR client secret is read through it at runtime (a secret name
// here, not a Key Vault reference).
var reddytalkSettings = {
  REDDYTALK_PROFILE: 'cloud'
  REDDYTALK_LOG_LEVEL: logLevel
  REDDYTALK_ACS_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${acsVaultItem})'
  REDDYTALK_ACS_RESOURCE_ID: acsImmutableResourceId
  REDDYTALK_COGNITIVE_SERVICES_ENDPOINT: cognitiveServicesEndpoint
  REDDYTALK_PUBLIC_FUNCTIONS_URL: publicFunctionsUrl
  REDDYTALK_PUBLIC_MEDIA_URL: publicMediaUrl
  REDDYTALK_TOOLS_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${toolsVaultItem})'
  REDDYTALK_MANAGED_IDENTITY_CLIENT_ID: identityClientId
  REDDYTALK_COSMOS_ENDPOINT: cosmosEndpoint
  REDDYTALK_COSMOS_DATABASE: cosmosDatabaseName
  REDDYTALK_KEY_VAULT_URL: keyVaultUri
  REDDYTALK_KEK_ID: kekId
  REDDYTALK_FHIR_BASE_URL: fhirBaseUrl
  REDDYTALK_FHIR_TOKEN_URL: fhirTokenUrl
  REDDYTALK_FHIR_CLIENT_ID: fhirClientId
  REDDYTALK_FHIR_SCOPE: fhirScope
  REDDYTALK_FHIR_CLIENT_SECRET_NAME: fhirClientSecretVaultItem
  // The admin API verifies Entra ID tokens itself (reddytalk/admin/auth.py), with or without
  // App Service Authentication in front; an empty audience turns it off (fail closed).
  REDDYTALK_ADMIN_TENANT_ID: adminTenantId
  REDDYTALK_ADMIN_AUDIENCE: adminApiAudience
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(platformSettings, reddytalkSettings)
}
