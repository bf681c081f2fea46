// Every role assignment, least privilege: each identity gets the data-plane roles it uses, on the
// narrowest scope that works. No keys anywhere an identity will do.
//
//   identity              role                                          scope
//   Functions app         Storage Blob Data Owner                       its storage account (host, code package)
//                         Storage Queue Data Contributor                its storage account (Durable task hub)
//                         Storage Table Data Contributor                its storage account (Durable task hub)
//                         Key Vault Secrets User                        the vault (Key Vault references, secrets)
//                         Key Vault Crypto Service Encryption User      the KEK only (get, wrap, unwrap)
//                         Monitoring Metrics Publisher                  Application Insights (Entra ingestion)
//                         Cosmos DB Built-in Data Contributor (data)    the database
//   media worker          AcrPull                                       the registry
//                         Cognitive Services Speech User                the Speech resource
//                         Cognitive Services OpenAI User                the Azure OpenAI resource
//                         Cosmos DB Built-in Data Reader (data)         the clinics and numbers containers
//                         Cosmos DB Built-in Data Contributor (data)    the live_calls container only (marks
//                                                                       its calls in progress; no PHI)
//                         Key Vault Crypto Service Encryption User      the KEK only (the store's PHI cipher
//                                                                       opens it at start-up)
//                         Key Vault Secrets User                        the vault (the ElevenLabs API key, read
//                                                                       at start-up; see mediaWorkerSecrets)
//   Event Grid topic      Storage Blob Data Contributor                 the dead-letter container
//   ACS (system)          Cognitive Services User                       the Speech resource (ACS's own text to speech)
//
// Role assignments are named guid(scope, principal, role): deterministic, so a second deployment
// finds them and changes nothing.

@description('Principal id of the Functions app identity.')
param functionsPrincipalId string

@description('Principal id of the media worker identity.')
param mediaWorkerPrincipalId string

@description('Principal id of the Event Grid identity.')
param eventGridPrincipalId string

@description('Principal id of the Communication Services system-assigned identity.')
param communicationPrincipalId string

@description('Name of the Functions app storage account.')
param storageName string

@description('Name of the dead-letter storage account.')
param deadLetterStorageName string

@description('Name of the dead-letter blob container.')
param deadLetterContainerName string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Name of the key-encryption key.')
param kekName string

@description('Name of the Cosmos DB account.')
param cosmosName string

@description('Name of the Cosmos DB database.')
param cosmosDatabaseName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Name of the container registry.')
param registryName string

@description('Name of the Speech resource.')
param speechName string

@description('Name of the Azure OpenAI resource.')
param openAiName string

// Built-in role definition ids (Azure RBAC).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultCryptoServiceEncryptionUser: 'e147488a-f6f5-4113-8e2d-b22465e65bf6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  cognitiveServicesUser: 'a97b65f3-24c7-4388-baec-2e87135dc908'
  cognitiveServicesSpeechUser: 'f2dc8367-1007-4938-bd23-fe263f013447'
  cognitiveServicesOpenAiUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
}

// Cosmos DB data-plane built-in roles (sqlRoleDefinitions of every account).
var cosmosRoles = {
  dataReader: '00000000-0000-0000-0000-000000000001'
  dataContributor: '00000000-0000-0000-0000-000000000002'
}

// The containers the media worker reads (it greets callers with clinic settings, not PHI).
var mediaWorkerContainers = [
  'clinics'
  'numbers'
]

// The containers the media worker writes: the calls in progress it holds (call id, clinic id,
// start time), so that removing a clinic with calls in progress is refused.
var mediaWorkerWritableContainers = [
  'live_calls'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource deadLetterStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: deadLetterStorageName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource container 'containers' existing = {
      name: deadLetterContainerName
    }
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName

  resource kek 'keys' existing = {
    name: kekName
  }
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosName

  resource dataReader 'sqlRoleDefinitions' existing = {
    name: cosmosRoles.dataReader
  }

  resource dataContributor 'sqlRoleDefinitions' existing = {
    name: cosmosRoles.dataContributor
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource speech 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: speechName
}

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiName
}

// --- Functions app ---------------------------------------------------------------------------

var functionsStorageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource functionsStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in functionsStorageRoles: {
    name: guid(storage.id, functionsPrincipalId, role)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: functionsPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource functionsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionsPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionsKek 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault::kek.id, functionsPrincipalId, roles.keyVaultCryptoServiceEncryptionUser)
  scope: vault::kek
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.keyVaultCryptoServiceEncryptionUser
    )
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionsTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionsPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionsPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionsCosmos 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: cosmos
  name: guid(cosmos.id, functionsPrincipalId, cosmosRoles.dataContributor)
  properties: {
    roleDefinitionId: cosmos::dataContributor.id
    principalId: functionsPrincipalId
    scope: '${cosmos.id}/dbs/${cosmosDatabaseName}'
  }
}

// --- media worker ----------------------------------------------------------------------------

resource mediaWorkerPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, mediaWorkerPrincipalId, roles.acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
    principalId: mediaWorkerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource mediaWorkerSpeech 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(speech.id, mediaWorkerPrincipalId, roles.cognitiveServicesSpeechUser)
  scope: speech
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesSpeechUser)
    principalId: mediaWorkerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource mediaWorkerOpenAi 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(openAi.id, mediaWorkerPrincipalId, roles.cognitiveServicesOpenAiUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAiUser)
    principalId: mediaWorkerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource mediaWorkerKek 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault::kek.id, mediaWorkerPrincipalId, roles.keyVaultCryptoServiceEncryptionUser)
  scope: vault::kek
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.keyVaultCryptoServiceEncryptionUser
    )
    principalId: mediaWorkerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The media worker reads one secret (the ElevenLabs API key). Scoped to the vault, not to that
// secret: a role assignment on a secret needs the secret to exist when the deployment runs, and
// an administrator writes it afterwards (the deployment never does). The cost: the identity
// could also read the vault's other secrets (tools secret, ACS connection string, EHR client
// secret).
resource mediaWorkerSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, mediaWorkerPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: mediaWorkerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource mediaWorkerCosmos 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [
  for container in mediaWorkerContainers: {
    parent: cosmos
    name: guid(cosmos.id, mediaWorkerPrincipalId, cosmosRoles.dataReader, container)
    properties: {
      roleDefinitionId: cosmos::dataReader.id
      principalId: mediaWorkerPrincipalId
      scope: '${cosmos.id}/dbs/${cosmosDatabaseName}/colls/${container}'
    }
  }
]

resource mediaWorkerCosmosWrites 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [
  for container in mediaWorkerWritableContainers: {
    parent: cosmos
    name: guid(cosmos.id, mediaWorkerPrincipalId, cosmosRoles.dataContributor, container)
    properties: {
      roleDefinitionId: cosmos::dataContributor.id
      principalId: mediaWorkerPrincipalId
      scope: '${cosmos.id}/dbs/${cosmosDatabaseName}/colls/${container}'
    }
  }
]

// --- Event Grid and ACS ----------------------------------------------------------------------

resource eventGridDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterStorage::blobService::container.id, eventGridPrincipalId, roles.storageBlobDataContributor)
  scope: deadLetterStorage::blobService::container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: eventGridPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource communicationSpeech 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(speech.id, communicationPrincipalId, roles.cognitiveServicesUser)
  scope: speech
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
    principalId: communicationPrincipalId
    principalType: 'ServicePrincipal'
  }
}
