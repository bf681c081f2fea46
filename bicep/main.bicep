// ReddyTalk in one resource group: an AI receptionist answering clinic phone lines.
//
// The story, in deployment order:
//   1. Names and tags          one convention: `${prefix}-${env}-<abbr>[-token]` (abbreviations.json)
//   2. Observability           Log Analytics + Application Insights; every resource sends its
//                              diagnostics there
//   3. Identities              one user-assigned identity per workload (Functions, media worker,
//                              Event Grid): they exist before the apps, so their roles do too
//   4. Network (optional)      a virtual network, private DNS zones and private endpoints; the
//                              data services then refuse public traffic
//   5. Data and secrets        Key Vault (secrets + the key-encryption key), storage (the Durable
//                              task hub, the code package, dead letters), Cosmos DB (the store)
//   6. AI and telephony        Speech, Azure OpenAI, Azure Communication Services
//   7. Access                  every role assignment, least privilege, in one module (rbac.bicep)
//   8. Compute                 the Functions app (Flex Consumption, always ready) and the media
//                              worker (Container Apps, always warm)
//   9. The phone line          the Event Grid subscription that sends IncomingCall to
//                              `incoming_call`; created by scripts/deploy's second step, once the
//                              function exists
//
// Deploy with scripts/deploy (it runs this file twice: infrastructure, then the image, the code,
// and the media worker + Event Grid subscription). No output is a secret.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@description('Short name of this installation, the first part of every resource name: 2-8 lower-case letters or digits, starting with a letter.')
@minLength(2)
@maxLength(8)
param prefix string = 'rtalk'

@description('The environment: dev, test or prod. Second part of every resource name.')
@allowed([
  'dev'
  'test'
  'prod'
])
param environmentName string

@description('Azure region of every regional resource. Must offer Flex Consumption, Container Apps, Cosmos DB, Speech and the Azure OpenAI models chosen below.')
param location string = resourceGroup().location

@description('Extra tags for every resource (merged over the standard ones).')
param tags object = {}

@description('Where Azure Communication Services keeps its data at rest (a geography such as "United States"), fixed at creation.')
param acsDataLocation string = 'United States'

@description('The clinic phone numbers (E.164, like +15550100200) whose calls ReddyTalk answers: the Event Grid filter on data.to.PhoneNumber.Value. At most 25 (one StringIn filter). Empty: no subscription is created.')
@maxLength(25)
param clinicPhoneNumbers string[] = []

@description('Create the Event Grid subscription that delivers IncomingCall to the incoming_call function. scripts/deploy sets it on its second step, after the function code is published (Azure checks that the function exists).')
param enableIncomingCallSubscription bool = false

@description('Put Cosmos DB, Key Vault, storage, Speech and Azure OpenAI behind private endpoints in a virtual network (public network access off), and integrate the Functions app and the Container Apps environment into it.')
param enablePrivateNetworking bool = false

@description('Address space of the virtual network (a /16 is split into /24 subnets). Used when enablePrivateNetworking is true.')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Cosmos DB capacity: Serverless (pay per request; the default) or Provisioned (autoscale throughput shared by the database).')
@allowed([
  'Serverless'
  'Provisioned'
])
param cosmosCapacityMode string = 'Serverless'

@description('Autoscale maximum RU/s of the database when cosmosCapacityMode is Provisioned (it scales between a tenth of this and this).')
@minValue(1000)
@maxValue(1000000)
param cosmosAutoscaleMaxThroughput int = 1000

@description('Key Vault SKU: premium keeps the key-encryption key in an HSM (RSA-HSM), standard in software (RSA).')
@allowed([
  'standard'
  'premium'
])
param keyVaultSku string = 'premium'

@description('Kind of the Speech resource. AIServices (multi-service, includes Speech) is what Azure Communication Services can be connected to for its own text to speech (the apology when the media stream fails); SpeechServices serves the Speech SDK only.')
@allowed([
  'AIServices'
  'SpeechServices'
])
param speechKind string = 'AIServices'

@description('Azure OpenAI model of the fast deployment (routes every turn).')
param openAiFastModelName string = 'gpt-4o-mini'

@description('Version of the fast model.')
param openAiFastModelVersion string = '2024-07-18'

@description('Capacity of the fast deployment, in thousands of tokens per minute.')
@minValue(1)
param openAiFastCapacity int = 50

@description('Azure OpenAI model of the complex deployment (the turns the fast model escalates).')
param openAiComplexModelName string = 'gpt-4o'

@description('Version of the complex model.')
param openAiComplexModelVersion string = '2024-11-20'

@description('Capacity of the complex deployment, in thousands of tokens per minute.')
@minValue(1)
param openAiComplexCapacity int = 20

@description('Deployment type of both models. DataZoneStandard keeps processing inside the data zone (US or EU); GlobalStandard may process anywhere; Standard stays in the region.')
@allowed([
  'Standard'
  'DataZoneStandard'
  'GlobalStandard'
])
param openAiDeploymentSku string = 'DataZoneStandard'

@description('Container registry SKU (Standard or Premium; no admin user either way).')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param containerRegistrySku string = 'Standard'

@description('Always-ready instances of the Functions app for each of: the HTTP functions, incoming_call (Event Grid) and the Durable functions. At least 1: a cold start while the phone rings loses the call.')
@minValue(1)
@maxValue(10)
param functionsAlwaysReadyInstances int = 1

@description('Maximum instances of the Functions app (Flex Consumption: 40-1000).')
@minValue(40)
@maxValue(1000)
param functionsMaximumInstances int = 100

@description('Memory of each Functions instance, in MB.')
@allowed([
  2048
  4096
])
param functionsInstanceMemoryMB int = 2048

@description('Concurrent HTTP requests per Functions instance. The functions are async, so one instance serves many (Flex Consumption would otherwise use its per-language default).')
@minValue(1)
@maxValue(1000)
param functionsHttpConcurrency int = 16

@description('The media worker image (<registry>/<repository>:<tag>). Empty: the container app is left as it is (the first step of scripts/deploy, before the image exists).')
param mediaWorkerImage string = ''

@description('Minimum replicas of the media worker: at least 1, always warm (no cold start on a call).')
@minValue(1)
@maxValue(30)
param mediaWorkerMinReplicas int = 1

@description('Maximum replicas of the media worker.')
@minValue(1)
@maxValue(300)
param mediaWorkerMaxReplicas int = 10

@description('Concurrent calls per media worker replica before it scales out (HTTP scale rule; one call is one WebSocket, one request). The load benchmark measured about 400 per core; the design sizes 200 per 1-vCPU replica.')
@minValue(1)
@maxValue(1000)
param mediaWorkerCallsPerReplica int = 200

@description('vCPU of a media worker replica (Consumption profile pairs: 0.5/1Gi, 1.0/2Gi, 2.0/4Gi, 4.0/8Gi).')
@allowed([
  '0.5'
  '1.0'
  '2.0'
  '4.0'
])
param mediaWorkerCpu string = '1.0'

@description('ElevenLabs voice id of the media worker (REDDYTALK_ELEVENLABS_VOICE_ID). Empty: the media worker speaks with espeak-ng (REDDYTALK_TTS=espeak). Set: it speaks with ElevenLabs (espeak-ng still speaks any sentence ElevenLabs fails or is late with), reading the API key from the Key Vault secret elevenlabs-api-key, which an administrator writes (the deployment never does); until then the media worker cannot start.')
param elevenLabsVoiceId string = ''

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Log level of both apps (REDDYTALK_LOG_LEVEL).')
@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
])
param logLevel string = 'INFO'

@description('The FHIR R4 base URL of the clinic EHR (REDDYTALK_FHIR_BASE_URL), like https://ehr.example.com/fhir/r4. Required to take calls: the Functions app runs the cloud profile, which refuses to start without it (every function fails, incoming calls go unanswered). Empty is allowed only to deploy the infrastructure before the EHR is known.')
param fhirBaseUrl string = ''

@description('The OAuth2 token endpoint of the EHR for the client credentials grant (REDDYTALK_FHIR_TOKEN_URL). Empty: requests go to the EHR without a token. When set, an administrator writes the client secret into the Key Vault secret fhir-client-secret (the deployment never writes it); until then the Functions app cannot start.')
param fhirTokenUrl string = ''

@description('The client id of ReddyTalk at the EHR (REDDYTALK_FHIR_CLIENT_ID). Needed when fhirTokenUrl is set.')
param fhirClientId string = ''

@description('The scopes to ask the EHR token endpoint for, space-separated (REDDYTALK_FHIR_SCOPE), like system/*.read. Empty: none, if the EHR asks for none.')
param fhirScope string = ''

@description('The admin API\'s Entra ID app registration: its application (client) id or App ID URI, the audience its bearer tokens carry (REDDYTALK_ADMIN_AUDIENCE). The registration defines the app roles ReddyTalk.Operator and ReddyTalk.ClinicAdmin and sets accessTokenAcceptedVersion to 2. Empty: the admin API refuses every request.')
param adminApiAudience string = ''

@description('Value for the tools secret (per-call tool tokens, 32+ bytes). scripts/deploy generates one only when the vault has none yet; empty leaves the stored secret as it is.')
@secure()
param toolsSecret string = ''

@description('Write the ACS connection string into Key Vault (read from the ACS resource). scripts/deploy sets it when the vault has none yet, or with --refresh-acs-secret after the ACS keys were regenerated.')
param writeAcsConnectionString bool = false

// ---------------------------------------------------------------------------------------------
// 1. Names and tags
// ---------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
var workload = toLower(prefix)
// Names in a public DNS namespace (vault, storage, Cosmos, registry, ACS, AI, Functions) must be
// globally unique: they end in a token derived from the subscription, resource group and name.
var token = take(uniqueString(subscription().id, resourceGroup().id, workload, environmentName), 6)
var base = '${workload}-${environmentName}'
var compact = replace('${workload}${environmentName}', '-', '') // storage and registry names allow no hyphens

var names = {
  logAnalytics: '${base}-${abbrs.logAnalyticsWorkspace}'
  appInsights: '${base}-${abbrs.applicationInsights}'
  functionsIdentity: '${base}-${abbrs.managedIdentity}-func'
  mediaWorkerIdentity: '${base}-${abbrs.managedIdentity}-media'
  eventGridIdentity: '${base}-${abbrs.managedIdentity}-egst'
  virtualNetwork: '${base}-${abbrs.virtualNetwork}'
  networkSecurityGroup: '${base}-${abbrs.networkSecurityGroup}'
  subnet: '${base}-${abbrs.subnet}'
  privateEndpoint: '${base}-${abbrs.privateEndpoint}'
  keyVault: '${base}-${abbrs.keyVault}-${token}'
  storage: '${compact}${abbrs.storageAccount}${token}'
  deadLetterStorage: '${compact}${abbrs.storageAccount}dl${token}'
  cosmos: '${base}-${abbrs.cosmosDb}-${token}'
  speech: '${base}-${abbrs.speech}-${token}'
  openAi: '${base}-${abbrs.openAi}-${token}'
  communication: '${base}-${abbrs.communicationServices}-${token}'
  containerRegistry: '${compact}${abbrs.containerRegistry}${token}'
  appServicePlan: '${base}-${abbrs.appServicePlan}'
  functionApp: '${base}-${abbrs.functionApp}-${token}'
  containerAppsEnvironment: '${base}-${abbrs.containerAppsEnvironment}'
  mediaWorker: '${base}-${abbrs.containerApp}-media'
  eventGridTopic: '${base}-${abbrs.eventGridSystemTopic}-acs'
  incomingCallSubscription: '${base}-${abbrs.eventGridSubscription}-incoming-call'
}

var allTags = union(
  {
    application: 'reddytalk'
    environment: environmentName
    'data-classification': 'phi'
    'managed-by': 'bicep'
  },
  tags
)

var cosmosDatabaseName = 'reddytalk'
// Key Vault items the Functions app reads through Key Vault references.
var vaultItems = {
  acsConnectionString: 'acs-connection-string'
  tools: 'tools-secret'
}
// The Key Vault secret holding ReddyTalk's client secret at the EHR: an administrator writes it
// (the deployment never does), and the Functions app reads it at runtime with its identity.
var fhirClientSecretVaultItem = 'fhir-client-secret'
// The Key Vault secret holding the ElevenLabs API key: an administrator writes it (the deployment
// never does), and the media worker reads it at start with its identity when elevenLabsVoiceId
// is set.
var elevenLabsApiKeyVaultItem = 'elevenlabs-api-key'
var mediaWorkerRepository = 'reddytalk-media-worker'

// ---------------------------------------------------------------------------------------------
// 2. Observability
// ---------------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: allTags
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    retentionInDays: logRetentionDays
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Identities
// ---------------------------------------------------------------------------------------------

module identities 'modules/identities.bicep' = {
  name: 'identities'
  params: {
    location: location
    tags: allTags
    functionsIdentityName: names.functionsIdentity
    mediaWorkerIdentityName: names.mediaWorkerIdentity
    eventGridIdentityName: names.eventGridIdentity
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Network (optional)
// ---------------------------------------------------------------------------------------------

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  params: {
    location: location
    tags: allTags
    virtualNetworkName: names.virtualNetwork
    networkSecurityGroupName: names.networkSecurityGroup
    subnetName: names.subnet
    addressPrefix: vnetAddressPrefix
    workspaceId: monitoring.outputs.workspaceId
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Data and secrets
// ---------------------------------------------------------------------------------------------

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: allTags
    name: names.keyVault
    sku: keyVaultSku
    isPrivate: enablePrivateNetworking
    toolsSecret: toolsSecret
    toolsVaultItem: vaultItems.tools
    workspaceId: monitoring.outputs.workspaceId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: allTags
    name: names.storage
    deadLetterName: names.deadLetterStorage
    isPrivate: enablePrivateNetworking
    workspaceId: monitoring.outputs.workspaceId
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    location: location
    tags: allTags
    name: names.cosmos
    databaseName: cosmosDatabaseName
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    isPrivate: enablePrivateNetworking
    workspaceId: monitoring.outputs.workspaceId
  }
}

// ---------------------------------------------------------------------------------------------
// 6. AI and telephony
// ---------------------------------------------------------------------------------------------

module speech 'modules/speech.bicep' = {
  name: 'speech'
  params: {
    location: location
    tags: allTags
    name: names.speech
    kind: speechKind
    isPrivate: enablePrivateNetworking
    workspaceId: monitoring.outputs.workspaceId
  }
}

module openAi 'modules/openai.bicep' = {
  name: 'openai'
  params: {
    location: location
    tags: allTags
    name: names.openAi
    isPrivate: enablePrivateNetworking
    deploymentSku: openAiDeploymentSku
    fastModelName: openAiFastModelName
    fastModelVersion: openAiFastModelVersion
    fastCapacity: openAiFastCapacity
    complexModelName: openAiComplexModelName
    complexModelVersion: openAiComplexModelVersion
    complexCapacity: openAiComplexCapacity
    workspaceId: monitoring.outputs.workspaceId
  }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  params: {
    tags: allTags
    name: names.communication
    dataLocation: acsDataLocation
    keyVaultName: keyVault.outputs.name
    writeConnectionString: writeAcsConnectionString
    acsVaultItem: vaultItems.acsConnectionString
    workspaceId: monitoring.outputs.workspaceId
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    tags: allTags
    name: names.containerRegistry
    sku: containerRegistrySku
    workspaceId: monitoring.outputs.workspaceId
  }
}

// Private endpoints: one per service endpoint, with its private DNS zone (network.bicep).
// The list is built from names, not module outputs, so that the loop is known at the start.
var privateEndpoints = enablePrivateNetworking ? [
  {
    name: 'cosmos'
    targetId: resourceId('Microsoft.DocumentDB/databaseAccounts', names.cosmos)
    groupId: 'Sql'
  }
  {
    name: 'vault'
    targetId: resourceId('Microsoft.KeyVault/vaults', names.keyVault)
    groupId: 'vault'
  }
  {
    name: 'blob'
    targetId: resourceId('Microsoft.Storage/storageAccounts', names.storage)
    groupId: 'blob'
  }
  {
    name: 'queue'
    targetId: resourceId('Microsoft.Storage/storageAccounts', names.storage)
    groupId: 'queue'
  }
  {
    name: 'table'
    targetId: resourceId('Microsoft.Storage/storageAccounts', names.storage)
    groupId: 'table'
  }
  {
    name: 'speech'
    targetId: resourceId('Microsoft.CognitiveServices/accounts', names.speech)
    groupId: 'account'
  }
  {
    name: 'openai'
    targetId: resourceId('Microsoft.CognitiveServices/accounts', names.openAi)
    groupId: 'account'
  }
] : []

@batchSize(1) // private endpoints on one subnet and DNS zone groups conflict when made at once
module privateEndpoint 'modules/private-endpoint.bicep' = [
  for endpoint in privateEndpoints: {
    name: 'pep-${endpoint.name}'
    params: {
      location: location
      tags: allTags
      name: '${names.privateEndpoint}-${endpoint.name}'
      subnetId: network!.outputs.privateEndpointSubnetId
      targetId: endpoint.targetId
      groupId: endpoint.groupId
      privateDnsZoneId: network!.outputs.privateDnsZoneIds[endpoint.name]
    }
    dependsOn: [
      cosmos
      keyVault
      storage
      speech
      openAi
    ]
  }
]

// ---------------------------------------------------------------------------------------------
// 7. Access: every role assignment, least privilege
// ---------------------------------------------------------------------------------------------

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    functionsPrincipalId: identities.outputs.functionsPrincipalId
    mediaWorkerPrincipalId: identities.outputs.mediaWorkerPrincipalId
    eventGridPrincipalId: identities.outputs.eventGridPrincipalId
    communicationPrincipalId: communication.outputs.principalId
    storageName: storage.outputs.name
    deadLetterStorageName: storage.outputs.deadLetterName
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    keyVaultName: keyVault.outputs.name
    kekName: keyVault.outputs.kekName
    cosmosName: cosmos.outputs.name
    cosmosDatabaseName: cosmos.outputs.databaseName
    appInsightsName: monitoring.outputs.appInsightsName
    registryName: registry.outputs.name
    speechName: speech.outputs.name
    openAiName: openAi.outputs.name
  }
}

// ---------------------------------------------------------------------------------------------
// 8. Compute
// ---------------------------------------------------------------------------------------------

module functions 'modules/functions.bicep' = {
  name: 'functions'
  params: {
    location: location
    tags: allTags
    planName: names.appServicePlan
    name: names.functionApp
    identityId: identities.outputs.functionsId
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    subnetId: enablePrivateNetworking ? network!.outputs.functionsSubnetId : ''
    alwaysReadyInstances: functionsAlwaysReadyInstances
    maximumInstances: functionsMaximumInstances
    instanceMemoryMB: functionsInstanceMemoryMB
    httpConcurrency: functionsHttpConcurrency
    workspaceId: monitoring.outputs.workspaceId
  }
}

module mediaWorker 'modules/media-worker.bicep' = {
  name: 'media-worker'
  params: {
    location: location
    tags: allTags
    environmentName: names.containerAppsEnvironment
    name: names.mediaWorker
    image: mediaWorkerImage
    identityId: identities.outputs.mediaWorkerId
    identityClientId: identities.outputs.mediaWorkerClientId
    registryLoginServer: registry.outputs.loginServer
    subnetId: enablePrivateNetworking ? network!.outputs.containerAppsSubnetId : ''
    minReplicas: mediaWorkerMinReplicas
    maxReplicas: mediaWorkerMaxReplicas
    callsPerReplica: mediaWorkerCallsPerReplica
    cpu: mediaWorkerCpu
    logLevel: logLevel
    acsImmutableResourceId: communication.outputs.immutableResourceId
    toolsApiUrl: functions.outputs.url
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    kekId: keyVault.outputs.kekUri
    keyVaultUri: keyVault.outputs.uri
    elevenLabsVoiceId: elevenLabsVoiceId
    elevenLabsApiKeyVaultItem: elevenLabsApiKeyVaultItem
    speechEndpoint: speech.outputs.endpoint
    openAiEndpoint: openAi.outputs.endpoint
    openAiFastDeployment: openAi.outputs.fastDeploymentName
    openAiComplexDeployment: openAi.outputs.complexDeploymentName
    workspaceId: monitoring.outputs.workspaceId
  }
  dependsOn: [
    rbac // AcrPull must exist before the first image pull
  ]
}

module functionSettings 'modules/function-settings.bicep' = {
  name: 'function-settings'
  params: {
    functionAppName: functions.outputs.name
    identityClientId: identities.outputs.functionsClientId
    storageName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    logLevel: logLevel
    keyVaultUri: keyVault.outputs.uri
    kekId: keyVault.outputs.kekUri
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    fhirBaseUrl: fhirBaseUrl
    fhirTokenUrl: fhirTokenUrl
    fhirClientId: fhirClientId
    fhirScope: fhirScope
    fhirClientSecretVaultItem: fhirClientSecretVaultItem
    acsVaultItem: vaultItems.acsConnectionString
    toolsVaultItem: vaultItems.tools
    acsImmutableResourceId: communication.outputs.immutableResourceId
    cognitiveServicesEndpoint: speech.outputs.endpoint
    publicFunctionsUrl: functions.outputs.url
    publicMediaUrl: mediaWorker.outputs.url
    adminTenantId: tenant().tenantId
    adminApiAudience: adminApiAudience
  }
  dependsOn: [
    rbac // Key Vault references resolve with the identity's role
  ]
}

// ---------------------------------------------------------------------------------------------
// 9. The phone line
// ---------------------------------------------------------------------------------------------

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    tags: allTags
    topicName: names.eventGridTopic
    subscriptionName: names.incomingCallSubscription
    communicationId: communication.outputs.id
    identityId: identities.outputs.eventGridId
    createSubscription: enableIncomingCallSubscription && !empty(clinicPhoneNumbers)
    functionAppName: functions.outputs.name
    clinicPhoneNumbers: clinicPhoneNumbers
    deadLetterStorageId: storage.outputs.deadLetterId
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    workspaceId: monitoring.outputs.workspaceId
  }
  dependsOn: [
    rbac // the dead-letter role
    functionSettings // the function runs with its settings before events reach it
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs: what scripts/deploy and an operator need. Names and endpoints only; no secrets.
// ---------------------------------------------------------------------------------------------

@description('The resource group.')
output AZURE_RESOURCE_GROUP string = resourceGroup().name

@description('The region.')
output AZURE_LOCATION string = location

@description('Name of the Communication Services resource (buy phone numbers there).')
output ACS_NAME string = communication.outputs.name

@description('ARM id of the Communication Services resource.')
output ACS_RESOURCE_ID string = communication.outputs.id

@description('The immutableResourceId of the Communication Services resource: the audience of the JWTs ACS signs (REDDYTALK_ACS_RESOURCE_ID).')
output ACS_IMMUTABLE_RESOURCE_ID string = communication.outputs.immutableResourceId

@description('Name of the Functions app (code publish target).')
output FUNCTION_APP_NAME string = functions.outputs.name

@description('Public origin of the Functions app.')
output FUNCTION_APP_URL string = functions.outputs.url

@description('Name of the media worker container app.')
output MEDIA_WORKER_APP_NAME string = names.mediaWorker

@description('Public wss:// origin of the media worker.')
output MEDIA_WORKER_URL string = mediaWorker.outputs.url

@description('Repository of the media worker image in the registry.')
output MEDIA_WORKER_REPOSITORY string = mediaWorkerRepository

@description('Name of the container registry.')
output CONTAINER_REGISTRY_NAME string = registry.outputs.name

@description('Login server of the container registry.')
output CONTAINER_REGISTRY_LOGIN_SERVER string = registry.outputs.loginServer

@description('Name of the Key Vault.')
output KEY_VAULT_NAME string = keyVault.outputs.name

@description('URI of the Key Vault.')
output KEY_VAULT_URI string = keyVault.outputs.uri

@description('Id (versionless URI) of the key-encryption key that wraps each clinic data key.')
output KEY_VAULT_KEK_ID string = keyVault.outputs.kekUri

@description('Name of the Cosmos DB account.')
output COSMOS_ACCOUNT_NAME string = cosmos.outputs.name

@description('Endpoint of the Cosmos DB account.')
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint

@description('The Cosmos DB database holding the store containers.')
output COSMOS_DATABASE string = cosmos.outputs.databaseName

@description('Endpoint of the Speech resource.')
output SPEECH_ENDPOINT string = speech.outputs.endpoint

@description('Endpoint of the Azure OpenAI resource.')
output OPENAI_ENDPOINT string = openAi.outputs.endpoint

@description('Deployment name of the fast model.')
output OPENAI_FAST_DEPLOYMENT string = openAi.outputs.fastDeploymentName

@description('Deployment name of the complex model.')
output OPENAI_COMPLEX_DEPLOYMENT string = openAi.outputs.complexDeploymentName

@description('Client id of the Functions app identity (AZURE_CLIENT_ID there).')
output FUNCTIONS_IDENTITY_CLIENT_ID string = identities.outputs.functionsClientId

@description('Client id of the media worker identity (AZURE_CLIENT_ID there).')
output MEDIA_WORKER_IDENTITY_CLIENT_ID string = identities.outputs.mediaWorkerClientId

@description('Whether this deployment created (or kept) the IncomingCall subscription.')
output INCOMING_CALL_SUBSCRIPTION_ENABLED bool = enableIncomingCallSubscription && !empty(clinicPhoneNumbers)
