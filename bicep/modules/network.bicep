// Private networking (enablePrivateNetworking): a virtual network with three subnets, one
// network security group, and a private DNS zone per service endpoint.
//
//   subnet 0  Functions app outbound (Flex Consumption virtual network integration)
//   subnet 1  Container Apps environment (workload profiles: /27 at least)
//   subnet 2  private endpoints (Cosmos DB, Key Vault, storage blob/queue/table, Speech, OpenAI)
//
// Both app subnets are delegated to Microsoft.App/environments, the delegation Flex Consumption
// and Container Apps environments with workload profiles require.

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the virtual network.')
param virtualNetworkName string

@description('Name of the network security group on every subnet.')
param networkSecurityGroupName string

@description('Name prefix of the subnets.')
param subnetName string

@description('Address space of the virtual network (the subnets are its first three /24).')
param addressPrefix string

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

// Private DNS zone of each endpoint kind, by the key main.bicep names its endpoints with.
var zoneNames = {
  cosmos: 'privatelink.documents.azure.com'
  vault: 'privatelink.vaultcore.azure.net'
  blob: 'privatelink.blob.${environment().suffixes.storage}'
  queue: 'privatelink.queue.${environment().suffixes.storage}'
  table: 'privatelink.table.${environment().suffixes.storage}'
  speech: 'privatelink.cognitiveservices.azure.com'
  openai: 'privatelink.openai.azure.com'
}

resource nsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: networkSecurityGroupName
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: virtualNetworkName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: '${subnetName}-func'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 0)
          networkSecurityGroup: {
            id: nsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: '${subnetName}-cae'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 1)
          networkSecurityGroup: {
            id: nsg.id
          }
          delegations: [
            {
              name: 'container-apps'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: '${subnetName}-pep'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 2)
          networkSecurityGroup: {
            id: nsg.id
          }
          privateEndpointNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zone in items(zoneNames): {
    name: zone.value
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zone, i) in items(zoneNames): {
    parent: zones[i]
    name: virtualNetworkName
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource vnetDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vnet
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

resource nsgDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: nsg
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

@description('Subnet the Functions app is integrated into.')
output functionsSubnetId string = vnet.properties.subnets[0].id

@description('Subnet of the Container Apps environment.')
output containerAppsSubnetId string = vnet.properties.subnets[1].id

@description('Subnet of the private endpoints.')
output privateEndpointSubnetId string = vnet.properties.subnets[2].id

@description('Private DNS zone id by endpoint key (cosmos, vault, blob, queue, table, speech, openai).')
output privateDnsZoneIds object = toObject(
  items(zoneNames),
  zone => zone.key,
  zone => resourceId('Microsoft.Network/privateDnsZones', zone.value)
)
