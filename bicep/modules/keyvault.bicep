// Key Vault: the apps' secrets (the Functions app's, read through Key Vault references; the media
// worker's ElevenLabs API key, read at start) and the key-encryption key (KEK) that wraps each
// clinic's data key (PHI at rest, envelope encryption).
// RBAC only (no access policies), soft delete and purge protection on: a deleted vault or key
// can be recovered for 90 days and never purged early, so no one can destroy the KEK and with it
// every clinic's records.

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Name of the vault (globally unique, 3-24 characters).')
param name string

@description('standard (software keys) or premium (HSM-backed keys).')
param sku string

@description('Private networking: public network access off, reached through a private endpoint.')
param isPrivate bool

@description('Value of the tools secret; empty leaves the stored one untouched.')
@secure()
param toolsSecret string

@description('Name of the vault item that holds the tools secret.')
param toolsVaultItem string

@description('ARM id of the Log Analytics workspace for diagnostics.')
param workspaceId string

var kekName = 'reddytalk-kek'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: sku
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'None'
      defaultAction: isPrivate ? 'Deny' : 'Allow'
    }
  }
}

// The KEK: RSA 3072, wrap and unwrap only (RSA-OAEP-256, reddytalk/providers/keys/keyvault.py).
// ARM creates the first version if the key is absent and otherwise leaves it alone; rotation
// makes a new version every year, and data keys wrapped by an older version still unwrap with it.
resource kek 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: kekName
  tags: tags
  properties: {
    kty: sku == 'premium' ? 'RSA-HSM' : 'RSA'
    keySize: 3072
    keyOps: [
      'wrapKey'
      'unwrapKey'
    ]
    rotationPolicy: {
      lifetimeActions: [
        {
          action: {
            type: 'rotate'
          }
          trigger: {
            timeAfterCreate: 'P365D'
          }
        }
      ]
    }
  }
}

// Written only when scripts/deploy passes a value (the vault has none yet): each write makes a
// new secret version, and a second run of the script must change nothing.
resource toolsSecretItem 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(toolsSecret)) {
  parent: vault
  name: toolsVaultItem
  tags: tags
  properties: {
    value: toolsSecret
    contentType: 'HMAC key of the per-call tool tokens'
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
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

@description('Name of the vault.')
output name string = vault.name

@description('ARM id of the vault.')
output id string = vault.id

@description('URI of the vault (ends in a slash).')
output uri string = vault.properties.vaultUri

@description('Name of the key-encryption key.')
output kekName string = kek.name

@description('Versionless URI of the key-encryption key.')
output kekUri string = kek.properties.keyUri
