"""Keys package: the key-encryption key that wraps each clinic's data key."""
