// Development: public endpoints (every service still authenticates with Entra ID), serverless
// Cosmos DB, software-protected KEK, small limits.
using '../main.bicep'

param prefix = 'rtalk'
param environmentName = 'dev'

// The clinic numbers bought in the portal (E.164). Add one, then run scripts/deploy again.
param clinicPhoneNumbers = []

param enablePrivateNetworking = false
param cosmosCapacityMode = 'Serverless'
param keyVaultSku = 'standard'
param containerRegistrySku = 'Basic'
param functionsAlwaysReadyInstances = 1
param functionsMaximumInstances = 40
param mediaWorkerMinReplicas = 1
param mediaWorkerMaxReplicas = 3
param openAiFastCapacity = 10
param openAiComplexCapacity = 10
param logRetentionDays = 30
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
