// Production: private endpoints for every data service (public network access off), the
// Functions app and the Container Apps environment in the virtual network, an HSM-backed KEK,
// two always-ready Functions instances and two media worker replicas (one can restart while
// the other answers).
using '../main.bicep'

param prefix = 'rtalk'
param environmentName = 'prod'

// The clinic numbers bought in the portal (E.164). Add one, then run scripts/deploy again.
param clinicPhoneNumbers = []

param enablePrivateNetworking = true
param vnetAddressPrefix = '10.40.0.0/16'
param cosmosCapacityMode = 'Serverless'
param keyVaultSku = 'premium'
param containerRegistrySku = 'Standard'
param functionsAlwaysReadyInstances = 2
param functionsMaximumInstances = 100
param mediaWorkerMinReplicas = 2
param mediaWorkerMaxReplicas = 20
param mediaWorkerCallsPerReplica = 200
param openAiDeploymentSku = 'DataZoneStandard'
param logRetentionDays = 90
param logLevel = 'INFO'

// The clinic's EHR (FHIR R4). Fill in fhirBaseUrl before taking calls: the Functions app runs the
// cloud profile, which refuses to start without it. With a token URL, write ReddyTalk's client
// secret into the vault first: az keyvault secret set --vault-name <KEY_VAULT_NAME>
// --name fhir-client-secret --file <file>.
param fhirBaseUrl = ''
param fhirTokenUrl = ''
param fhirClientId = ''
param fhirScope = ''

// The media worker's voice. Empty: espeak-ng. An ElevenLabs voice id: ElevenLabs, after writing
// its API key into the vault: az keyvault secret set --vault-name <KEY_VAULT_NAME>
// --name elevenlabs-api-key --file <file>.
param elevenLabsVoiceId = ''

// Set by scripts/deploy for each of its steps. The defaults leave the media worker's container
// app, the Event Grid subscription and both Key Vault secrets as they are.
param mediaWorkerImage = readEnvironmentVariable('DEPLOY_MEDIA_WORKER_IMAGE', '')
param enableIncomingCallSubscription = bool(readEnvironmentVariable('DEPLOY_INCOMING_CALL_SUBSCRIPTION', 'false'))
param toolsSecret = readEnvironmentVariable('DEPLOY_TOOLS_SECRET', '')
param writeAcsConnectionString = bool(readEnvironmentVariable('DEPLOY_WRITE_ACS_SECRET', 'false'))
