// One user-assigned identity per workload. User-assigned rather than system-assigned: they
// exist before the apps, so their role assignments (AcrPull above all: the first image pull
// happens while the container app is created) are in place when the apps start.

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the Functions app identity.')
param functionsIdentityName string

@description('Name of the media worker identity.')
param mediaWorkerIdentityName string

@description('Name of the Event Grid system topic identity (dead-lettering).')
param eventGridIdentityName string

resource functionsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: functionsIdentityName
  location: location
  tags: tags
}

resource mediaWorkerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: mediaWorkerIdentityName
  location: location
  tags: tags
}

resource eventGridIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: eventGridIdentityName
  location: location
  tags: tags
}

@description('ARM id of the Functions app identity.')
output functionsId string = functionsIdentity.id

@description('Principal (object) id of the Functions app identity.')
output functionsPrincipalId string = functionsIdentity.properties.principalId

@description('Client id of the Functions app identity.')
output functionsClientId string = functionsIdentity.properties.clientId

@description('ARM id of the media worker identity.')
output mediaWorkerId string = mediaWorkerIdentity.id

@description('Principal (object) id of the media worker identity.')
output mediaWorkerPrincipalId string = mediaWorkerIdentity.properties.principalId

@description('Client id of the media worker identity.')
output mediaWorkerClientId string = mediaWorkerIdentity.properties.clientId

@description('ARM id of the Event Grid identity.')
output eventGridId string = eventGridIdentity.id

@description('Principal (object) id of the Event Grid identity.')
output eventGridPrincipalId string = eventGridIdentity.properties.principalId
