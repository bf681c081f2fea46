// One private endpoint, registered in its private DNS zone (the zone group writes the A record).

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the private endpoint.')
param name string

@description('Subnet the endpoint gets its address in.')
param subnetId string

@description('ARM id of the resource the endpoint connects to.')
param targetId string

@description('Sub-resource (group id) of the target: Sql, vault, blob, queue, table, account.')
param groupId string

@description('ARM id of the private DNS zone for this group id.')
param privateDnsZoneId string

resource endpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: targetId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource zoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: groupId
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}
