// The media worker: the ASGI service that holds every call's live audio (`python -m
// media_worker`, media_worker/Dockerfile), on Azure Container Apps.
//
// - Always warm: at least one replica (no cold start on a call).
// - Scales on concurrent requests: ACS opens one WebSocket per call, and a WebSocket is one
//   request for the HTTP scale rule, so the rule counts calls.
// - No session affinity: a call is one WebSocket, which stays on the replica it reached.
// - Graceful shutdown: 600 s between SIGTERM and SIGKILL (the longest Container Apps allows), so
//   a replica removed by scale-in or a new revision can let its calls finish. The process has to
//   drain for that to help (keep serving open calls after SIGTERM, refuse new ones).
// - Health: startup, readiness and liveness probes on /healthz.
// - Pulls its image with its managed identity (AcrPull); the registry has no admin user.
// - Speaks with espeak-ng, or with ElevenLabs when given a voice id (its API key read from Key
//   Vault at start with the managed identity).
//
// The container app is created only when an image is given (scripts/deploy's second step);
// the environment and the app's address exist from the first step, so the Functions app can be
// told where calls stream to before the image is built.

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the Container Apps environment.')
param environmentName string

@description('Name of the container app.')
param name string

@description('Image (<registry>/<repository>:<tag>); empty: the container app is left as it is.')
param image string

@description('ARM id of the app user-assigned identity.')
param identityId string

@description('Client id of the app user-assigned identity (AZURE_CLIENT_ID for DefaultAzureCredential).')
param identityClientId string

@description('Login server of the registry the image is pulled from.')
param registryLoginServer string

@description('Infrastructure subnet of the environment; empty: no virtual network.')
param subnetId string

@description('Minimum replicas (at least 1).')
@minValue(1)
param minReplicas int

@description('Maximum replicas.')
param maxReplicas int

@description('Concurrent calls (WebSockets) per replica before scaling out.')
param callsPerReplica int

@description('vCPU per replica (0.5, 1.0, 2.0 or 4.0; memory follows).')
param cpu string

@description('REDDYTALK_LOG_LEVEL.')
param logLevel string

@description('The ACS immutableResourceId: the audience of the JWT on every media WebSocket.')
param acsImmutableResourceId string

@description('Origin of the Functions app tools API.')
param toolsApiUrl string

@description('Endpoint of the Cosmos DB account the clinics are read from (REDDYTALK_COSMOS_ENDPOINT).')
param cosmosEndpoint string

@description('The Cosmos DB database of the store (REDDYTALK_COSMOS_DATABASE).')
param cosmosDatabaseName string

@description('Versionless id of the key-encryption key of the store PHI cipher (REDDYTALK_KEK_ID).')
param kekId string

@description('URI of the Key Vault the ElevenLabs API key is read from (REDDYTALK_KEY_VAULT_URL).')
param keyVaultUri string

@description('ElevenLabs voice id (REDDYTALK_ELEVENLABS_VOICE_ID); empty: the media worker speaks with espeak-ng.')
param elevenLabsVoiceId string

@description('Vault item holding the ElevenLabs API key, read at start (REDDYTALK_ELEVENLABS_API_KEY_NAME).')
param elevenLabsApiKeyVaultItem string

@description('Endpoint of the Speech resource: speech to text, and Azure Neural text to speech (REDDYTALK_AZURE_SPEECH_ENDPOINT).')
param speechEndpoint string

@description('Endpoint of the Azure OpenAI resource (REDDYTALK_AZURE_OPENAI_ENDPOINT).')
param openAiEndpoint string

@description('The deployment that answers ordinary turns (REDDYTALK_AZURE_OPENAI_FAST_DEPLOYMENT).')
param openAiFastDeployment string

@description('The deployment the escalation rule picks (REDDYTALK_AZURE_OPENAI_COMPLEX_DEPLOYMENT).')
param openAiComplexDeployment string

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

var port = 8765
var terminationGracePeriodSeconds = 600
var memoryByCpu = {
  '0.5': '1Gi'
  '1.0': '2Gi'
  '2.0': '4Gi'
  '4.0': '8Gi'
}
var healthProbe = {
  path: '/healthz'
  port: port
  scheme: 'HTTP'
}

resource containerAppsEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    // Logs go to Azure Monitor and from there through the diagnostic setting below: no
    // workspace key in the environment.
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
    vnetConfiguration: empty(subnetId) ? null : {
      infrastructureSubnetId: subnetId
      internal: false
    }
    zoneRedundant: false
  }
}

resource app 'Microsoft.App/containerApps@2024-03-01' = if (!empty(image)) {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: containerAppsEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      maxInactiveRevisions: 5
      ingress: {
        external: true // ACS connects from the internet; every connection carries an ACS JWT
        targetPort: port
        transport: 'http' // WebSocket upgrades are HTTP/1.1
        allowInsecure: false
        stickySessions: {
          affinity: 'none'
        }
        traffic: [
          {
            latestRevision: true
            weight: 100
          }
        ]
      }
      registries: [
        {
          server: registryLoginServer
          identity: identityId
        }
      ]
    }
    template: {
      terminationGracePeriodSeconds: terminationGracePeriodSeconds
      containers: [
        {
          name: 'media-worker'
          image: image
          resources: {
            cpu: json(cpu)
            memory: memoryByCpu[cpu]
          }
          env: [
            {
              name: 'REDDYTALK_PROFILE'
              value: 'cloud'
            }
            {
              name: 'REDDYTALK_HOST'
              value: '0.0.0.0'
            }
            {
              name: 'REDDYTALK_PORT'
              value: string(port)
            }
            {
              name: 'REDDYTALK_LOG_LEVEL'
              value: logLevel
            }
            {
              name: 'REDDYTALK_ACS_RESOURCE_ID'
              value: acsImmutableResourceId
            }
            {
              name: 'REDDYTALK_TOOLS_API_URL'
              value: toolsApiUrl
            }
            // The cloud profile's store: Cosmos DB (the clinics), with the PHI cipher, whose KEK
            // is opened at start-up. REDDYTALK_EHR is not set: the media worker reaches
            // records through the tools API and builds no EHR.
            {
              name: 'REDDYTALK_COSMOS_ENDPOINT'
              value: cosmosEndpoint
            }
            {
              name: 'REDDYTALK_COSMOS_DATABASE'
              value: cosmosDatabaseName
            }
            {
              name: 'REDDYTALK_KEK_ID'
              value: kekId
            }
            // The ears and the mind: Azure Speech and the tiered policy over Azure OpenAI (the
            // cloud profile's defaults), both through the app's identity (local auth is off).
            {
              name: 'REDDYTALK_AZURE_SPEECH_ENDPOINT'
              value: speechEndpoint
            }
            {
              name: 'REDDYTALK_AZURE_OPENAI_ENDPOINT'
              value: openAiEndpoint
            }
            {
              name: 'REDDYTALK_AZURE_OPENAI_FAST_DEPLOYMENT'
              value: openAiFastDeployment
            }
            {
              name: 'REDDYTALK_AZURE_OPENAI_COMPLEX_DEPLOYMENT'
              value: openAiComplexDeployment
            }
            // The voice: Azure Neural without an ElevenLabs voice id; with one, ElevenLabs, then
            // Azure Neural for any sentence it fails or is late with, espeak-ng last. The
            // ElevenLabs key is read at start from Key Vault with the app's identity (the setting
            // is the secret's name, not a Key Vault reference). The model, base URL and
            // first-audio timeout are the code's defaults.
            {
              name: 'REDDYTALK_TTS'
              value: empty(elevenLabsVoiceId) ? 'azure' : 'elevenlabs'
            }
            {
              name: 'REDDYTALK_ELEVENLABS_VOICE_ID'
              value: elevenLabsVoiceId
            }
            {
              name: 'REDDYTALK_KEY_VAULT_URL'
              value: keyVaultUri
            }
            {
              name: 'REDDYTALK_ELEVENLABS_API_KEY_NAME'
              value: elevenLabsApiKeyVaultItem
            }
            {
              name: 'REDDYTALK_MANAGED_IDENTITY_CLIENT_ID'
              value: identityClientId
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identityClientId
            }
          ]
          probes: [
            {
              type: 'Startup'
              httpGet: healthProbe
              periodSeconds: 2
              failureThreshold: 30
              timeoutSeconds: 2
            }
            {
              type: 'Readiness'
              httpGet: healthProbe
              periodSeconds: 5
              failureThreshold: 2
              timeoutSeconds: 2
            }
            {
              type: 'Liveness'
              httpGet: healthProbe
              periodSeconds: 10
              failureThreshold: 3
              timeoutSeconds: 2
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'concurrent-calls'
            http: {
              metadata: {
                concurrentRequests: string(callsPerReplica)
              }
            }
          }
        ]
      }
    }
  }
}

// The environment's diagnostic setting carries the console and system logs of its apps.
resource environmentDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: containerAppsEnvironment
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

@description('Public wss:// origin of the media worker (known before the app exists).')
output url string = 'wss://${name}.${containerAppsEnvironment.properties.defaultDomain}'
