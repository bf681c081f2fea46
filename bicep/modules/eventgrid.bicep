// The phone line: an Event Grid system topic on the ACS resource, and the subscription that
// delivers Microsoft.Communication.IncomingCall to the `incoming_call` function.
//
// Delivery settings follow the call, not Event Grid's defaults (30 attempts over 24 h): a call
// rings about 30 s, so an event is worth at most 2 attempts within 1 minute; after that it goes
// to the dead-letter container (storage.bicep) for the record. The filter lets through only the
// clinics' numbers (data.to.PhoneNumber.Value): without it a transferred call can come back in.
//
// The subscription can only be created once the function exists (Azure checks it), so
// scripts/deploy creates it on its second step (createSubscription).

@description('Tags of every resource.')
param tags object

@description('Name of the system topic.')
param topicName string

@description('Name of the IncomingCall subscription.')
param subscriptionName string

@description('ARM id of the Communication Services resource (the event source).')
param communicationId string

@description('ARM id of the user-assigned identity the topic dead-letters with.')
param identityId string

@description('Create (or keep) the IncomingCall subscription.')
param createSubscription bool

@description('Name of the Functions app.')
param functionAppName string

@description('The clinic phone numbers (E.164) whose calls are delivered.')
param clinicPhoneNumbers string[]

@description('ARM id of the dead-letter storage account.')
param deadLetterStorageId string

@description('Name of the dead-letter blob container.')
param deadLetterContainerName string

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

var incomingCallFunction = 'incoming_call'

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName

  resource incomingCallHandler 'functions' existing = {
    name: incomingCallFunction
  }
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: topicName
  location: 'global'
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    source: communicationId
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource incomingCall 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = if (createSubscription) {
  parent: topic
  name: subscriptionName
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionApp::incomingCallHandler.id
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Communication.IncomingCall'
      ]
      enableAdvancedFilteringOnArrays: true
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.to.PhoneNumber.Value'
          values: clinicPhoneNumbers
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 2
      eventTimeToLiveInMinutes: 1
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: identityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

resource topicDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: topic
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
