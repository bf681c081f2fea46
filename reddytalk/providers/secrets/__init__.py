"""Secrets package: Key Vault in the cloud, the environment on the embedded profile."""
